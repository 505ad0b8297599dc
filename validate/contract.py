"""Validate one extract with its GX suite: typed valid rows, quarantined rows, every row accounted for."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import date, datetime, timezone
from typing import TYPE_CHECKING

import polars as pl

from sources.readers import ROW_NUMBER, Extract, ExtractError
from sources.registry import Column, Source
from validate.checks import CHECK_ROW, as_text, build_checks, parsed, registered_values, tidy
from validate.quarantine import RESOLVED_CHECKS, key_values, quarantine_rows
from validate.suites import TODAY

if TYPE_CHECKING:
    from great_expectations.data_context import AbstractDataContext

    from validate.context import ValidationRun

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
    # Quarantined rows that failed a rule, as opposed to copies and superseded versions (resolved).
    rows_broken: int = 0
    # Why the extract is refused as a whole (too many broken rows); None when it is accepted.
    refused: str | None = None
    # Rows with a value delivered with spaces around it; trimmed, then checked like any other.
    rows_trimmed: int = 0
    # The file (or database/table) the rows came from, the columns it had that were not read, and
    # the data rows its count file declared (None without one): what delivery checks look at.
    file: str = ""
    ignored_columns: tuple[str, ...] = ()
    declared_rows: int | None = None


@dataclass(frozen=True)
class Refused:
    """An extract a run cannot use: its source and a message naming the file, what is wrong and what to do, never a row's values."""

    source: str
    message: str
    # Set when the rows were read and checked: their accounting and quarantine are kept all the same.
    validation: Validation | None = None


class DeliveryRefused(ExtractError):
    """One or more extracts were refused; the message holds each one's own message."""

    def __init__(self, refused: list[Refused]):
        # Only the names: the exception travels with the run's state, and the refusals' rows must not.
        self.sources = tuple(r.source for r in refused)
        if len(refused) == 1:
            message = refused[0].message
        else:
            message = f"{len(refused)} extracts were refused:\n" + "\n".join(f"- {r.message}" for r in refused)
        super().__init__(message)


class InvalidShareError(ExtractError):
    """Too many rows failed. Carries the message only: exceptions end up in tracebacks and in
    Prefect's stored results, so the rows stay with the Validation (validate_extract(refuse=False))."""


def validate_extract(
    extract: Extract,
    source: Source,
    *,
    context: AbstractDataContext,
    max_invalid_share: float = 0.2,
    today: date | None = None,
    registered: dict[str, pl.Series] | None = None,
    run: ValidationRun | None = None,
    refuse: bool = True,
) -> Validation:
    """Run the source's checkpoint on the extract; split its rows into typed valid rows and quarantine.

    An extract with more than max_invalid_share broken rows raises InvalidShareError; with
    refuse=False it is returned with `refused` set, so the caller can keep its quarantine first.

    registered maps "source.column" to the values a referencing column must be among (e.g. the
    population's person ids); without it the reference rule has nothing to check. Within a run
    (validate.context.validation_run) Data Docs are built once at its end instead of per extract.
    """
    import pandas as pd
    from great_expectations.core.run_identifier import RunIdentifier

    from validate.context import checkpoint_for

    if extract.source != source.name:
        raise ValueError(f"extract of '{extract.source}' validated against source '{source.name}'")
    if run is not None and run.context is not context:
        raise ValueError("the ValidationRun belongs to another GX context; open it with validation_run(context)")
    today = today or date.today()
    frame, trimmed = tidy(extract.frame, source)
    extract = replace(extract, frame=frame)
    for column in source.columns:
        dtype = frame.schema[column.name]
        if dtype.is_nested():
            raise ExtractError(
                f"{extract.path}: column '{column.name}' holds {dtype} values where {column.type} was "
                "expected; re-export it with plain values."
            )
    checks = build_checks(frame, source, registered)
    checkpoint = checkpoint_for(context, source) if run is None else run.checkpoint(source)
    batch = {"dataframe": checks.table.to_pandas().set_index(CHECK_ROW)}
    parameters = {TODAY: pd.Timestamp(today)}
    # Named after the file, so an auditor browsing Data Docs sees which extract each run checked.
    run_name = extract.path.name
    if run is None:
        result = checkpoint.run(
            batch_parameters=batch, expectation_parameters=parameters,
            run_id=RunIdentifier(run_name=run_name, run_time=datetime.now(timezone.utc)),
        )
        (suite_result,) = result.run_results.values()
    else:
        suite_result = run.validate(checkpoint, batch, parameters, run_name)
    found = key_values(frame, source, quarantine_rows(extract, source, checks, suite_result, today))

    bad_rows = found.get_column(ROW_NUMBER).unique()
    valid = frame.filter(~pl.col(ROW_NUMBER).is_in(bad_rows.implode())).select(
        ROW_NUMBER, *[_typed(c, frame.schema[c.name]) for c in source.columns]
    )
    _check_parsed(frame, valid, source)
    broken = found.filter(~pl.col("check").is_in(RESOLVED_CHECKS)).get_column(ROW_NUMBER).n_unique()
    validation = Validation(
        source=source.name, valid=valid, quarantine=found.drop("check"), rows_in=frame.height,
        rows_valid=valid.height, rows_quarantined=bad_rows.len(), rows_broken=broken, rows_trimmed=trimmed,
        file=extract.path.name, ignored_columns=extract.ignored_columns, declared_rows=extract.declared_rows,
    )
    assert validation.rows_in == validation.rows_valid + validation.rows_quarantined, "rows lost in validation"
    log.info("%s: %d rows in, %d valid, %d quarantined (%d broken), %d with values trimmed", source.name, validation.rows_in,
             validation.rows_valid, validation.rows_quarantined, broken, trimmed)
    share = broken / validation.rows_in
    if share > max_invalid_share:
        validation = replace(validation, refused=_too_many_message(extract, source, validation, share, max_invalid_share))
        if refuse:
            raise InvalidShareError(validation.refused)
    return validation


