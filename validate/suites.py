"""Great Expectations suites derived from the source registry, one per source.

GX does not see the extract row by row but its *check table* (validate/checks.py): one row per
distinct value of each check input (a column's delivered text with its parsed value, the pair of
known and event dates, how many current rows share a key, whether a row is a duplicate, superseded
or names an unknown person). Every rule here depends only on such a value, so checking each
distinct value once is exactly as strict as checking every row, and a Copenhagen-size extract
becomes a few hundred thousand check rows instead of tens of millions. Each check input has its own
columns in the table, named input__part (e.g. person_id__text, key__count), filled from the top
and null below; GX skips the nulls.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sources.registry import Column, Source
from validate.gx import import_gx

if TYPE_CHECKING:
    from great_expectations import ExpectationSuite

# A real calendar date written YYYY-MM-DD or, the Danish way, DD-MM-YYYY. A regex rather than a
# strftime rule: GX runs strptime once per value, and strptime also accepts 2024-1-5. Years
# 1000-2999 keep the leap-year rule finite and reject typos like 0224. [0-9], not \d, which
# matches other scripts' digits.
_MONTH_DAY = (
    r"(?:(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])"
    r"|(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)"
    r"|02-(?:0[1-9]|1[0-9]|2[0-8]))"
)
_DAY_MONTH = (
    r"(?:(?:0[1-9]|[12][0-9]|3[01])-(?:0[13578]|1[02])"
    r"|(?:0[1-9]|[12][0-9]|30)-(?:0[469]|11)"
    r"|(?:0[1-9]|1[0-9]|2[0-8])-02)"
)
_LEAP_YEAR = r"(?:[12][0-9](?:0[48]|[2468][048]|[13579][26])|(?:1[26]|2[048])00)"
ISO_DATE = rf"^(?:[12][0-9]{{3}}-{_MONTH_DAY}|{_LEAP_YEAR}-02-29)\Z"
DANISH_DATE = rf"^(?:{_DAY_MONTH}-[12][0-9]{{3}}|29-02-{_LEAP_YEAR})\Z"
DATE = rf"^(?:[12][0-9]{{3}}-{_MONTH_DAY}|{_LEAP_YEAR}-02-29|{_DAY_MONTH}-[12][0-9]{{3}}|29-02-{_LEAP_YEAR})\Z"
# A decimal comma is accepted: Danish exports separated by ';' commonly write 12,5. So are
# thousands separators where they cannot be mistaken for a decimal mark: 26.322,74 and 1.234.567
# the Danish way, 26,322.74 and 1,234,567 the English way (26.322 alone stays 26.322).
PLAIN_NUMBER = r"[+-]?[0-9]+(?:[.,][0-9]+)?(?:[eE][+-]?[0-9]+)?"
DANISH_THOUSANDS = r"[+-]?[0-9]{1,3}(?:(?:\.[0-9]{3})+,[0-9]+|(?:\.[0-9]{3}){2,})"
ENGLISH_THOUSANDS = r"[+-]?[0-9]{1,3}(?:(?:,[0-9]{3})+\.[0-9]+|(?:,[0-9]{3}){2,})"
NUMBER = rf"^(?:{PLAIN_NUMBER}|{DANISH_THOUSANDS}|{ENGLISH_THOUSANDS})\Z"
INTEGER = r"^[+-]?[0-9]{1,18}\Z"  # 18 digits always fit in Int64
TODAY = "today"  # a suite parameter, so one stored suite serves every day's run

# Check inputs that are not a registry column.
KEY, DUPLICATE, SUPERSEDED = "key", "duplicate", "superseded"


def pair_input(source: Source) -> str:
    return f"{source.known_date} after {source.event_date}"


def reference_input(column: Column) -> str:
    return f"{column.name} in {column.references}"


def field(name: str, part: str) -> str:
    """Column of the check table holding one part (text, date, number, count, known, event) of a check input."""
    return f"{name}__{part}"


def missing_input(column: Column) -> str:
    return f"{column.name} missing"


def build_suite(source: Source) -> ExpectationSuite:
    """The source's contract: registry rules per column, unique current keys, no copies, dates in order."""
    gx = import_gx()
    gxe = gx.expectations
    expectations = [e for column in source.columns for e in _column_expectations(gxe, column)]
    key = ", ".join(source.keys)
    expectations.append(
        gxe.ExpectColumnValuesToBeBetween(
            column=field(KEY, "count"), max_value=1, meta={"check": "unique", "column": list(source.keys)},
            notes=f"Rows are identified by ({key}); of rows sharing a key only one may be current.",
        )
    )
    expectations.append(
        gxe.ExpectColumnValuesToBeBetween(
            column=field(DUPLICATE, "count"), max_value=0, meta={"check": "duplicate", "column": list(source.keys)},
            notes="A row delivered twice (exactly, or again with a later known date) is kept once; the copies are quarantined.",
        )
    )
    if source.version:
        expectations.append(
            gxe.ExpectColumnValuesToBeBetween(
                column=field(SUPERSEDED, "count"), max_value=0, meta={"check": "superseded", "column": source.version},
                notes=f"A correction (higher {source.version}) replaces the row with the same key; the old row is kept in quarantine.",
            )
        )
    known, event = source.column(source.known_date), source.column(source.event_date)
    if known.type == event.type == "date" and known.name != event.name:
        expectations.append(
            gxe.ExpectColumnPairValuesAToBeGreaterThanB(
                column_A=field(pair_input(source), "known"), column_B=field(pair_input(source), "event"), or_equal=True,
                ignore_row_if="either_value_is_missing", meta={"check": "order", "column": known.name, "other": event.name},
                notes=f"Nothing can be known ({known.name}) before it happened ({event.name}).",
            )
        )
    for column in source.columns:
        if column.references:
            expectations.append(
                gxe.ExpectColumnValuesToBeBetween(
                    column=field(reference_input(column), "count"), max_value=0,
                    meta={"check": "reference", "column": column.name},
                    notes=f"{column.name} must be found in {column.references}.",
                )
            )
    return gx.ExpectationSuite(name=source.name, expectations=expectations)


