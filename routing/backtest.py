"""Back-testing a proposed rule set beside the current one over past as-of dates.

Each date is replayed as the nightly flow would have seen it: the same feature table (only what
was known then), the open cases of the time, the same routing table with suppression and family
dedup. Past caseworker decisions are left out on both sides: they were made on the current
rules' flags, so they would favour the current rules. Instead, a flag stays open until the end of
its week, as if the team decided it within the week: a person flagged on an earlier replayed
night of the same week is held back (suppress-open-flag), so a team's weekly load counts each
person once. Reports hold counts only, never persons.

A back-test replays the stages after rules as well, so it imports routing, against the one-way
rule of the pipeline; it is a tool over the pipeline, like a flow, and nothing imports it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import polars as pl

from features.table import feature_table
from models.labels import open_case_teams
from routing.flags import FlagDraft, Routing
from routing.route import RankingPolicy, route
from routing.suppression import HISTORY_SCHEMA, empty_history
from routing.table import RoutingTable
from rules.engine import RuleSet, evaluate

# Scores for the persons of a feature table on an as-of date: person, score, probability, model_version.
Scorer = Callable[[pl.DataFrame, dict[str, pl.DataFrame], date], pl.DataFrame]
_SCORE_COLUMNS = {"score": pl.Int64, "probability": pl.Float64, "model_version": pl.String}
SIDES = ("current", "proposed")


@dataclass(frozen=True)
class Backtest:
    """What changes with the proposed rules, date by date, in counts."""

    current_version: str
    proposed_version: str
    summary: pl.DataFrame  # one row per as-of date
    load: pl.DataFrame  # one row per as-of date, side and team
    outcomes_until: date | None  # the last day outcomes are known; later windows give no precision


def load_sources(folder: Path, home: Path, max_invalid_share: float) -> dict[str, pl.DataFrame]:
    """Every registered source's extract from folder, validated and typed as in the nightly run, with pseudonyms.

    Quarantined rows are left out as they are at night; nothing is written to the store.
    """
    from sources.pseudonym import load_key, pseudonymise
    from sources.readers import read_extract
    from sources.registry import load_registry
    from validate.context import gx_context
    from validate.contract import validate_extract

    context, key = gx_context(home), load_key(home)
    sources = {}
    for name, source in load_registry().items():
        valid = validate_extract(read_extract(folder, source), source, context=context, max_invalid_share=max_invalid_share).valid
        sources[name] = pseudonymise(valid, source.person_id_columns, key)
    return sources


def replay_dates(start: date, end: date, every_days: int = 7) -> list[date]:
    """As-of dates from start to end (both included when they fall on the step), every_days apart."""
    if end < start:
        raise ValueError(f"--to {end} is before --from {start}; give an end date on or after the start")
    if every_days < 1:
        raise ValueError(f"the step must be at least one day, got {every_days}")
    return [start + timedelta(days=d) for d in range(0, (end - start).days + 1, every_days)]


def persons_on(sources: dict[str, pl.DataFrame], as_of: date, scorer: Scorer | None) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The persons frame the rules read on as_of (features, open cases, scores if a scorer is given) and the families."""
    table, families = feature_table(sources, as_of)
    if scorer is not None:
        table = table.join(scorer(table, sources, as_of), on="person", how="left")
    else:
        table = table.with_columns(pl.lit(None, dtype).alias(c) for c, dtype in _SCORE_COLUMNS.items())
    return table.join(open_case_teams(sources["support_measures"], as_of), on="person", how="left"), families


def _flagged(drafts: list[FlagDraft]) -> pl.DataFrame:
    # Persons on a team's list: every member of an active flag; suppressed flags reach nobody's list.
    return pl.DataFrame(
        {"person": [m for d in drafts if not d.suppressed for m in d.members]}, schema={"person": pl.String}
    ).unique()


def _still_open(drafts: list[FlagDraft]) -> pl.DataFrame:
    # The replay's flags as the casework store would hand them back the next night: open, undecided.
    rows = [
        {"person": m, "priority": d.priority, "flag_id": i, "flag_as_of": d.as_of}
        for i, d in enumerate(drafts) if not d.suppressed for m in d.members
    ]
    return pl.DataFrame(rows, schema=HISTORY_SCHEMA)


def _precision(persons: pl.DataFrame, children: pl.DataFrame, escalated: pl.DataFrame) -> float | None:
    flagged_children = persons.join(children, on="person", how="semi")
    if flagged_children.is_empty():
        return None
    return flagged_children.join(escalated, on="person", how="semi").height / flagged_children.height


def _load(routing: Routing) -> pl.DataFrame:
    return pl.DataFrame(
        [(c.team, c.capacity, c.candidates, c.shown, c.below) for c in routing.cuts],
        schema={"team": pl.String, "capacity": pl.Int64, "flags": pl.Int64, "within_capacity": pl.Int64, "below_capacity": pl.Int64},
        orient="row",
    )


