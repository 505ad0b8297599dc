"""Routing: one flag per person with all its reasons, sent to a team, ranked, and queued beyond capacity."""

from __future__ import annotations

from collections import defaultdict
from datetime import date

import polars as pl

from routing.flags import FlagDraft, Reason
from routing.table import RoutingError, RoutingTable
from rules.engine import RuleSet

_FLAG_COLUMNS = ("person", "target", "score", "probability", "model_version")


def _describe(persons: pl.DataFrame) -> str:
    # Error messages end up in logs, so they describe groups of persons, never a pseudonym.
    groups = persons.group_by("target", "district").len().sort("target", "district", nulls_last=True)
    return ", ".join(f"{n} with target={t!r}, district={d!r}" for t, d, n in groups.iter_rows())


def assign_teams(persons: pl.DataFrame, table: RoutingTable) -> pl.DataFrame:
    """The persons with a `team` column: the team of the first route that matches each of them."""
    first, *rest = table.routes
    chosen = pl.when(first.matches()).then(first.team_of())
    for route in rest:
        chosen = chosen.when(route.matches()).then(route.team_of())
    routed = persons.with_columns(chosen.otherwise(pl.lit(None, dtype=pl.String)).alias("team"))
    # A flag nobody receives is a flag lost: stop loudly instead.
    unrouted = routed.filter(pl.col("team").is_null())
    if unrouted.height:
        raise RoutingError(
            f"{unrouted.height} person(s) match no route ({_describe(unrouted)}); "
            f"routes: {[r.name for r in table.routes]}"
        )
    team_ids = [t.id for t in table.teams]
    strangers = routed.filter(~pl.col("team").is_in(team_ids))
    if strangers.height:
        raise RoutingError(
            f"team(s) {sorted(strangers['team'].unique())} of {strangers.height} person(s) "
            f"are not in the routing table; teams: {team_ids}"
        )
    return routed


def _reasons(hits: pl.DataFrame, ruleset: RuleSet) -> dict[str, list[Reason]]:
    rules = {rule.id: rule for rule in ruleset.rules}
    unknown = sorted(set(hits["rule_id"]) - rules.keys())
    if unknown:
        raise RoutingError(f"hits name rule(s) {unknown} that are not in rules version {ruleset.version}")
    order = {rule_id: i for i, rule_id in enumerate(rules)}
    in_order = hits.sort(pl.col("person"), pl.col("priority"), pl.col("rule_id").replace_strict(order))
    reasons: dict[str, list[Reason]] = defaultdict(list)
    for hit in in_order.iter_rows(named=True):
        rule = rules[hit["rule_id"]]
        values = {column: hit[column] for column in rule.value_columns}
        reasons[hit["person"]].append(
            Reason(
                rule_id=rule.id, title_da=rule.title_da, title_en=rule.title_en,
                text_da=rule.reason_text(values, "da"), text_en=rule.reason_text(values, "en"),
                priority=rule.priority, values=values,
            )
        )
    return reasons


def route(
    hits: pl.DataFrame, persons: pl.DataFrame, ruleset: RuleSet, table: RoutingTable, *, as_of: date
) -> list[FlagDraft]:
    """One flag per person with hits, ordered per team by (priority, score desc, person); over capacity → queued."""
    if hits.is_empty():
        return []
    flagged_ids = hits.select("person").unique()
    missing = flagged_ids.join(persons.select("person"), on="person", how="anti")
    if missing.height:
        raise RoutingError(f"hits name {missing.height} person(s) that are not in persons")
    flagged = persons.join(flagged_ids, on="person", how="semi")
    repeated = flagged.filter(pl.col("person").is_duplicated())["person"].n_unique()
    if repeated:
        raise RoutingError(f"persons must have one row per person; {repeated} flagged person(s) have more")
    teams = pl.DataFrame(
        {
            "team": [t.id for t in table.teams],
            "team_order": list(range(len(table.teams))),
            "capacity": [t.weekly_capacity for t in table.teams],
        }
    )
    most_urgent = hits.group_by("person").agg(pl.col("priority").min().cast(pl.Int64))
    ranked = (
        assign_teams(flagged, table)
        .join(most_urgent, on="person")
        .join(teams, on="team")
        .sort(
            ["team_order", "priority", "score", "person"],
            descending=[False, False, True, False],
            nulls_last=True,  # an unscored person comes after the scored ones of the same priority
        )
        .with_columns(rank=pl.int_range(1, pl.len() + 1).over("team"))
        .with_columns(queued=pl.col("rank") > pl.col("capacity"))
    )
    reasons = _reasons(hits, ruleset)
    return [
        FlagDraft(
            as_of=as_of, person=row["person"], target=row["target"], team=row["team"],
            priority=row["priority"], rank=row["rank"], queued=row["queued"], score=row["score"],
            probability=row["probability"], model_version=row["model_version"],
            rules_version=ruleset.version, reasons=tuple(reasons[row["person"]]),
        )
        for row in ranked.select(*_FLAG_COLUMNS, "team", "priority", "rank", "queued").iter_rows(named=True)
    ]
