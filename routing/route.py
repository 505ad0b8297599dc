"""Routing: one flag per person or family with all its reasons, suppression applied, ranked and queued by capacity."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace
from datetime import date

import polars as pl

from routing.family import family_groups
from routing.flags import FlagDraft, Reason
from routing.suppression import empty_history, suppress
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
    # A family rule's hit comes once per member; its one reason names them all.
    family_hits = hits.filter(pl.col("family").is_not_null()) if "family" in hits.columns else hits.clear()
    members = {
        (rule_id, family): tuple(sorted(found))
        for rule_id, family, found in family_hits.group_by("rule_id", "family").agg("person").iter_rows()
    }
    made: dict[tuple[str, str], Reason] = {}
    reasons: dict[str, list[Reason]] = defaultdict(list)
    for hit in in_order.iter_rows(named=True):
        family = hit.get("family")
        if family is not None and (hit["rule_id"], family) in made:
            reasons[hit["person"]].append(made[hit["rule_id"], family])
            continue
        rule = rules[hit["rule_id"]]
        values = {column: hit[column] for column in rule.value_columns}
        reason = Reason(
            rule_id=rule.id, title_da=rule.title_da, title_en=rule.title_en,
            text_da=rule.reason_text(values, "da"), text_en=rule.reason_text(values, "en"),
            priority=rule.priority, values=values, members=members.get((rule.id, family), ()),
        )
        if family is not None:
            made[rule.id, family] = reason
        reasons[hit["person"]].append(reason)
    return reasons


def route(
    hits: pl.DataFrame,
    persons: pl.DataFrame,
    ruleset: RuleSet,
    table: RoutingTable,
    *,
    as_of: date,
    families: pl.DataFrame | None = None,
    history: pl.DataFrame | None = None,
) -> list[FlagDraft]:
    """Flags with all their reasons: suppressed ones kept aside, linked family members merged, ranked per team.

    Each flagged person is routed and checked against the suppression rules (with `history`, the
    recent decisions from the casework store). Of the rest, parents and children that are both
    flagged (`families`: parent, child) become one family flag, routed as target "family" by its
    lead, the youngest child. Each team's list is ordered by (priority, score desc, person); beyond
    the team's weekly capacity flags are queued. Suppressed flags get rank 0 and are never queued.
    """
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
    most_urgent = hits.group_by("person").agg(pl.col("priority").min().cast(pl.Int64))
    routed = assign_teams(flagged, table).join(most_urgent, on="person")
    suppressed = suppress(routed, ruleset, table, empty_history() if history is None else history, as_of)
    active = routed.filter(~pl.col("person").is_in(list(suppressed)))
    groups = family_groups(active, families)
    reasons = _reasons(hits, ruleset)

    # A family is ranked and routed as one: by its lead's row, its most urgent reason and its highest score.
    in_family = active.join(groups, on="person")
    scores = in_family.sort(["score", "member"], descending=[True, False], nulls_last=True).group_by("family").agg(
        pl.col("score", "probability", "model_version").first(), pl.col("priority").min()
    )
    family_rows = (
        in_family.filter(pl.col("member") == 1)
        .drop("team", "score", "probability", "model_version", "priority")
        .join(scores, on="family")
        .with_columns(target=pl.lit("family"))
    )
    family_rows = assign_teams(family_rows.drop("family", "member"), table).join(
        family_rows.select("person", "family"), on="person"
    )
    singles = active.join(groups, on="person", how="anti").with_columns(family=pl.lit(None, dtype=pl.String))
    teams = pl.DataFrame(
        {
            "team": [t.id for t in table.teams],
            "team_order": list(range(len(table.teams))),
            "capacity": [t.weekly_capacity for t in table.teams],
        }
    )
    columns = [*_FLAG_COLUMNS, "team", "priority", "family"]
    ranked = (
        pl.concat([singles.select(columns), family_rows.select(columns)], how="vertical_relaxed")
        .join(teams, on="team")
        .sort(
            ["team_order", "priority", "score", "person"],
            descending=[False, False, True, False],
            nulls_last=True,  # an unscored person comes after the scored ones of the same priority
        )
        .with_columns(rank=pl.int_range(1, pl.len() + 1).over("team"))
        .with_columns(queued=pl.col("rank") > pl.col("capacity"))
    )
    members: dict[str, list[str]] = {}
    for family, person in groups.sort("family", "member").select("family", "person").iter_rows():
        members.setdefault(family, []).append(person)
    explained = _signals(flagged)
    # Everyone a flag is about: the flagged, and the members a family rule read (flagged or not).
    about = {p for found in reasons.values() for r in found for p in r.members} | set(flagged["person"])
    own_scores = _member_scores(persons.filter(pl.col("person").is_in(list(about))))

    def flag(row: dict, flag_reasons: tuple[Reason, ...], flag_signals: tuple[dict, ...], suppressed_by: tuple = ()) -> FlagDraft:
        draft = FlagDraft(
            as_of=as_of, person=row["person"], target=row["target"], team=row["team"],
            priority=row["priority"], rank=row["rank"], queued=row["queued"], score=row["score"],
            probability=row["probability"], model_version=row["model_version"],
            rules_version=ruleset.version, reasons=flag_reasons, suppressed_by=suppressed_by,
            signals=flag_signals,
        )
        return replace(draft, member_scores=tuple(own_scores[p] for p in draft.members if p in own_scores))

    drafts = []
    for row in ranked.select(*columns, "rank", "queued").iter_rows(named=True):
        if row["family"] is None:
            drafts.append(flag(row, tuple(reasons[row["person"]]), explained.get(row["person"], ())))
        else:
            family = members[row["family"]]
            named = _family_reasons(family, reasons)
            family_signals = tuple(dict(s, person=m) for m in family for s in explained.get(m, ()))
            drafts.append(flag(row, named, family_signals))
    kept = routed.filter(pl.col("person").is_in(list(suppressed))).sort("team", "person")
    for row in kept.with_columns(rank=pl.lit(0), queued=pl.lit(False)).iter_rows(named=True):
        person = row["person"]
        drafts.append(flag(row, tuple(reasons[person]), explained.get(person, ()), suppressed[person]))
    return drafts


def _family_reasons(family: list[str], reasons: dict[str, list[Reason]]) -> tuple[Reason, ...]:
    """Every member's reasons naming the member; a family rule's reason, shared by its members, once."""
    named, shared = [], set()
    for member in family:
        for reason in reasons[member]:
            if not reason.members:
                named.append(replace(reason, person=member))
            elif id(reason) not in shared:
                shared.add(id(reason))
                named.append(reason)
    return tuple(named)


MEMBER_SCORE_COLUMNS = ("person", "target", "age_years", "score", "probability", "level_risk")


def _member_scores(flagged: pl.DataFrame) -> dict[str, dict]:
    """Each flagged person's own score, risk and age, as far as the score stage supplied them."""
    present = [c for c in MEMBER_SCORE_COLUMNS if c in flagged.columns]
    return {row["person"]: dict.fromkeys(MEMBER_SCORE_COLUMNS) | row for row in flagged.select(present).iter_rows(named=True)}


def _signals(flagged: pl.DataFrame) -> dict[str, tuple[dict, ...]]:
    """The score's top signals per flagged person, when the score stage supplied them."""
    if "signals" not in flagged.columns:
        return {}
    return {person: tuple(found) for person, found in flagged.select("person", "signals").iter_rows() if found}