def refusal_or_validation(source: Source, validate) -> Validation | Refused:
    """validate()'s Validation, or the extract's refusal when it cannot be used as a whole (its quarantine kept when there is one).

    validate must call validate_extract(..., refuse=False): the refused rows stay with the
    Validation, never in an exception.
    """
    try:
        validation = validate()
    except ExtractError as exc:
        return Refused(source.name, str(exc))
    if validation.refused:
        return Refused(source.name, validation.refused, validation)
    return validation


def reference_order(registry: dict[str, Source]) -> tuple[list[Source], list[Source]]:
    """The sources others reference (the population before its events), then the rest, each in registry order."""
    targets = {c.references.partition(".")[0] for s in registry.values() for c in s.columns if c.references}
    return [s for s in registry.values() if s.name in targets], [s for s in registry.values() if s.name not in targets]


def references_from(validation: Validation, registry: dict[str, Source]) -> dict[str, pl.Series]:
    """The validated values other sources must be found among, as validate_extract's registered wants them."""
    wanted = {c.references for s in registry.values() for c in s.columns if c.references}
    return {
        reference: registered_values(validation.valid.get_column(column))
        for reference in sorted(wanted)
        for source, _, column in [reference.partition(".")]
        if source == validation.source
    }


def _typed(column: Column, dtype: pl.DataType) -> pl.Expr:
    value = parsed(pl.col(column.name), dtype, column)
    if column.type == "str" and column.nullable and dtype == pl.String:
        value = as_text(pl.col(column.name), dtype)  # blank text in an optional column is no value
    return value.cast(POLARS_TYPES[column.type]).alias(column.name)


def _check_parsed(frame: pl.DataFrame, valid: pl.DataFrame, source: Source) -> None:
    """Every value GX accepted must have parsed; a gap would be silent data loss."""
    delivered = frame.filter(pl.col(ROW_NUMBER).is_in(valid.get_column(ROW_NUMBER).implode()))
    for column in source.columns:
        given = delivered.select(as_text(pl.col(column.name), frame.schema[column.name]).is_not_null().sum()).item()
        lost = given - valid[column.name].is_not_null().sum()
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
        f"{extract.path}: {validation.rows_broken} of {validation.rows_in} rows ({share:.0%}) failed "
        f"validation, more than the {limit:.0%} allowed. Most failures: {worst}. The extract looks broken: "
        f"ask {source.owner} for a corrected file (the quarantine lists every row and reason), or correct "
        "sources/registry.yaml if the rules are wrong."
    )
