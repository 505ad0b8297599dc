"""Great Expectations suites derived from the source registry, one per source."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sources.registry import Column, Source
from validate.gx import import_gx

if TYPE_CHECKING:
    from great_expectations import ExpectationSuite

# A real calendar date written YYYY-MM-DD. A regex rather than a strftime rule: GX runs strptime once
# per value (seconds per 100k rows), and strptime also accepts 2024-1-5. Years 1000-2999 keep the
# leap-year rule finite and reject typos like 0224. [0-9], not \d, which matches other scripts' digits.
_MONTH_DAY = (
    r"(?:(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])"
    r"|(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)"
    r"|02-(?:0[1-9]|1[0-9]|2[0-8]))"
)
_LEAP_YEAR = r"(?:[12][0-9](?:0[48]|[2468][048]|[13579][26])|(?:1[26]|2[048])00)"
ISO_DATE = rf"^(?:[12][0-9]{{3}}-{_MONTH_DAY}|{_LEAP_YEAR}-02-29)\Z"
# A decimal comma is accepted: Danish exports separated by ';' commonly write 12,5.
NUMBER = r"^[+-]?[0-9]+(?:[.,][0-9]+)?(?:[eE][+-]?[0-9]+)?\Z"
INTEGER = r"^[+-]?[0-9]{1,18}\Z"  # 18 digits always fit in Int64
TODAY = "today"  # a suite parameter, so one stored suite serves every day's run


def parsed_column(column: Column) -> str:
    """Name of the helper column holding the parsed value of a date or number column."""
    return f"{column.name}__{column.type}"


def build_suite(source: Source) -> ExpectationSuite:
    """The source's contract: registry rules per column, unique keys, no future or late-known dates."""
    gx = import_gx()
    gxe = gx.expectations
    expectations = [e for column in source.columns for e in _column_expectations(gxe, column)]
    key = list(source.keys)
    unique = {
        "meta": {"check": "unique", "column": key},
        "notes": f"Rows are identified by ({', '.join(key)}); every copy of a repeated key is quarantined.",
    }
    if len(key) == 1:  # GX's compound rule needs two or more columns
        expectations.append(gxe.ExpectColumnValuesToBeUnique(column=key[0], **unique))
    else:
        expectations.append(
            gxe.ExpectCompoundColumnsToBeUnique(column_list=key, ignore_row_if="any_value_is_missing", **unique)
        )
    known, event = source.column(source.known_date), source.column(source.event_date)
    if known.type == event.type == "date" and known.name != event.name:
        expectations.append(
            gxe.ExpectColumnPairValuesAToBeGreaterThanB(
                column_A=parsed_column(known), column_B=parsed_column(event), or_equal=True,
                ignore_row_if="either_value_is_missing",
                meta={"check": "order", "column": known.name, "other": event.name},
                notes=f"Nothing can be known ({known.name}) before it happened ({event.name}).",
            )
        )
    return gx.ExpectationSuite(name=source.name, expectations=expectations)


def _column_expectations(gxe, column: Column) -> list:
    # meta names the rule and the registry column, so a failure can be told in plain words even
    # when GX checked a parsed helper column.
    def meta(check: str) -> dict:
        return {"check": check, "column": column.name}

    name = column.name
    found = []
    if not column.nullable:
        found.append(gxe.ExpectColumnValuesToNotBeNull(column=name, meta=meta("missing")))
    if column.values is not None:
        found.append(gxe.ExpectColumnValuesToBeInSet(column=name, value_set=list(column.values), meta=meta("in_set")))
    if column.pattern is not None:
        found.append(gxe.ExpectColumnValuesToMatchRegex(column=name, regex=column.pattern, meta=meta("pattern")))
    if column.type == "date":
        found.append(
            gxe.ExpectColumnValuesToMatchRegex(
                column=name, regex=ISO_DATE, meta=meta("date"), notes="A real calendar date, YYYY-MM-DD, 1000-2999."
            )
        )
        found.append(
            gxe.ExpectColumnValuesToBeBetween(
                column=parsed_column(column), max_value={"$PARAMETER": TODAY}, meta=meta("future"),
                notes="A date after the day of the run is impossible.",
            )
        )
    if column.type in ("float", "int"):
        regex = NUMBER if column.type == "float" else INTEGER
        found.append(gxe.ExpectColumnValuesToMatchRegex(column=name, regex=regex, meta=meta(column.type)))
        if column.min is not None or column.max is not None:
            found.append(
                gxe.ExpectColumnValuesToBeBetween(
                    column=parsed_column(column), min_value=column.min, max_value=column.max, meta=meta("range")
                )
            )
    return found
