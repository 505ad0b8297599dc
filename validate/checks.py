"""The check table GX validates: each check input's distinct values once, with a way back to the rows.

An extract row is valid when every rule holds for it; each rule depends on one *check input* of
the row only: a column's delivered value, the pair (known date, event date), the number of
current rows sharing its key, whether it repeats an earlier row, whether a correction supersedes
it, or whether its person is known. So GX checks each distinct input value once, and a failing
value is mapped back to every row holding it. Duplicates, corrections and key conflicts are
resolved here, among the few rows whose key occurs more than once.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from sources.readers import ROW_NUMBER
from sources.registry import Column, Source
from validate.suites import (
    DANISH_DATE, DANISH_THOUSANDS, DATE, DUPLICATE, ENGLISH_THOUSANDS, INTEGER, KEY, NUMBER, SUPERSEDED, field,
    missing_input, pair_input, reference_input,
)

CHECK_ROW = "check_row"
NATIVE = {"str": pl.String, "date": pl.Date, "float": pl.Float64, "int": pl.Int64}


@dataclass(frozen=True)
class Checks:
    # What GX validates: per check input its own columns (field(input, part)), holding the input's
    # distinct values from the top down and nulls below; check_row is the position.
    table: pl.DataFrame
    # Per check input: its distinct delivered values (columns as in the extract) by check_row.
    lookups: dict[str, pl.DataFrame]
    # Rows whose key occurs more than once: key_count among current rows, duplicate_of, superseded_by.
    repeated: pl.DataFrame
    # Per referencing column: row numbers whose value is not found in the referenced source.
    unregistered: dict[str, pl.DataFrame]


def polars_regex(pattern: str) -> str:
    # GX checks with Python's re, whose end-of-text anchor is \Z; polars (Rust) spells it \z.
    return pattern.replace(r"\Z", r"\z")


def as_text(values: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    """Delivered values as the text GX checks; typed Parquet values are written the ISO way."""
    if isinstance(dtype, pl.Datetime):
        values = values.dt.date()
    text = values.cast(pl.String)
    if dtype == pl.String:
        # Blank text is missing text.
        text = pl.when(text.str.strip_chars() == "").then(None).otherwise(text)
    return text


def parsed(values: pl.Expr, dtype: pl.DataType, column: Column) -> pl.Expr:
    """The value as the column's type where the format rule accepts it, else null."""
    target = NATIVE[column.type]
    if dtype == target:
        return values
    if column.type == "date" and isinstance(dtype, (pl.Datetime, pl.Date)):
        return values.cast(pl.Datetime).dt.date()
    text = as_text(values, dtype)
    if column.type == "date":
        iso = text.str.to_date("%Y-%m-%d", strict=False)
        danish = text.str.to_date("%d-%m-%Y", strict=False)
        ok = text.str.contains(polars_regex(DATE))
        value = pl.when(text.str.contains(polars_regex(DANISH_DATE))).then(danish).otherwise(iso)
    elif column.type == "float":
        ok = text.str.contains(polars_regex(NUMBER))
        value = (
            pl.when(text.str.contains(f"^{DANISH_THOUSANDS}$")).then(text.str.replace_all(".", "", literal=True))
            .when(text.str.contains(f"^{ENGLISH_THOUSANDS}$")).then(text.str.replace_all(",", "", literal=True))
            .otherwise(text)
            .str.replace(",", ".", literal=True).cast(pl.Float64, strict=False)
        )
    elif column.type == "int":
        ok = text.str.contains(polars_regex(INTEGER))
        value = text.cast(pl.Int64, strict=False)
    else:
        return text
    return pl.when(ok).then(value)


# DDMMYY-SSSS, or as spreadsheets and other systems write it: without the dash, with a space, or
# with the leading zero of a birth day before the 10th dropped.
_CPR_WRITTEN = r"^([0-9]{5,6})[ -]?([0-9]{4})$"


def tidy(frame: pl.DataFrame, source: Source) -> tuple[pl.DataFrame, int]:
    """Delivered text without surrounding spaces and CPR numbers written DDMMYY-SSSS; and how many rows had spaces trimmed."""
    text = [c for c in source.columns if frame.schema[c.name] == pl.String]
    if not text:
        return frame, 0
    # Only spaces is no value at all (missing), not a value with spaces around it.
    padded = pl.any_horizontal([
        (pl.col(c.name) != pl.col(c.name).str.strip_chars()) & (pl.col(c.name).str.strip_chars() != "") for c in text
    ]).fill_null(False)
    trimmed = frame.select(padded.sum()).item()
    tidied = []
    for column in text:
        value = pl.col(column.name).str.strip_chars()
        if column.person_id:
            digits = value.str.extract_groups(_CPR_WRITTEN)
            value = pl.when(value.str.contains(_CPR_WRITTEN)).then(
                pl.concat_str([digits.struct.field("1").str.zfill(6), digits.struct.field("2")], separator="-")
            ).otherwise(value)
        tidied.append(value.alias(column.name))
    return frame.with_columns(tidied), int(trimmed)


