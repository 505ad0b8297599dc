"""Evaluate what is deployed: the list each team sees, replayed over weekly as-of dates and measured against later outcomes.

Each as-of date is replayed as the nightly run decides it: features known then, the champion's
scores, the rules, suppression, family dedup and routing at each team's weekly capacity. What
is measured is the list within capacity, not a score threshold: of the children a team put on its
list, how many had a support measure or placement start within the horizon (precision), and of
the children who did, how many were on a list (recall).

Measured are the scored cohort's children who still lived in the municipality on the as-of date:
a child who had moved away (or died) is no one's to help and would count as a negative.
Beside the deployed list, at the same number of children per team and date, stand the model's
own top-k, the points rule (the baseline every model must beat) and, on synthetic data, the
true risk (oracle). Per team means the children a team answers for: where a child's own flag
goes (a family flag may reach another team). Intervals resample persons (a child is on many weekly dates), and differences
are paired: both lists are measured on the same resampled persons.

Like the rules back-test, this replays the stages after rules, so it lives in routing; nothing in
the pipeline imports it. Past caseworker decisions are left out, as in the back-test: each
replayed week starts without open flags.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta

import numpy as np
import polars as pl

from models import fairness
from models.baseline import points_total
from models.dataset import MODEL_FEATURES, age_band, cohort_scores, last_known, matrix, require_known_outcomes
from models.evaluate import ALL_TEAMS, ORACLE, TOP_SHARE, calibration_in_top, cluster_bootstrap_sums, oracle_at, percentile_interval, ratio
from models.labels import cohort, escalation
from routing.backtest import persons_on, replay_dates
from routing.flags import FlagDraft
from routing.route import RankingPolicy, assign_teams, route
from routing.suppression import empty_history
from routing.table import RoutingTable
from rules.engine import RuleSet, evaluate

DEPLOYED, MODEL, POINTS = "deployed", "model", "points"
MIN_DATES = 12
GROUPS = ("sex", "age_band", "district", "origin_group")
# Paired comparisons: the deployed list against the baseline and the best possible ranking, and
# the model's own top-k against the baseline (is the model worth more than points?).
RISK_OF = {MODEL: "probability", POINTS: "points", ORACLE: "oracle_risk"}
PAIRS = ((DEPLOYED, POINTS), (DEPLOYED, ORACLE), (MODEL, POINTS))


def teams_list(
    hits: pl.DataFrame, persons: pl.DataFrame, ruleset: RuleSet, table: RoutingTable, *,
    as_of: date, policy: RankingPolicy, families: pl.DataFrame, history: pl.DataFrame,
) -> list[FlagDraft]:
    """The one seam to routing: the flags a team sees, ranked and cut at capacity, exactly as the nightly run routes them."""
    return route(hits, persons, ruleset, table, as_of=as_of, policy=policy, families=families, history=history).flags


@dataclass(frozen=True)
class DeployedEvaluation:
    """The deployed list's precision and recall at capacity beside the alternatives, and its fairness audit.

    Aggregates only, fit for MLflow, the model card, the web and a Prefect task result: the
    replayed rows (pseudonyms, origin) stay inside evaluate_deployed.
    """

    model_version: str
    rules_version: str
    dates: tuple[date, ...]
    horizon_days: int
    capacity: dict[str, int]
    at_capacity: pl.DataFrame  # list, team, k, hits, positives, precision(+low/high), recall(+low/high)
    differences: pl.DataFrame  # list, versus, team, metric, difference, low, high
    curve: pl.DataFrame  # list, k, precision (mean over dates)
    calibration: dict
    fairness: pl.DataFrame
    gate: fairness.GateResult
    excluded: dict[str, int] = field(default_factory=dict)
    trained_until: date | None = None  # the model's last training as-of date, when known

    def value(self, list_name: str, metric: str = "precision", team: str = ALL_TEAMS) -> tuple[float, float, float]:
        """A list's metric for a team (default all teams): value, low, high."""
        row = self.at_capacity.filter((pl.col("list") == list_name) & (pl.col("team") == team)).row(0, named=True)
        return row[metric], row[f"{metric}_low"], row[f"{metric}_high"]

    def metrics(self) -> dict[str, float]:
        """Flat aggregates for MLflow: deployed.<list>.<metric>[.<team>], differences, calibration."""
        out: dict[str, float] = {}
        for r in self.at_capacity.iter_rows(named=True):
            for m in ("precision", "recall"):
                if r["team"] == ALL_TEAMS:  # per team the intervals are in the card and the CSV
                    out |= {f"deployed.{r['list']}.{m}_at_capacity{end}": r[f"{m}{end}"] for end in ("", "_low", "_high")}
                else:
                    out[f"deployed.{r['list']}.{m}_at_capacity.{r['team']}"] = r[m]
        for r in self.differences.filter(pl.col("team") == ALL_TEAMS).iter_rows(named=True):
            out[f"deployed.diff.{r['list']}_minus_{r['versus']}.{r['metric']}"] = r["difference"]
        out["deployed.calibration_top.slope"] = self.calibration["slope"]
        out["deployed.calibration_top.intercept"] = self.calibration["intercept"]
        out["deployed.dates"] = float(len(self.dates))
        return {k: float(v) for k, v in out.items() if v is not None and v == v}