def backtest(
    sources: dict[str, pl.DataFrame],
    current: RuleSet,
    proposed: RuleSet,
    as_of_dates: Iterable[date],
    table: RoutingTable,
    *,
    policy: RankingPolicy,
    scorer: Scorer | None = None,
    horizon_days: int = 365,
    on_date: Callable[[date], None] | None = None,
) -> Backtest:
    """Replay both rule sets on every date: persons added and removed, precision against later outcomes, load per team."""
    dates = sorted(set(as_of_dates))
    if not dates:
        raise ValueError("no as-of dates to replay; give --from and --to with at least one date between them")
    measures = sources["support_measures"]
    # Outcomes are only known up to what the municipality had learned when the extracts were taken.
    outcomes_until = measures["known_date"].max() if measures.height else None
    summaries, loads = [], []
    open_in: dict[str, tuple[tuple[int, int], pl.DataFrame]] = {}  # per side: the week and its flags still open
    for as_of in dates:
        persons, families = persons_on(sources, as_of, scorer)
        children = persons.filter(pl.col("target") == "child").select("person")
        window_end = as_of + timedelta(days=horizon_days)
        known = outcomes_until is not None and window_end <= outcomes_until
        # A support measure or placement starting within the horizon (models/labels.py, escalation).
        escalated = (
            measures.filter(pl.col("event_date").is_between(as_of, window_end, closed="right"))
            .select(person="person_id")
            .unique()
        )
        flagged = {}
        for side, ruleset in zip(SIDES, (current, proposed)):
            week = as_of.isocalendar()[:2]
            if open_in.get(side, (None,))[0] != week:
                open_in[side] = (week, empty_history())
            hits = evaluate(ruleset, persons, as_of=as_of, families=families)
            routing = route(hits, persons, ruleset, table, as_of=as_of, policy=policy, families=families, history=open_in[side][1])
            drafts = routing.flags
            open_in[side] = (week, pl.concat([open_in[side][1], _still_open(drafts)]))
            flagged[side] = _flagged(drafts)
            loads.append(_load(routing).with_columns(as_of=pl.lit(as_of), side=pl.lit(side)))
            flagged[f"{side}_suppressed"] = sum(d.suppressed for d in drafts)
        if on_date is not None:  # progress for the command line
            on_date(as_of)
        added = flagged["proposed"].join(flagged["current"], on="person", how="anti")
        removed = flagged["current"].join(flagged["proposed"], on="person", how="anti")
        precision = (lambda frame: _precision(frame, children, escalated)) if known else (lambda frame: None)
        summaries.append(
            {
                "as_of": as_of,
                "persons": persons.height,
                "flagged_current": flagged["current"].height,
                "flagged_proposed": flagged["proposed"].height,
                "added": added.height,
                "removed": removed.height,
                "suppressed_current": flagged["current_suppressed"],
                "suppressed_proposed": flagged["proposed_suppressed"],
                "precision_current": precision(flagged["current"]),
                "precision_proposed": precision(flagged["proposed"]),
                "precision_added": precision(added),
                "precision_removed": precision(removed),
            }
        )
    summary = pl.DataFrame(summaries, schema_overrides={f"precision_{s}": pl.Float64 for s in ("current", "proposed", "added", "removed")})
    load = pl.concat(loads).with_columns(week=pl.col("as_of").dt.strftime("%G-W%V")).select(
        "as_of", "week", "side", "team", "capacity", "flags", "within_capacity", "below_capacity"
    )
    return Backtest(current.version, proposed.version, summary, load, outcomes_until)


def report(result: Backtest) -> str:
    """The back-test as plain text for the terminal: what changes, how precise, and each team's weekly load."""
    lines = [
        f"Current rules:  {result.current_version}",
        f"Proposed rules: {result.proposed_version}",
        "Flagged = persons on a team's list (members of family flags included); precision = share of flagged",
        "children with a support measure or placement starting within a year; '-' where that year is not over"
        + (f" (outcomes known until {result.outcomes_until})." if result.outcomes_until else "."),
        "",
        f"{'as of':<11}{'current':>8}{'proposed':>9}{'added':>7}{'removed':>8}"
        f"{'prec. cur':>10}{'prec. prop':>11}{'prec. added':>12}{'prec. removed':>14}",
    ]

    def pct(value: float | None) -> str:
        return "-" if value is None else f"{value:.1%}"

    for row in result.summary.iter_rows(named=True):
        lines.append(
            f"{row['as_of']!s:<11}{row['flagged_current']:>8}{row['flagged_proposed']:>9}{row['added']:>7}"
            f"{row['removed']:>8}{pct(row['precision_current']):>10}{pct(row['precision_proposed']):>11}"
            f"{pct(row['precision_added']):>12}{pct(row['precision_removed']):>14}"
        )
    lines += ["", "Load per team and week (new flags within capacity + below capacity, summed over the week's replayed nights; current -> proposed):"]
    weekly = result.load.group_by("week", "side", "team", "capacity").agg(pl.col("within_capacity", "below_capacity").sum())
    wide = weekly.pivot(on="side", index=["week", "team", "capacity"], values=["within_capacity", "below_capacity"])
    for row in wide.sort("week", "team").iter_rows(named=True):
        lines.append(
            f"  {row['week']}  {row['team']:<15} capacity {row['capacity']:>3}:  "
            f"{row['within_capacity_current']:>3} + {row['below_capacity_current']:>3} below  ->  "
            f"{row['within_capacity_proposed']:>3} + {row['below_capacity_proposed']:>3} below"
        )
    return "\n".join(lines)
