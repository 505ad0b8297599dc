"""Suppression: which routed flags stay off the team's list, by the suppression rules in rules/."""

from __future__ import annotations

from collections import defaultdict
from datetime import date

import polars as pl

from routing.flags import Suppression
from routing.table import RoutingError, RoutingTable
from rules.conditions import FLAG_CONTEXT_SCHEMA, SUPPRESSION_SCHEMA
from rules.engine import RuleSet, evaluate_suppressions

# The recent decisions the casework store hands to routing: one row per decision on a flag, and one
# per flag still open and undecided (decision null), for every person the flag was about (all
# members of a family flag).
HISTORY_SCHEMA: dict[str, pl.DataType] = {
    "person": pl.String(),
    "decision": pl.String(),  # accept, dismiss or defer; null for a flag still open
    "decided_at": pl.Datetime("us", "UTC"),  # null for a flag still open
    "priority": pl.Int64(),  # the flag's priority
    "defer_until": pl.Date(),
    "flag_id": pl.Int64(),
    "flag_as_of": pl.Date(),
}
# Caseworkers count days in their own calendar, not the server's.
LOCAL_ZONE = "Europe/Copenhagen"


def empty_history() -> pl.DataFrame:
    """A decision history without decisions, for a first run or a replay."""
    return pl.DataFrame(schema=HISTORY_SCHEMA)


def _checked(history: pl.DataFrame) -> pl.DataFrame:
    missing = sorted(set(HISTORY_SCHEMA) - set(history.columns))
    if missing:
        raise RoutingError(f"the decision history lacks column(s) {missing}; expected: {list(HISTORY_SCHEMA)}")
    return history.select(*HISTORY_SCHEMA).cast(HISTORY_SCHEMA)


def latest_decisions(history: pl.DataFrame, as_of: date) -> pl.DataFrame:
    """Per person, the latest decision made by the as-of date, as the suppression rules read it."""
    day = pl.col("decided_at").dt.convert_time_zone(LOCAL_ZONE).dt.date()
    return (
        _checked(history)
        # A replay of an earlier as-of date must not see decisions made after it.
        .filter(pl.col("decision").is_not_null() & (day <= as_of))
        .sort("decided_at")
        .group_by("person")
        .agg(pl.all().last())
        .select(
            "person",
            last_decision=pl.col("decision"),
            days_since_decision=(pl.lit(as_of) - day).dt.total_days(),
            priority_at_decision=pl.col("priority"),
            days_until_deferral_ends=(pl.col("defer_until") - pl.lit(as_of)).dt.total_days(),
        )
    )


def open_flags(history: pl.DataFrame, as_of: date) -> pl.DataFrame:
    """Per person, the most urgent flag of an earlier night still open and undecided, as the suppression rules read it."""
    return (
        _checked(history)
        # Tonight's own flags (a rerun) are not an earlier flag.
        .filter(pl.col("decision").is_null() & (pl.col("flag_as_of") < as_of))
        .sort("priority", pl.col("flag_as_of"), pl.col("flag_id"), descending=[False, True, True], nulls_last=True)
        .group_by("person")
        .agg(pl.all().first())
        .select("person", open_flag_id="flag_id", open_flag_as_of="flag_as_of", open_flag_priority="priority")
    )


def suppression_input(routed: pl.DataFrame, table: RoutingTable, history: pl.DataFrame, as_of: date) -> pl.DataFrame:
    """Routed flags (person, team, priority and the person's columns) with every column suppression rules read."""
    departments = pl.DataFrame(
        {"team": [t.id for t in table.teams], "department": [t.department for t in table.teams]}
    )
    frame = (
        routed.join(departments, on="team", how="left")
        .join(
            departments.rename({"team": "case_team", "department": "case_department"}), on="case_team", how="left"
        )
        .join(latest_decisions(history, as_of), on="person", how="left")
        .join(open_flags(history, as_of), on="person", how="left")
    )
    # Until the population extract says who moved away or died, nobody is suppressed for it.
    absent = {c: dtype for c, dtype in SUPPRESSION_SCHEMA.items() if c not in frame.columns}
    return frame.with_columns(pl.lit(None, dtype).alias(c) for c, dtype in absent.items()).with_columns(
        pl.col(c).cast(dtype) for c, dtype in FLAG_CONTEXT_SCHEMA.items()
    )


def suppress(
    routed: pl.DataFrame, ruleset: RuleSet, table: RoutingTable, history: pl.DataFrame, as_of: date
) -> dict[str, tuple[Suppression, ...]]:
    """Every suppression rule that holds for each routed person, in the order of the rule files."""
    if not ruleset.suppressions or routed.is_empty():
        return {}
    held = evaluate_suppressions(ruleset, suppression_input(routed, table, history, as_of), as_of=as_of)
    if held.is_empty():
        return {}
    rules = {rule.id: rule for rule in ruleset.suppressions}
    order = {rule_id: i for i, rule_id in enumerate(rules)}
    found: dict[str, list[Suppression]] = defaultdict(list)
    for row in held.sort(pl.col("person"), pl.col("rule_id").replace_strict(order)).iter_rows(named=True):
        rule = rules[row["rule_id"]]
        values = {column: row[column] for column in rule.value_columns}
        found[row["person"]].append(
            Suppression(
                rule_id=rule.id, title_da=rule.title_da, title_en=rule.title_en,
                text_da=rule.reason_text(values, "da"), text_en=rule.reason_text(values, "en"), values=values,
            )
        )
    return {person: tuple(items) for person, items in found.items()}