def evaluation_dates(sources: dict[str, pl.DataFrame], horizon_days: int, *, after: date | None = None,
                     count: int = MIN_DATES, every_days: int = 7) -> list[date]:
    """Weekly as-of dates whose outcomes are all known: after `after` (the training window's end) up
    to the latest possible, or without it the last `count` such dates."""
    known = last_known(sources)
    if known is None:
        raise ValueError("the extracts hold no dated rows, so no outcome is known; check the extracts folder")
    end = known - timedelta(days=horizon_days)
    start = after + timedelta(days=every_days) if after is not None else end - timedelta(days=every_days * (count - 1))
    if start > end:
        raise ValueError(f"no as-of date after {after} has {horizon_days} days of outcomes known (registers known up to {known}); "
                         "train on earlier dates or wait for later extracts")
    return replay_dates(start, end, every_days)


def replay(
    sources: dict[str, pl.DataFrame], as_of: date, *, model, model_version: str, ruleset: RuleSet,
    table: RoutingTable, policy: RankingPolicy, horizon_days: int, oracle: pl.DataFrame | None = None,
) -> tuple[pl.DataFrame, dict[str, int]]:
    """One as-of date replayed: the measured children with label, team, list and every ranking, and counts excluded."""
    def scorer(features: pl.DataFrame, known: dict[str, pl.DataFrame], day: date) -> pl.DataFrame:
        return cohort_scores(features, known["support_measures"], model, model_version, day)

    persons, families = persons_on(sources, as_of, scorer)
    hits = evaluate(ruleset, persons, as_of=as_of, families=families)
    drafts = teams_list(hits, persons, ruleset, table, as_of=as_of, policy=policy, families=families, history=empty_history())
    listed = pl.DataFrame(
        [(m, d.rank, not d.queued) for d in drafts if not d.suppressed for m in d.members],
        schema={"person": pl.String, "list_rank": pl.Int64, "on_list": pl.Boolean}, orient="row",
    ).sort("list_rank").unique("person", keep="first")
    scored = cohort(persons, sources["support_measures"], as_of)
    gone = pl.col("moved_away").fill_null(False) | pl.col("deceased").fill_null(False)
    measured = scored.filter(~gone)
    # The scored cohort has no open case by definition: its team is where a child's own flag goes.
    teams = assign_teams(measured.with_columns(case_team=pl.lit(None, dtype=pl.String)), table)["team"]
    label = escalation(measured, sources["support_measures"], as_of, horizon_days)
    rows = measured.select(
        "person", *[c for c in ("sex", "district", "origin_group") if c in measured.columns], age_band(),
    ).with_columns(
        as_of=pl.lit(as_of), team=teams, label=label, probability=measured["probability"],
        points=pl.Series(points_total(matrix(measured), MODEL_FEATURES), dtype=pl.Float64),
    ).join(listed, on="person", how="left").with_columns(pl.col("on_list").fill_null(False))
    if oracle is not None:
        rows = rows.with_columns(oracle_risk=pl.Series(np.nan_to_num(oracle_at(oracle, rows["person"], as_of), nan=0.0)))
    on_list_gone = scored.filter(gone).join(listed.filter("on_list"), on="person", how="semi").height
    return rows, {"moved_away_or_died": scored.height - measured.height, "list_places_to_non_residents": on_list_gone}