def cpr_birth_date(text: pl.Expr) -> pl.Expr:
    """The birth date a DDMMYY-SSSS number begins with, the century read from its seventh digit; null when no real date."""
    year = text.str.slice(4, 2).cast(pl.Int32, strict=False)
    seventh = text.str.slice(7, 1).cast(pl.Int32, strict=False)
    century = (
        pl.when(seventh <= 3).then(1900)
        .when(seventh.is_in([4, 9])).then(pl.when(year <= 36).then(2000).otherwise(1900))
        .otherwise(pl.when(year <= 57).then(2000).otherwise(1800))
    )
    written = pl.concat_str([(century + year).cast(pl.String), text.str.slice(2, 2), text.str.slice(0, 2)], separator="-")
    return pl.when(text.str.contains(r"^[0-9]{6}-[0-9]{4}$")).then(written.str.to_date("%Y-%m-%d", strict=False))


def build_checks(frame: pl.DataFrame, source: Source, registered: dict[str, pl.Series] | None = None) -> Checks:
    """The check table of an extract (row_number + registry columns as delivered)."""
    parts: list[pl.DataFrame] = []
    lookups: dict[str, pl.DataFrame] = {}

    def add(name: str, delivered: pl.DataFrame, table: pl.DataFrame) -> None:
        position = pl.int_range(delivered.height, dtype=pl.Int64, eager=True).alias(CHECK_ROW)
        lookups[name] = delivered.with_columns(position)
        parts.append(table.rename({c: field(name, c) for c in table.columns}))

    def flags(bad: int, total: int) -> pl.DataFrame:
        # The distinct values of a yes/no property of rows: 1 where some row has it, 0 where some has not.
        values = ([1] if bad else []) + ([0] if bad < total else [])
        return pl.DataFrame({"count": values}, schema={"count": pl.Int64})

    schema = frame.schema
    for column in source.columns:
        distinct = frame.select(pl.col(column.name).unique())
        dtype = schema[column.name]
        table = distinct.select(
            text=as_text(pl.col(column.name), dtype),
            date=parsed(pl.col(column.name), dtype, column) if column.type == "date" else pl.lit(None, pl.Date),
            number=parsed(pl.col(column.name), dtype, column).cast(pl.Float64) if column.type in ("float", "int") else pl.lit(None, pl.Float64),
        )
        keep = ["text"] + (["date"] if column.type == "date" else []) + (["number"] if column.type in ("float", "int") else [])
        if column.person_id:
            shaped = table["text"].str.contains(r"^[0-9]{6}-[0-9]{4}$")
            no_date = table.select(cpr_birth_date(pl.col("text")).is_null()).to_series()
            table = table.with_columns(bad_birth_date=pl.when(shaped).then((no_date & shaped).cast(pl.Int64)))
            keep.append("bad_birth_date")
        add(column.name, distinct, table.select(keep))
        missing = table["text"].is_null()
        add(missing_input(column), pl.DataFrame({"count": [1, 0]}), flags(int(missing.sum()), table.height))

    known, event = source.column(source.known_date), source.column(source.event_date)
    if known.type == event.type == "date" and known.name != event.name:
        pairs = frame.select(known.name, event.name).unique()
        add(pair_input(source), pairs, pairs.select(
            known=parsed(pl.col(known.name), schema[known.name], known),
            event=parsed(pl.col(event.name), schema[event.name], event),
        ))

    repeated = resolve_repeats(frame, source)
    current = repeated.filter(pl.col("duplicate_of").is_null() & pl.col("superseded_by").is_null())
    counts = sorted(({1} if repeated.height < frame.height else set()) | set(current["key_count"].drop_nulls().to_list()))
    count_inputs = {
        KEY: pl.DataFrame({"count": counts}, schema={"count": pl.Int64}),
        DUPLICATE: flags(int(repeated["duplicate_of"].is_not_null().sum()), frame.height),
    }
    if source.version:
        count_inputs[SUPERSEDED] = flags(int(repeated["superseded_by"].is_not_null().sum()), frame.height)

    unregistered: dict[str, pl.DataFrame] = {}
    for column in source.columns:
        if column.references and registered is not None and column.references in registered:
            unknown = unregistered_values(frame.get_column(column.name), registered[column.references])
            unregistered[column.name] = frame.filter(pl.col(column.name).is_in(unknown.implode())).select(ROW_NUMBER)
            count_inputs[reference_input(column)] = flags(unregistered[column.name].height, frame.height)
        elif column.references:
            # Nothing to look the values up in (the referenced source is not loaded): nothing checked.
            count_inputs[reference_input(column)] = pl.DataFrame(schema={"count": pl.Int64})
    for name, values in count_inputs.items():
        add(name, values, values)

    height = max(part.height for part in parts)
    padded = [part.vstack(part.clear(height - part.height)) for part in parts]
    table = pl.concat([pl.DataFrame({CHECK_ROW: pl.int_range(height, dtype=pl.Int64, eager=True)}), *padded], how="horizontal")
    return Checks(table=table, lookups=lookups, repeated=repeated, unregistered=unregistered)