def _column_expectations(gxe, column: Column) -> list:
    # meta names the rule and the registry column, so a failure can be told in plain words.
    def meta(check: str) -> dict:
        return {"check": check, "column": column.name}

    text, date, number = (field(column.name, part) for part in ("text", "date", "number"))
    found = []
    if not column.nullable:
        found.append(gxe.ExpectColumnValuesToBeBetween(
            column=field(missing_input(column), "count"), max_value=0, meta=meta("missing"),
            notes=f"{column.name} must be given: 1 here means some rows leave it empty.",
        ))
    if column.values is not None:
        found.append(gxe.ExpectColumnValuesToBeInSet(column=text, value_set=list(column.values), meta=meta("in_set")))
    if column.pattern is not None:
        found.append(gxe.ExpectColumnValuesToMatchRegex(column=text, regex=column.pattern, meta=meta("pattern")))
    if column.person_id:
        found.append(gxe.ExpectColumnValuesToBeBetween(
            column=field(column.name, "bad_birth_date"), max_value=0, meta=meta("cpr_date"),
            notes="A CPR number begins with a real birth date (DDMMYY, the century from the seventh digit); modulus 11 is not required.",
        ))
    if column.type == "date":
        found.append(gxe.ExpectColumnValuesToMatchRegex(
            column=text, regex=DATE, meta=meta("date"),
            notes="A real calendar date, YYYY-MM-DD or DD-MM-YYYY, years 1000-2999.",
        ))
        found.append(gxe.ExpectColumnValuesToBeBetween(
            column=date, max_value={"$PARAMETER": TODAY}, meta=meta("future"),
            notes="A date after the day of the run is impossible.",
        ))
    if column.type in ("float", "int"):
        regex = NUMBER if column.type == "float" else INTEGER
        found.append(gxe.ExpectColumnValuesToMatchRegex(column=text, regex=regex, meta=meta(column.type)))
        if column.min is not None or column.max is not None:
            found.append(gxe.ExpectColumnValuesToBeBetween(
                column=number, min_value=column.min, max_value=column.max, meta=meta("range"),
            ))
    return found
