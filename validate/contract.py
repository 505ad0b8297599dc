"""Validate one extract with its GX suite: typed valid rows, quarantined rows, every row accounted for."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import TYPE_CHECKING

import polars as pl

from sources.readers import ROW_NUMBER, Extract, ExtractError
from sources.registry import Column, Source
from validate.quarantine import quarantine_rows
from validate.suites import INTEGER, ISO_DATE, NUMBER, TODAY, parsed_column

if TYPE_CHECKING:
    from great_expectations.data_context import AbstractDataContext

log = logging.getLogger(__name__)

POLARS_TYPES = {"str": pl.String, "date": pl.Date, "float": pl.Float64, "int": pl.Int64}


@dataclass(frozen=True)
class Validation:
    source: str
    valid: pl.DataFrame
    quarantine: pl.DataFrame
    rows_in: int
    rows_valid: int
    rows_quarantined: int


class InvalidShareError(ExtractError):
    """Too many rows failed; carries the Validation so its quarantine can still be kept."""

    def __init__(self, message: str, validation: Validation):
        super().__init__(message)
        self.validation = validation


def validate_extract(
    extract: Extract,
    source: Source,
    *,
    context: AbstractDataContext,
    max_invalid_share: float = 0.2,
    today: date | None = None,
) -> Validation:
    """Run the source's checkpoint on the extract; split its rows into typed valid rows and quarantine."""
    import pandas as pd
    from great_expectations.core.run_identifier import RunIdentifier

    from validate.context import checkpoint_for

    if extract.source != source.name:
        raise ValueError(f"extract of '{extract.source}' validated against source '{source.name}'")
    today = today or date.today()
    text = _as_text(extract, source)
    parsed = text.select(ROW_NUMBER, *[_parsed(c) for c in source.columns if c.type != "str"])
    batch = text.join(parsed, on=ROW_NUMBER)
    result = checkpoint_for(context, source).run(
        batch_parameters={"dataframe": batch.to_pandas().set_index(ROW_NUMBER)},
        expectation_parameters={TODAY: pd.Timestamp(today)},
        # Named after the file, so an auditor browsing Data Docs sees which extract each run checked.
        run_id=RunIdentifier(run_name=extract.path.name, run_time=datetime.now(timezone.utc)),
    )
    (suite_result,) = result.run_results.values()
    quarantine = quarantine_rows(extract, source, text, suite_result, today)

    bad_rows = quarantine.get_column("row_number").unique()
    valid = batch.filter(~pl.col(ROW_NUMBER).is_in(bad_rows.implode())).select(
        ROW_NUMBER, *[_typed(c) for c in source.columns]
    )
    _check_parsed(text, valid, source)
    validation = Validation(
        source=source.name, valid=valid, quarantine=quarantine, rows_in=extract.frame.height,
        rows_valid=valid.height, rows_quarantined=bad_rows.len(),
    )
    assert validation.rows_in == validation.rows_valid + validation.rows_quarantined, "rows lost in validation"
    log.info("%s: %d rows in, %d valid, %d quarantined", source.name, validation.rows_in,
             validation.rows_valid, validation.rows_quarantined)
    share = validation.rows_quarantined / validation.rows_in
    if share > max_invalid_share:
        raise InvalidShareError(_too_many_message(extract, source, validation, share, max_invalid_share), validation)
    return validation


def _as_text(extract: Extract, source: Source) -> pl.DataFrame:
    """Every registry column as the text delivered, whatever the file format; blank text is missing."""
    columns = []
    for column in source.columns:
        dtype = extract.frame.schema[column.name]
        if dtype.is_nested():
            raise ExtractError(
                f"{extract.path}: column '{column.name}' holds {dtype} values where {column.type} was "
                "expected; re-export it with plain values."
            )
        expr = pl.col(column.name)
        if column.type == "date" and isinstance(dtype, pl.Datetime):
            # The registry declares a date: a Parquet timestamp counts by its calendar day.
            expr = expr.dt.date()
        expr = expr.cast(pl.String)
        columns.append(pl.when(expr.str.strip_chars() == "").then(None).otherwise(expr).alias(column.name))
    return extract.frame.select(ROW_NUMBER, *columns)


def _polars_regex(pattern: str) -> str:
    # GX checks with Python's re, whose end-of-text anchor is \Z; polars (Rust) spells it \z.
    return pattern.replace(r"\Z", r"\z")


def _parsed(column: Column) -> pl.Expr:
    """The value parsed to the column's type, only where GX's format rule accepts the text."""
    text = pl.col(column.name)
    if column.type == "date":
        ok, value = text.str.contains(_polars_regex(ISO_DATE)), text.str.to_date("%Y-%m-%d", strict=False)
    elif column.type == "float":
        ok = text.str.contains(_polars_regex(NUMBER))
        value = text.str.replace(",", ".", literal=True).cast(pl.Float64, strict=False)
    else:
        ok, value = text.str.contains(_polars_regex(INTEGER)), text.cast(pl.Int64, strict=False)
    return pl.when(ok).then(value).alias(parsed_column(column))


def _typed(column: Column) -> pl.Expr:
    name = column.name if column.type == "str" else parsed_column(column)
    return pl.col(name).cast(POLARS_TYPES[column.type]).alias(column.name)


def _check_parsed(text: pl.DataFrame, valid: pl.DataFrame, source: Source) -> None:
    """Every value GX accepted must have parsed; a gap would be silent data loss."""
    delivered = text.filter(pl.col(ROW_NUMBER).is_in(valid.get_column(ROW_NUMBER).implode()))
    for column in source.columns:
        lost = delivered[column.name].is_not_null().sum() - valid[column.name].is_not_null().sum()
        assert lost == 0, f"{source.name}.{column.name}: {lost} accepted values did not parse as {column.type}"


def _too_many_message(extract: Extract, source: Source, validation: Validation, share: float, limit: float) -> str:
    top = (
        validation.quarantine.group_by("column", "expectation")
        .agg(pl.col("row_number").n_unique().alias("rows"))
        .sort("rows", "column", descending=[True, False])
        .head(3)
    )
    worst = "; ".join(
        f"{r['column']} {r['expectation']}: {r['rows']} row{'s' if r['rows'] != 1 else ''}"
        for r in top.iter_rows(named=True)
    )
    return (
        f"{extract.path}: {validation.rows_quarantined} of {validation.rows_in} rows ({share:.0%}) failed "
        f"validation, more than the {limit:.0%} allowed. Most failures: {worst}. The extract looks broken: "
        f"ask {source.owner} for a corrected file (the quarantine lists every row and reason), or correct "
        "sources/registry.yaml if the rules are wrong."
    )
