"""Quarantine rows from a GX validation result: one per failed rule per row, in plain English."""

from __future__ import annotations

from datetime import date

import polars as pl

from sources.readers import ROW_NUMBER, Extract
from sources.registry import Column, Source
from validate.checks import CHECK_ROW, Checks, as_text
from validate.suites import KEY, field, pair_input

QUARANTINE_SCHEMA = {
    "source": pl.String, "file": pl.String, "row_number": pl.Int64, "column": pl.String,
    "expectation": pl.String, "reason": pl.String, "value": pl.String,
}
# Rows quarantined only for these are resolved deliveries (copies, corrected rows), not broken ones.
RESOLVED_CHECKS = ("duplicate", "superseded")
_PARTS = {ROW_NUMBER: pl.Int64, "column": pl.String, "expectation": pl.String, "reason": pl.String, "value": pl.String, "check": pl.String}


def quarantine_rows(extract: Extract, source: Source, checks: Checks, suite_result, today: date) -> pl.DataFrame:
    """The failing rows of the extract with reasons and the rule's check; personal values are left out."""
    frame = extract.frame
    pieces = [pl.DataFrame(schema=_PARTS)]
    for meta, expectation, check_rows in _failures(suite_result):
        check = meta["check"]
        if check in ("unique", "duplicate", "superseded"):
            rows = _repeated(checks.repeated, source, check, check_rows, checks)
        elif check == "reference":
            column = source.column(meta["column"])
            rows = checks.unregistered[column.name].with_columns(
                reason=pl.lit(f"{column.name} is not found in {column.references}: the id is unknown or mistyped"),
                value=pl.lit(None, pl.String), column=pl.lit(column.name),
            )
        elif check == "missing":
            column = source.column(meta["column"])
            rows = _missing(frame, column, checks)
        elif check == "order":
            rows = _bad_pairs(frame, source, checks, check_rows)
        else:
            rows = _bad_values(frame, source.column(meta["column"]), check, checks, check_rows, today)
        pieces.append(rows.select(ROW_NUMBER, "column", pl.lit(expectation).alias("expectation"), "reason", "value",
                                  pl.lit(check).alias("check")).cast(_PARTS))
    found = pl.concat(pieces).sort(ROW_NUMBER, "column", "expectation")
    return found.select(pl.lit(source.name).alias("source"), pl.lit(extract.path.name).alias("file"), pl.all())


def _failures(suite_result) -> list[tuple[dict, str, list[int]]]:
    """(suite meta, expectation type, failing check rows) per failed expectation; GX errors are raised."""
    found = []
    for result in suite_result.results:
        config = result.expectation_config
        info = result.exception_info or {}
        infos = [info] if "raised_exception" in info else list(info.values())
        errors = [i.get("exception_message") for i in infos if i.get("raised_exception")]
        if errors:
            raise RuntimeError(f"GX could not evaluate {config.type} on {config.kwargs}: {errors[0]}")
        if result.success:
            continue
        # With exclude_unexpected_values GX gives one dict holding the list of all failing check rows.
        index_list = result.result.get("unexpected_index_list") or []
        rows: list[int] = []
        for entry in index_list:
            value = entry[CHECK_ROW]
            rows.extend(int(v) for v in value) if isinstance(value, list) else rows.append(int(value))
        if len(rows) != result.result.get("unexpected_count"):
            raise RuntimeError(f"GX reported {config.type} on {config.kwargs} as failed without the failing rows")
        found.append((config.meta, config.type, rows))
    return found


def _missing(frame: pl.DataFrame, column: Column, checks: Checks) -> pl.DataFrame:
    table = checks.table.select(CHECK_ROW, text=pl.col(field(column.name, "text")))
    gone = checks.lookups[column.name].join(table, on=CHECK_ROW).filter(pl.col("text").is_null()).select(column.name)
    rows = frame.select(ROW_NUMBER, column.name).join(gone, on=column.name, nulls_equal=True)
    return rows.with_columns(column=pl.lit(column.name), reason=pl.lit(f"{column.name} is missing"), value=pl.lit(None, pl.String))


def _bad_values(frame: pl.DataFrame, column: Column, check: str, checks: Checks, check_rows: list[int], today: date) -> pl.DataFrame:
    """Rows holding a failing value of one column, each with the reason told for that value."""
    table = checks.table.filter(pl.col(CHECK_ROW).is_in(check_rows)).select(
        CHECK_ROW, text=pl.col(field(column.name, "text")),
        number=pl.col(field(column.name, "number")) if column.type in ("float", "int") else pl.lit(None, pl.Float64),
    )
    delivered = checks.lookups[column.name].join(table, on=CHECK_ROW)
    reasons = [_reason(check, column, text, number, today) for text, number in zip(delivered["text"], delivered["number"])]
    bad = delivered.select(
        column.name,
        reason=pl.Series(reasons, dtype=pl.String),
        value=pl.lit(None, pl.String) if column.personal else pl.col("text"),
    )
    rows = frame.select(ROW_NUMBER, column.name).join(bad, on=column.name, nulls_equal=True)
    return rows.with_columns(column=pl.lit(column.name))