def unregistered_values(values: pl.Series, known: pl.Series) -> pl.Series:
    """The distinct non-null values not among known (e.g. person ids the population does not hold)."""
    distinct = values.drop_nulls().unique()
    if distinct.dtype != known.dtype:  # e.g. ids typed as numbers in one Parquet file: compare as delivered text
        distinct, known = distinct.cast(pl.String), known.cast(pl.String)
    known = known.drop_nulls()
    if known.is_empty() or distinct.is_empty():
        return distinct
    if not known.flags["SORTED_ASC"]:
        # Hashing a municipality's 650,000 ids costs 0.1-0.2 s per referencing column; a sorted
        # list (as registered_values gives) is searched by bisection instead.
        known = known.sort()
    at = known.search_sorted(distinct).clip(0, known.len() - 1)
    return distinct.filter(known.gather(at) != distinct)


def registered_values(values: pl.Series) -> pl.Series:
    """Values other sources must be found among, prepared once for fast lookups (distinct, sorted)."""
    return values.drop_nulls().unique().sort()


def resolve_repeats(frame: pl.DataFrame, source: Source) -> pl.DataFrame:
    """For rows whose key occurs more than once: which are copies, which are superseded, which conflict.

    Copies: rows equal in every column but the known date; the first known is kept. Of the other
    rows sharing a key, the highest version is current and older versions are superseded. The
    current rows of a key are counted: more than one is a conflict, and all of them are quarantined.
    """
    keys = list(source.keys)
    complete = pl.all_horizontal([pl.col(k).is_not_null() for k in keys])
    multi = frame.filter(complete & (pl.len().over(keys) > 1))
    empty = {ROW_NUMBER: pl.Int64, "key_count": pl.Int64, "duplicate_of": pl.Int64, "exact": pl.Boolean,
             "superseded_by": pl.Int64, "by_version": pl.String, "key_rows": pl.List(pl.Int64)}
    if multi.is_empty():
        return pl.DataFrame(schema=empty)
    content = [c for c in source.column_names if c != source.known_date]
    multi = multi.sort(source.known_date, ROW_NUMBER, nulls_last=True)
    first = pl.col(ROW_NUMBER).first().over(content)
    multi = multi.with_columns(
        duplicate_of=pl.when(pl.col(ROW_NUMBER) != first).then(first),
        exact=pl.col(source.known_date).eq_missing(pl.col(source.known_date).first().over(content)),
    )
    if source.version:
        version = parsed(pl.col(source.version), frame.schema[source.version], source.column(source.version))
        live = pl.col("duplicate_of").is_null()
        multi = multi.with_columns(_version=pl.when(live).then(version))
        multi = multi.with_columns(_newest=pl.col("_version").max().over(keys))
        multi = multi.with_columns(
            _newest_row=pl.col(ROW_NUMBER).filter(pl.col("_version") == pl.col("_newest")).first().over(keys)
        )
        older = live & (pl.col("_version") < pl.col("_newest"))
        multi = multi.with_columns(
            superseded_by=pl.when(older).then(pl.col("_newest_row")),
            by_version=pl.when(older).then(pl.col("_newest").cast(pl.String)),
        ).drop("_version", "_newest", "_newest_row")
    else:
        multi = multi.with_columns(superseded_by=pl.lit(None, pl.Int64), by_version=pl.lit(None, pl.String))
    is_current = pl.col("duplicate_of").is_null() & pl.col("superseded_by").is_null()
    multi = multi.with_columns(key_count=pl.when(is_current).then(is_current.sum().over(keys).cast(pl.Int64)))
    groups = multi.filter(is_current).group_by(keys).agg(key_rows=pl.col(ROW_NUMBER).sort())
    multi = multi.join(groups, on=keys, how="left")
    return multi.select(list(empty)).cast(empty)
