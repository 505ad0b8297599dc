"""Quarantine rows from a GX validation result: one per failed expectation per row, in plain English."""

from __future__ import annotations

from datetime import date

import polars as pl

from sources.readers import ROW_NUMBER, Extract
from sources.registry import Column, Source

QUARANTINE_SCHEMA = {
    "source": pl.String, "file": pl.String, "row_number": pl.Int64, "column": pl.String,
    "expectation": pl.String, "reason": pl.String, "value": pl.String,
}


def quarantine_rows(extract: Extract, source: Source, text: pl.DataFrame, suite_result, today: date) -> pl.DataFrame:
    """The failing rows of the extract (as text) with reasons; personal values are left out."""
    failures = _failures(suite_result)
    failing = sorted({row for _, _, rows in failures for row in rows})
    by_row = text.filter(pl.col(ROW_NUMBER).is_in(failing)).rows_by_key(ROW_NUMBER, named=True, unique=True)
    records = []
    for meta, expectation, rows in failures:
        if meta["check"] == "unique":
            duplicates = _duplicate_rows(text, source)
            personal = any(source.column(key).personal for key in source.keys)
            for row in rows:
                value = None if personal else " | ".join(str(by_row[row][key]) for key in source.keys)
                reason = _unique_reason(source, duplicates.get(row, []))
                records.append((source.name, extract.path.name, row, ", ".join(source.keys), expectation, reason, value))
            continue
        column = source.column(meta["column"])
        other = source.column(meta["other"]) if "other" in meta else None
        for row in rows:
            raw = by_row[row][column.name]
            reason = _reason(meta["check"], column, raw, other, by_row[row][other.name] if other else None, today)
            value = None if column.personal else raw
            records.append((source.name, extract.path.name, row, column.name, expectation, reason, value))
    frame = pl.DataFrame(records, schema=QUARANTINE_SCHEMA, orient="row")
    return frame.sort("row_number", "column", "expectation")


def _failures(suite_result) -> list[tuple[dict, str, list[int]]]:
    """(suite meta, expectation type, failing row numbers) per failed expectation; GX errors are raised."""
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
        # With exclude_unexpected_values GX gives one dict holding the list of all failing row numbers.
        index_list = result.result.get("unexpected_index_list") or [{ROW_NUMBER: []}]
        rows = [int(row) for row in index_list[0][ROW_NUMBER]]
        if len(rows) != result.result.get("unexpected_count"):
            raise RuntimeError(f"GX reported {config.type} on {config.kwargs} as failed without the failing rows")
        found.append((config.meta, config.type, rows))
    return found


def _reason(check: str, column: Column, raw: str | None, other: Column | None, other_raw: str | None, today: date) -> str:
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
    if check == "date":
        return f"{quoted} is not a calendar date written YYYY-MM-DD (years 1000-2999)"
    if check == "float":
        return f"{quoted} is not a number"
    if check == "int":
        return f"{quoted} is not a whole number"
    if check == "future":
        return f"{plain} is in the future (after {today.isoformat()})"
    if check == "range":
        if column.min is not None and float(raw.replace(",", ".")) < column.min:
            return f"{plain} is below the minimum {column.min:g}"
        return f"{plain} is above the maximum {column.max:g}"
    if check == "order":
        return f"{plain} is before {other.name}" + ("" if other.personal else f" {other_raw}")
    raise ValueError(f"unknown check {check!r} in suite meta")


def _duplicate_rows(text: pl.DataFrame, source: Source) -> dict[int, list[int]]:
    """Row number -> every row number sharing its key."""
    keys = list(source.keys)
    groups = text.drop_nulls(keys).group_by(keys).agg(pl.col(ROW_NUMBER).sort())
    repeated = groups.filter(pl.col(ROW_NUMBER).list.len() > 1).get_column(ROW_NUMBER).to_list()
    return {row: rows for rows in repeated for row in rows}


def _unique_reason(source: Source, rows: list[int]) -> str:
    key = f"the key ({', '.join(source.keys)}) is repeated"
    if not rows:
        return key
    listed = ", ".join(str(r) for r in rows[:5]) + (f" … ({len(rows)} in all)" if len(rows) > 5 else "")
    return f"{key} in rows {listed}"