def _bad_pairs(frame: pl.DataFrame, source: Source, checks: Checks, check_rows: list[int]) -> pl.DataFrame:
    known, event = source.column(source.known_date), source.column(source.event_date)
    lookup = checks.lookups[pair_input(source)].filter(pl.col(CHECK_ROW).is_in(check_rows)).drop(CHECK_ROW)
    schema = frame.schema
    bad = lookup.with_columns(
        _k=as_text(pl.col(known.name), schema[known.name]), _e=as_text(pl.col(event.name), schema[event.name]),
    )
    other = "" if event.personal else " {}"
    bad = bad.with_columns(
        reason=pl.format(f"{known.name} {{}} is before {event.name}{other}", *(["_k", "_e"] if other else ["_k"])),
        value=pl.lit(None, pl.String) if known.personal else pl.col("_k"),
    ).drop("_k", "_e")
    rows = frame.select(ROW_NUMBER, known.name, event.name).join(bad, on=[known.name, event.name])
    return rows.with_columns(column=pl.lit(known.name))


def _repeated(repeated: pl.DataFrame, source: Source, check: str, check_rows: list[int], checks: Checks) -> pl.DataFrame:
    keys = ", ".join(source.keys)
    if check == "duplicate":
        rows = repeated.filter(pl.col("duplicate_of").is_not_null())
        reason = pl.when(pl.col("exact")).then(pl.format("an exact copy of row {}", "duplicate_of")).otherwise(
            pl.format("the same as row {}, delivered again with a later {}", "duplicate_of", pl.lit(source.known_date)))
        return rows.select(ROW_NUMBER, reason=reason, value=pl.lit(None, pl.String), column=pl.lit(keys))
    if check == "superseded":
        rows = repeated.filter(pl.col("superseded_by").is_not_null())
        reason = pl.format("superseded by the correction in row {} ({} {})", "superseded_by", pl.lit(source.version), "by_version")
        return rows.select(ROW_NUMBER, reason=reason, value=pl.lit(None, pl.String), column=pl.lit(source.version))
    counts = checks.table.filter(pl.col(CHECK_ROW).is_in(check_rows))[field(KEY, "count")]
    rows = repeated.filter(pl.col("key_count").is_in(counts.implode()))
    listed = pl.col("key_rows").list.head(5).cast(pl.List(pl.String)).list.join(", ")
    more = pl.when(pl.col("key_rows").list.len() > 5).then(pl.format(" … ({} in all)", pl.col("key_rows").list.len())).otherwise(pl.lit(""))
    reason = pl.format("the key ({}) is repeated in rows {}{}", pl.lit(keys), listed, more)
    return rows.select(ROW_NUMBER, reason=reason, value=pl.lit(None, pl.String), column=pl.lit(keys))


def key_values(frame: pl.DataFrame, source: Source, quarantine: pl.DataFrame) -> pl.DataFrame:
    """Quarantine rows of repeated keys with the key shown, where no key column is personal."""
    if any(source.column(k).personal for k in source.keys):
        return quarantine
    shown = frame.select(ROW_NUMBER, _key=pl.concat_str([pl.col(k).cast(pl.String) for k in source.keys], separator=" | "))
    keyed = pl.col("check").is_in(["unique", "duplicate"])
    return quarantine.join(shown, on=ROW_NUMBER, how="left").with_columns(
        value=pl.when(keyed).then(pl.col("_key")).otherwise(pl.col("value"))
    ).drop("_key")


def _reason(check: str, column: Column, raw: str | None, number: float | None, today: date) -> str:
    """Plain English; the value of a personal column is never quoted."""
    name = column.name
    quoted = name if column.personal else f"{name} '{raw}'"
    plain = name if column.personal else f"{name} {raw}"
    if check == "missing":
        return f"{name} is missing"
    if check == "in_set":
        return f"{quoted} is not one of {', '.join(column.values)}"
    if check == "pattern":
        return f"{quoted} does not match the pattern {column.pattern}"
    if check == "cpr_date":
        return f"{name} does not begin with a real birth date (DDMMYY, century from the seventh digit)"
    if check == "date":
        return f"{quoted} is not a calendar date written YYYY-MM-DD or DD-MM-YYYY (years 1000-2999)"
    if check == "float":
        return f"{quoted} is not a number"
    if check == "int":
        return f"{quoted} is not a whole number"
    if check == "future":
        return f"{plain} is in the future (after {today.isoformat()})"
    if check == "range":
        if column.min is not None and number is not None and number < column.min:
            return f"{plain} is below the minimum {column.min:g}"
        return f"{plain} is above the maximum {column.max:g}"
    raise ValueError(f"unknown check {check!r} in suite meta")