def _top_k(rows: pl.DataFrame, by: str, k: dict[tuple[date, str], int], seed: int) -> np.ndarray:
    """Per date and team, the k highest by `by` (ties in a random but fixed order)."""
    chosen = np.zeros(rows.height, dtype=bool)
    value = rows[by].fill_null(-np.inf).to_numpy()
    tie = np.random.default_rng(seed).random(rows.height)
    keys = rows.select("as_of", "team").with_row_index("i")
    for (as_of, team), part in keys.group_by("as_of", "team"):
        index = part["i"].to_numpy()
        order = index[np.lexsort((tie[index], -value[index]))]
        chosen[order[: k.get((as_of, team), 0)]] = True
    return chosen


def _at_capacity(rows: pl.DataFrame, lists: Sequence[str], n_boot: int, seed: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    teams = sorted(set(rows["team"].to_list())) + [ALL_TEAMS]
    y = rows["label"].cast(pl.Float64).to_numpy()
    team = rows["team"].to_numpy()
    columns, where = [], {}
    for t in teams:
        member = np.ones(len(y)) if t == ALL_TEAMS else (team == t).astype(float)
        where["positives", t] = len(columns)
        columns.append(member * y)
        for name in lists:
            chosen = rows[name].cast(pl.Float64).to_numpy() * member
            where[name, "k", t], where[name, "hits", t] = len(columns), len(columns) + 1
            columns += [chosen, chosen * y]
    point = np.column_stack(columns).sum(axis=0)
    draws = cluster_bootstrap_sums(rows["person"].to_numpy(), np.column_stack(columns), n_boot=n_boot, seed=seed)

    def metric(sums: np.ndarray, name: str, m: str, t: str) -> np.ndarray:
        den = where[name, "k", t] if m == "precision" else where["positives", t]
        return ratio(sums[..., where[name, "hits", t]], sums[..., den])

    table = []
    for name in lists:
        for t in teams:
            row = {"list": name, "team": t, "k": int(point[where[name, "k", t]]), "hits": int(point[where[name, "hits", t]]),
                   "positives": int(point[where["positives", t]])}
            for m in ("precision", "recall"):
                row[m] = float(metric(point, name, m, t))
                row[f"{m}_low"], row[f"{m}_high"] = percentile_interval(metric(draws, name, m, t))
            table.append(row)
    diffs = []
    for a, b in PAIRS:
        if a in lists and b in lists:
            for t in teams:
                for m in ("precision", "recall"):
                    low, high = percentile_interval(metric(draws, a, m, t) - metric(draws, b, m, t))
                    diffs.append({"list": a, "versus": b, "team": t, "metric": m,
                                  "difference": float(metric(point, a, m, t) - metric(point, b, m, t)), "low": low, "high": high})
    diff_schema = {"list": pl.String, "versus": pl.String, "team": pl.String, "metric": pl.String,
                   "difference": pl.Float64, "low": pl.Float64, "high": pl.Float64}
    return pl.DataFrame(table), pl.DataFrame(diffs, schema=diff_schema)


def _curve(rows: pl.DataFrame, lists: Sequence[str], longest: int, seed: int) -> pl.DataFrame:
    """Precision among the k first children of each ordering, k = 1..longest, mean over dates.

    The rankings order all measured children by risk; the deployed list orders its flagged children
    by their rank in their team's list, so k beyond the flagged children is not defined for it.
    """
    tie = np.random.default_rng(seed).random(rows.height)
    rows = rows.with_columns(tie=pl.Series(tie))
    out = []
    for name in lists:
        curves = []
        for _, day in rows.group_by("as_of"):
            if name == DEPLOYED:
                ordered = day.filter(pl.col("list_rank").is_not_null()).sort("list_rank", "tie")
            else:
                ordered = day.sort(by=[RISK_OF[name], "tie"],
                                   descending=[True, False])
            label = ordered["label"].to_numpy()[:longest]
            curves.append(np.cumsum(label) / np.arange(1, len(label) + 1))
        curves = [c for c in curves if len(c)]  # a night may flag no measured child at all
        k = min((len(c) for c in curves), default=0)
        mean = np.mean([c[:k] for c in curves], axis=0) if k else np.array([])
        out.append(pl.DataFrame({"list": [name] * k, "k": np.arange(1, k + 1), "precision": mean},
                                schema={"list": pl.String, "k": pl.Int64, "precision": pl.Float64}))
    return pl.concat(out)


def evaluate_deployed(
    sources: dict[str, pl.DataFrame],
    dates: Sequence[date],
    *,
    model,
    model_version: str,
    ruleset: RuleSet,
    table: RoutingTable,
    policy: RankingPolicy,
    horizon_days: int = 365,
    oracle: pl.DataFrame | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    min_dates: int = MIN_DATES,
    min_denominator: int = 30,
    trained_until: date | None = None,
    on_date: Callable[[date], None] | None = None,
) -> DeployedEvaluation:
    """Replay the nightly decision on every date and measure the list teams see, beside the alternatives."""
    dates = sorted(set(dates))
    if len(dates) < min_dates:
        raise ValueError(f"{len(dates)} as-of date(s) given; the deployed list is measured over at least {min_dates} "
                         "weekly dates, so one unlucky week does not decide; give a longer stretch")
    require_known_outcomes(sources, dates, horizon_days)
    parts, excluded = [], {"moved_away_or_died": 0, "list_places_to_non_residents": 0}
    for as_of in dates:
        rows, counts = replay(sources, as_of, model=model, model_version=model_version, ruleset=ruleset, table=table, policy=policy,
                              horizon_days=horizon_days, oracle=oracle)
        parts.append(rows)
        excluded = {k: excluded[k] + counts[k] for k in excluded}
        if on_date is not None:
            on_date(as_of)
    rows = pl.concat(parts, how="vertical_relaxed")
    if not rows["on_list"].any():
        raise ValueError(f"no scored child was on a team's list on any of the {len(dates)} dates {dates[0]} to {dates[-1]}: "
                         "nothing to measure; check that the rules were in force then (each rule's valid_from)")
    # The alternatives look at as many children per team and date as the deployed list did.
    k = {(d, t): n for d, t, n in rows.filter("on_list").group_by("as_of", "team").len().iter_rows()}
    lists = [DEPLOYED, MODEL, POINTS] + ([ORACLE] if oracle is not None else [])
    rows = rows.with_columns(
        pl.col("on_list").alias(DEPLOYED),
        pl.Series(MODEL, _top_k(rows, "probability", k, seed)),
        pl.Series(POINTS, _top_k(rows, "points", k, seed)),
        *([pl.Series(ORACLE, _top_k(rows, "oracle_risk", k, seed))] if oracle is not None else []),
    )
    at_capacity, differences = _at_capacity(rows, lists, n_boot, seed)
    capacity = {t.id: t.weekly_capacity for t in table.teams}
    # The top share of each date's cohort by the model's risk: where calibration decides who is looked at.
    cut = pl.col("probability").rank("ordinal", descending=True).over("as_of") <= (pl.len().over("as_of") * TOP_SHARE).ceil()
    top = rows.select(cut.fill_null(False).alias("top"))["top"].to_numpy()
    calibration = calibration_in_top(rows["label"].to_numpy(), rows["probability"].fill_null(0.0).to_numpy(), top=top)
    groups = [g for g in GROUPS if g in rows.columns]
    audited = fairness.audit_list(rows, group_cols=groups, on_list_col=DEPLOYED, n_boot=n_boot, seed=seed)
    gate = fairness.list_gate(audited, min_denominator=min_denominator)
    if "origin_group" not in groups:
        gate = fairness.GateResult(passed=False, failures=(*gate.failures, "not enough data to judge origin_group: the data has no such column"),
                                   checked={**gate.checked, "verdict": gate.verdict if not gate.passed else fairness.NOT_ENOUGH_DATA})
    longest = 4 * max(1, sum(capacity.values()))
    return DeployedEvaluation(
        model_version=model_version, rules_version=ruleset.version, dates=tuple(dates), horizon_days=horizon_days,
        capacity=capacity, at_capacity=at_capacity, differences=differences,
        curve=_curve(rows, lists, longest, seed), calibration=calibration, fairness=audited, gate=gate, excluded=excluded,
        trained_until=trained_until,
    )
