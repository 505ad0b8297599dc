"""Benchmark: rules, suppression, family dedup and routing for a municipality of 650,000 persons.

Run with `uv run python bench/rules_bench.py [--persons N] [--repeat R]`. The persons frame is
drawn at Danish base rates (see /DOMAIN.md in the design notes) instead of coming from the
synthetic registers, because only the stages after the features are measured here. Goal: 5 s.
"""

from __future__ import annotations

import argparse
import resource
import time
from datetime import date, datetime, timedelta, timezone

import numpy as np
import polars as pl

from routing.route import route
from routing.suppression import HISTORY_SCHEMA
from routing.table import load_routing_table
from rules.engine import evaluate, load_rules
from tidlig.settings import load_config

AS_OF = date(2026, 11, 1)
POLICY = load_config().ranking.policy()
DISTRICTS = ["Nord", "Syd", "Øst", "Vest"]
CASE_TEAMS = ["familie-nord", "familie-syd", "familie-oest", "familie-vest", "voksen", "jobcenter"]


def population(n: int, seed: int = 1) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """Persons with every column the rules read, parent-child links, and a year of decisions."""
    rng = np.random.default_rng(seed)
    child = rng.random(n) < 0.2  # about a fifth of Danes are under 18
    age = np.where(child, rng.integers(0, 18, n), rng.integers(18, 95, n))
    parent_abuse = child & (rng.random(n) < 0.09)  # about 9% grow up with a parent with alcohol problems
    score = np.where(child, np.clip(np.ceil(rng.beta(1.2, 4, n) * 20 + 4 * parent_abuse), 1, 20), 0)
    persons = pl.DataFrame(
        {
            "person": np.char.add("p", np.arange(n).astype(str)),
            "target": np.where(child, "child", "adult"),
            "age_years": age,
            "district": rng.choice(DISTRICTS, n),
            "case_team": pl.Series(rng.choice(CASE_TEAMS, n)).zip_with(pl.Series(rng.random(n) < 0.035), pl.Series([None] * n, dtype=pl.String)),
            "score": score,
            "probability": score / 40,
            "model_version": "tidlig-child-escalation/1",
            "notifications_365d": np.where(child, rng.poisson(0.08 + 0.8 * parent_abuse), 0),
            "days_since_last_notification": rng.integers(1, 365, n),
            "school_absence_pct_90d": np.where(child & (age >= 6), rng.beta(1.5, 20, n) * 100 + 10 * parent_abuse, np.nan),
            "parent_substance_treatment_365d": np.where(child, (parent_abuse & (rng.random(n) < 0.15)).astype(int), 0),
            "parent_benefit_weeks_365d": np.where(child, rng.integers(0, 53, n), 0),
            "substance_treatment_365d": np.where(~child, (rng.random(n) < 0.008).astype(int), 0),
            "benefit_weeks_365d": np.where(~child, rng.choice([0, 0, 0, 10, 30, 52], n), 0),
            "children_in_household": np.where(~child, rng.choice([0, 0, 1, 2, 3], n), 0),
            "moved_away": rng.random(n) < 0.002,
            "deceased": rng.random(n) < 0.001,
        },
        strict=False,
    ).with_columns(
        pl.col("school_absence_pct_90d").fill_nan(None),
        pl.col("score").replace(0, None).cast(pl.Int64),
        pl.col("probability").replace(0.0, None),
    )
    # Each child has one or two parents among the adults.
    children = np.nonzero(child)[0]
    adults = np.nonzero(~child)[0]
    mothers = rng.choice(adults, len(children))
    two = rng.random(len(children)) < 0.7
    fathers = rng.choice(adults, int(two.sum()))
    ids = persons["person"].to_numpy()
    families = pl.DataFrame(
        {
            "parent": np.concatenate([ids[mothers], ids[fathers]]),
            "child": np.concatenate([ids[children], ids[children[two]]]),
        }
    )
    # A year of decisions on about 5,000 earlier flags.
    decided = rng.choice(n, 5000, replace=False)
    days_ago = rng.integers(0, 365, 5000)
    history = pl.DataFrame(
        {
            "person": ids[decided],
            "decision": rng.choice(["accept", "dismiss", "defer"], 5000, p=[0.4, 0.45, 0.15]),
            "decided_at": [datetime.combine(AS_OF, datetime.min.time(), timezone.utc) - timedelta(days=int(d)) for d in days_ago],
            "priority": rng.integers(1, 4, 5000),
            "defer_until": [AS_OF + timedelta(days=int(d)) for d in rng.integers(-30, 60, 5000)],
            "flag_id": range(5000),
            "flag_as_of": [AS_OF - timedelta(days=int(d)) for d in days_ago],
        },
        schema=HISTORY_SCHEMA,
    )
    return persons, families, history


def peak_mb() -> float:
    """The process's peak resident memory so far, in MB (Linux reports KB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    """Build the population, then time each stage R times and print the best and the peak memory."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--persons", type=int, default=650_000, help="persons in the municipality")
    parser.add_argument("--repeat", type=int, default=3, help="timed repetitions; the best is reported")
    args = parser.parse_args()

    ruleset, table = load_rules(), load_routing_table()
    persons, families, history = population(args.persons)
    print(f"{args.persons:,} persons, {families.height:,} parent-child links, {history.height:,} past decisions; "
          f"peak memory after building them: {peak_mb():,.0f} MB")
    best: dict[str, float] = {}
    for _ in range(args.repeat):
        start = time.perf_counter()
        hits = evaluate(ruleset, persons, as_of=AS_OF, families=families)
        rules_done = time.perf_counter()
        routing = route(hits, persons, ruleset, table, as_of=AS_OF, policy=POLICY, families=families, history=history)
        drafts = routing.flags
        done = time.perf_counter()
        for name, seconds in (("rules", rules_done - start), ("suppression + dedup + routing", done - rules_done),
                              ("total", done - start)):
            best[name] = min(best.get(name, seconds), seconds)
    active = [d for d in drafts if not d.suppressed]
    print(f"{hits.height:,} rule hits on {hits['person'].n_unique():,} persons -> {len(drafts):,} flags: "
          f"{len(active):,} on lists ({sum(d.target == 'family' for d in active):,} family flags, "
          f"{len(routing.below):,} below capacity), {len(drafts) - len(active):,} suppressed")
    for name, seconds in best.items():
        print(f"  {name:<31} {seconds:6.2f} s (best of {args.repeat})")
    verdict = "within" if best["total"] <= 5 else "OVER"
    print(f"Goal 5 s: {verdict}. Peak memory {peak_mb():,.0f} MB.")


if __name__ == "__main__":
    main()
