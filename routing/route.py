"""Routing: one flag per person or family with all its reasons, suppression applied, ranked and cut at capacity."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date

import polars as pl

from routing.family import family_groups
from routing.flags import BelowCapacity, FlagDraft, Reason, Routing, TeamCut
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
            legal_duty=rule.legal_duty,
        )
        if family is not None:
            made[rule.id, family] = reason
        reasons[hit["person"]].append(reason)
    return reasons


@dataclass(frozen=True)
class RankingPolicy:
    """How a team's candidates are ordered for the week (the config's ranking section).

    ranking value = risk_weight x calibrated probability + urgency of the most urgent rule that
    fired (by its priority); an unscored person counts with probability 0, on the rules alone.
    """

    risk_weight: float
    urgency: Mapping[int, float]  # rule priority (1 most urgent) -> added to the value

    def value(self) -> pl.Expr:
        """The ranking value of each row, from its probability and priority columns."""
        urgency = pl.col("priority").replace_strict(dict(self.urgency), default=0.0, return_dtype=pl.Float64)
        return pl.col("probability").fill_null(0.0) * self.risk_weight + urgency


def route(
    hits: pl.DataFrame,
    persons: pl.DataFrame,
    ruleset: RuleSet,
    table: RoutingTable,
    *,
    as_of: date,
    policy: RankingPolicy,
    families: pl.DataFrame | None = None,
    history: pl.DataFrame | None = None,
) -> Routing:
    """The week's decision: flags within each team's capacity, the rest recorded below capacity, and each team's cut.

    A pure function of its inputs, so the nightly run and an evaluation of past dates make the
    same decision. Each person a rule raised is routed and checked against the suppression rules
    (with `history`, the recent decisions from the casework store); suppressed flags are kept with
    rank 0 and take no capacity. Of the rest, parents and children that are both raised
    (`families`: parent, child) become one family flag, routed as target "family" by its lead, the
    youngest child. Each team's candidates are ordered by the policy's ranking value (score, then
    person, break ties); a team sees the best-ranked up to its weekly capacity, and every flag of a
    legal-duty rule whatever its rank (it takes capacity like the others). The rest are below
    capacity this week.
    """
    if hits.is_empty():
        return Routing([], [], _cuts(table, None))
    flagged_ids = hits.select("person").unique()
    missing = flagged_ids.join(persons.select("person"), on="person", how="anti")
    if missing.height:
        raise RoutingError(f"hits name {missing.height} person(s) that are not in persons")
    unknown = sorted(set(hits["rule_id"]) - {rule.id for rule in ruleset.rules})
    if unknown:
        raise RoutingError(f"hits name rule(s) {unknown} that are not in rules version {ruleset.version}")
    flagged = persons.join(flagged_ids, on="person", how="semi")
    repeated = flagged.filter(pl.col("person").is_duplicated())["person"].n_unique()
    if repeated:
        raise RoutingError(f"persons must have one row per person; {repeated} flagged person(s) have more")
    duty = pl.col("legal_duty").fill_null(False) if "legal_duty" in hits.columns else pl.lit(False)
    most_urgent = hits.group_by("person").agg(pl.col("priority").min().cast(pl.Int64), duty.any().alias("legal_duty"))
    routed = assign_teams(flagged, table).join(most_urgent, on="person")
    suppressed = suppress(routed.drop("legal_duty"), ruleset, table, empty_history() if history is None else history, as_of)
    active = routed.filter(~pl.col("person").is_in(list(suppressed)))
    groups = family_groups(active, families)

    # A family is ranked and routed as one: by its lead's row, its most urgent reason and its highest score.
    in_family = active.join(groups, on="person")
    scores = in_family.sort(["score", "member"], descending=[True, False], nulls_last=True).group_by("family").agg(
        pl.col("score", "probability", "model_version").first(), pl.col("priority").min(), pl.col("legal_duty").any()
    )
    family_rows = (
        in_family.filter(pl.col("member") == 1)
        .drop("team", "score", "probability", "model_version", "priority", "legal_duty")
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
    columns = [*_FLAG_COLUMNS, "team", "priority", "legal_duty", "family"]
    by_value = (
        pl.concat([singles.select(columns), family_rows.select(columns)], how="vertical_relaxed")
        .join(teams, on="team")
        .with_columns(ranking_value=policy.value())
        .sort(
            ["team_order", "ranking_value", "score", "person"],
            descending=[False, True, True, False],
            nulls_last=True,  # an unscored person comes after a scored one of the same value
        )
        # Legal duties take capacity first; the best-ranked of the rest fill what is left.
        .with_columns(
            open_rank=(~pl.col("legal_duty")).cum_sum().over("team"),
            room=(pl.col("capacity") - pl.col("legal_duty").sum().over("team")).clip(lower_bound=0),
        )
        .with_columns(shown=pl.col("legal_duty") | (pl.col("open_rank") <= pl.col("room")))
        # The list shown comes first, in ranking order, then those below capacity.
        .sort(["team_order", "shown", "ranking_value", "score", "person"], descending=[False, True, True, True, False], nulls_last=True)
        .with_columns(rank=pl.int_range(1, pl.len() + 1).over("team"))
    )
    shown, below = by_value.filter("shown"), by_value.filter(~pl.col("shown"))
    members: dict[str, list[str]] = {}
    for family, person in groups.sort("family", "member").select("family", "person").iter_rows():
        members.setdefault(family, []).append(person)

    def about(row: dict) -> list[str]:
        return members[row["family"]] if row["family"] is not None else [row["person"]]

    # Reasons in words only for flags someone reads: the lists and what suppression held back.
    reasons = _reasons(
        hits.filter(pl.col("person").is_in([m for row in shown.iter_rows(named=True) for m in about(row)] + list(suppressed))),
        ruleset,
    )
    # Everyone a flag is about: its members, and those a family rule read (flagged or not).
    read_about = {p for found in reasons.values() for r in found for p in r.members} | set(reasons)
    own_scores = _member_scores(persons.filter(pl.col("person").is_in(list(read_about))))

    def flag(row: dict, flag_reasons: tuple[Reason, ...], suppressed_by: tuple = ()) -> FlagDraft:
        draft = FlagDraft(
            as_of=as_of, person=row["person"], target=row["target"], team=row["team"],
            priority=row["priority"], rank=row["rank"], queued=False, score=row["score"],
            probability=row["probability"], model_version=row["model_version"],
            rules_version=ruleset.version, reasons=flag_reasons, suppressed_by=suppressed_by,
            ranking_value=row.get("ranking_value"),
        )
        return replace(draft, member_scores=tuple(own_scores[p] for p in draft.members if p in own_scores))

    drafts = []
    for row in shown.iter_rows(named=True):
        if row["family"] is None:
            drafts.append(flag(row, tuple(reasons[row["person"]])))
        else:
            drafts.append(flag(row, _family_reasons(members[row["family"]], reasons)))
    kept = routed.filter(pl.col("person").is_in(list(suppressed))).sort("team", "person")
    for row in kept.with_columns(rank=pl.lit(0)).iter_rows(named=True):
        drafts.append(flag(row, tuple(reasons[row["person"]]), suppressed[row["person"]]))
    rule_ids = dict(hits.group_by("person").agg(pl.col("rule_id").unique(maintain_order=True)).iter_rows())
    left_out = [
        BelowCapacity(
            as_of=as_of, person=row["person"], target=row["target"], team=row["team"], rank=row["rank"],
            priority=row["priority"], ranking_value=row["ranking_value"], score=row["score"],
            probability=row["probability"], model_version=row["model_version"], rules_version=ruleset.version,
            rule_ids=tuple(dict.fromkeys(r for m in about(row) for r in rule_ids[m])), members=tuple(about(row)),
        )
        for row in below.iter_rows(named=True)
    ]
    return Routing(drafts, left_out, _cuts(table, by_value))


def _cuts(table: RoutingTable, ranked: pl.DataFrame | None) -> list[TeamCut]:
    """Per team of the table: capacity, candidates, shown, legal duties, below, and the score where the line fell."""
    counts: dict[str, dict] = {}
    if ranked is not None:
        for team, part in ranked.partition_by("team", as_dict=True).items():
            on_rank = part.filter(pl.col("shown") & ~pl.col("legal_duty"))
            below = part.height - part["shown"].sum()
            # The line falls only where someone was left out: at the lowest-ranked flag shown on its rank.
            last = on_rank.row(on_rank.height - 1, named=True) if below and on_rank.height else None
            counts[team[0]] = dict(
                candidates=part.height, shown=int(part["shown"].sum()),
                legal_duty=int(part.filter("shown")["legal_duty"].sum()), below=int(below),
                cutoff_score=last and last["score"], cutoff_value=last and last["ranking_value"],
            )
    empty = dict(candidates=0, shown=0, legal_duty=0, below=0, cutoff_score=None, cutoff_value=None)
    return [TeamCut(team=t.id, capacity=t.weekly_capacity, **counts.get(t.id, empty)) for t in table.teams]


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


def with_signals(drafts: list[FlagDraft], explained: Mapping[str, Sequence[dict]]) -> list[FlagDraft]:
    """The drafts with the score's top signals of the persons they are about; a family flag's name their member."""
    def of(draft: FlagDraft) -> tuple[dict, ...]:
        if draft.target != "family":
            return tuple(explained.get(draft.person) or ())
        return tuple(dict(s, person=m) for m in draft.members for s in explained.get(m) or ())

    return [replace(draft, signals=of(draft)) for draft in drafts]


MEMBER_SCORE_COLUMNS = ("person", "target", "age_years", "score", "probability", "level_risk")


def _member_scores(flagged: pl.DataFrame) -> dict[str, dict]:
    """Each flagged person's own score, risk and age, as far as the score stage supplied them."""
    present = [c for c in MEMBER_SCORE_COLUMNS if c in flagged.columns]
    return {row["person"]: dict.fromkeys(MEMBER_SCORE_COLUMNS) | row for row in flagged.select(present).iter_rows(named=True)}
