"""The person columns rules and routes may read, and the checking of SQL conditions over them."""

from __future__ import annotations

from datetime import date

import polars as pl

from features.compute import feature_schema

# The contract with the feature and score stages: one row per person on an as-of date, holding the
# link stage's columns, every catalogue feature, the score and the team of an open case.
PERSON_SCHEMA: dict[str, pl.DataType] = {
    "person": pl.String(),
    "target": pl.String(),
    "age_years": pl.Int64(),
    "district": pl.String(),
    "case_team": pl.String(),
    "score": pl.Int64(),
    "probability": pl.Float64(),
    "model_version": pl.String(),
    **feature_schema(),
    # From the link stage; sex and origin group are left out on purpose: no rule may select by them.
    "children_in_household": pl.Int64(),
    # From the CPR register through the link stage; null until a source supplies them.
    "moved_away": pl.Boolean(),
    "deceased": pl.Boolean(),
}
# A rule about one named pseudonym would be a decision about a person, not a rule.
READABLE_COLUMNS: tuple[str, ...] = tuple(c for c in PERSON_SCHEMA if c != "person")
# A family rule reads one row per family instead of a person's (rules/families.py).
TARGETS = ("child", "adult", "family")

# What suppression rules read besides the person: where routing sends the flag, and the latest
# human decision on an earlier flag for the same person (routing/suppression.py fills these in).
FLAG_CONTEXT_SCHEMA: dict[str, pl.DataType] = {
    "team": pl.String(),
    "department": pl.String(),
    "case_department": pl.String(),
    "priority": pl.Int64(),
    "last_decision": pl.String(),
    "days_since_decision": pl.Int64(),
    "priority_at_decision": pl.Int64(),
    "days_until_deferral_ends": pl.Int64(),
    # The person's most urgent flag from an earlier night that is still open and undecided.
    "open_flag_id": pl.Int64(),
    "open_flag_as_of": pl.Date(),
    "open_flag_priority": pl.Int64(),
}
SUPPRESSION_SCHEMA: dict[str, pl.DataType] = PERSON_SCHEMA | FLAG_CONTEXT_SCHEMA
SUPPRESSION_COLUMNS: tuple[str, ...] = tuple(c for c in SUPPRESSION_SCHEMA if c != "person")


class ConditionError(ValueError):
    """A condition that cannot be used; the caller adds where it was found."""


def parse_condition(
    condition: object, schema: dict[str, pl.DataType] = PERSON_SCHEMA
) -> tuple[pl.Expr, tuple[str, ...]]:
    """The polars expression of a SQL boolean condition over schema's columns and the columns it reads."""
    if not isinstance(condition, str) or not condition.strip():
        raise ConditionError(f"expected a SQL boolean expression such as 'score >= 17', got {condition!r}")
    try:
        expr = pl.sql_expr(condition)
    except Exception as exc:  # polars raises several SQL error types; all mean the same here
        raise ConditionError(f"cannot parse {condition!r}: {exc}") from None
    columns = tuple(dict.fromkeys(expr.meta.root_names()))
    if not columns:
        raise ConditionError(f"{condition!r} reads no column, so it would be the same for everyone")
    readable = [c for c in schema if c != "person"]
    unknown = [c for c in columns if c not in readable]
    if unknown:
        raise ConditionError(f"{condition!r} uses unknown column(s) {unknown}; allowed: {readable}")
    # Evaluating on a typed row of unknowns catches type errors (text compared with a number) at load
    # time, and a condition that holds when nothing is known (IS NULL, COALESCE) breaks "unknown never fires".
    try:
        result = pl.DataFrame([dict.fromkeys(schema)], schema=schema).select(expr.alias("result"))
    except Exception as exc:
        raise ConditionError(f"{condition!r} cannot be evaluated: {str(exc).splitlines()[0]}") from None
    if result.schema["result"] != pl.Boolean:
        raise ConditionError(f"{condition!r} must be true or false, but gives {result.schema['result']}")
    if result.item() is True:
        raise ConditionError(
            f"{condition!r} holds for a person whose values are all unknown; unknown values must never make it true"
        )
    return expr, columns


def column_kind(column: str, schema: dict[str, pl.DataType] = PERSON_SCHEMA) -> str:
    """The kind of value a column holds, in words for error messages."""
    dtype = schema[column]
    if dtype == pl.Boolean:
        return "true or false"
    if dtype == pl.Date:
        return "a date like 2025-01-31"
    return "text" if dtype == pl.String else "a whole number" if dtype == pl.Int64 else "a number"


def fits_column(column: str, value: object, schema: dict[str, pl.DataType] = PERSON_SCHEMA) -> bool:
    """Whether a plain YAML value can stand in the given column (None always can)."""
    if value is None:
        return True
    dtype = schema[column]
    if dtype == pl.Boolean:
        return isinstance(value, bool)
    if dtype == pl.Date:
        return type(value) is date  # a datetime is a date too, but the column holds days
    if isinstance(value, bool):
        return False
    if dtype == pl.String:
        return isinstance(value, str)
    if dtype == pl.Int64:
        return isinstance(value, int)
    return isinstance(value, (int, float))
