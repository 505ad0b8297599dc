"""Benchmark: the deployed evaluation of a synthetic municipality, every list side by side in one run.

    uv run python bench/deployed_eval_bench.py [--persons 100000] [--seed 7] [--candidates grid|logistic] [--boot 1000]

Trains the scorer the retraining flow's way on the configured quarterly as-of dates (the whole
grid, chosen by temporal cross-validation), then replays the nightly decision on every weekly as-of
date after the training window whose year of outcomes is known, and prints precision and recall at
capacity for the list teams see, the model's own top-k, the points rule and the true risk the
generator knows (oracle), with 95% intervals that resample children and paired differences.
The registers are used as generated (no validation or pseudonyms), so the oracle's ids match.
"""

from __future__ import annotations

import argparse
import resource
import time

import polars as pl

from models.card import LIST_NAMES
from models.scorer import RiskScorer
from models.train import train
from routing.deployed import evaluate_deployed, evaluation_dates
from routing.table import load_routing_table
from rules.engine import load_rules
from sources.synth import SynthSpec, generate
from tidlig.settings import load_config


def _cell(value: float, low: float, high: float) -> str:
    return f"{value:.3f} [{low:.3f}, {high:.3f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--persons", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--candidates", choices=("grid", "logistic"), default="grid",
                        help="grid: the retraining flow's candidates; logistic: one logistic regression, quicker")
    parser.add_argument("--boot", type=int, default=1000)
    args = parser.parse_args()
    config = load_config()
    started = time.perf_counter()
    town = generate(SynthSpec(persons=args.persons, seed=args.seed, start=config.synth.start, end=config.synth.end))
    generated = time.perf_counter()
    candidates = {"logistic_C1": RiskScorer(C=1.0)} if args.candidates == "logistic" else None
    result = train(town.extracts, config.model.training_as_of, config.model.horizon_days, candidates=candidates, n_boot=0)
    trained = time.perf_counter()
    dates = evaluation_dates(town.extracts, config.model.horizon_days, after=max(result.training_as_of))
    ev = evaluate_deployed(town.extracts, dates, model=result.model, model_version=f"bench/{result.candidate}", ruleset=load_rules(),
                           table=load_routing_table(), policy=config.ranking.policy(), horizon_days=config.model.horizon_days, oracle=town.oracle, n_boot=args.boot,
                           trained_until=max(result.training_as_of))
    evaluated = time.perf_counter()

    print(f"persons {args.persons:,}  model {result.candidate}  {len(ev.dates)} weekly as-of dates {ev.dates[0]} .. {ev.dates[-1]}  "
          f"bootstrap {args.boot} (children resampled)")
    print(f"measured: scored children living in the municipality; {ev.excluded['moved_away_or_died']:,} child-dates of children "
          f"who had moved away or died left out ({ev.excluded['list_places_to_non_residents']} list places went to them)")
    print(f"the model learned from as-of dates up to {ev.trained_until}, whose year of outcomes overlaps these dates': "
          "its own numbers lean optimistic")
    total = ev.at_capacity.filter(pl.col("team") == "all")
    k = total["k"][0]
    print(f"\nall teams: {k:,} child-dates on the lists within capacity ({k / len(ev.dates):.1f} children per date); "
          "every list looks at as many per team and date")
    print(f"{'list':<22}{'precision at capacity':>28}{'recall at capacity':>28}{'escalated':>11}")
    for r in total.iter_rows(named=True):
        print(f"{LIST_NAMES[r['list']]:<22}{_cell(r['precision'], r['precision_low'], r['precision_high']):>28}"
              f"{_cell(r['recall'], r['recall_low'], r['recall_high']):>28}{r['hits']:>11,}")
    print("\npaired differences (same resampled children):")
    for r in ev.differences.filter(pl.col("team") == "all").iter_rows(named=True):
        print(f"  {LIST_NAMES[r['list']]} - {LIST_NAMES[r['versus']]:<20} {r['metric']:<10}{_cell(r['difference'], r['low'], r['high']):>28}")
    print("\nprecision at capacity per team (k = child-dates):")
    teams = ev.at_capacity.filter(pl.col("team") != "all")
    lists = total["list"].to_list()
    print(f"  {'team':<16}{'k':>6}" + "".join(f"{LIST_NAMES[n]:>28}" for n in lists))
    for team, part in teams.group_by("team", maintain_order=True):
        cells = {r["list"]: r for r in part.iter_rows(named=True)}
        print(f"  {team[0]:<16}{cells['deployed']['k']:>6}" + "".join(
            f"{_cell(cells[n]['precision'], cells[n]['precision_low'], cells[n]['precision_high']):>28}" for n in lists))
    cal = ev.calibration
    print(f"\ncalibration in the top 5% by risk: slope {cal['slope']:.2f}, intercept {cal['intercept']:.2f} "
          f"({cal['rows']:,} child-dates, {cal['positives']:,} escalated)")
    print(f"fairness gate of the deployed list: {ev.gate.verdict} ({ev.gate.checked['judged']} of "
          f"{len(ev.gate.checked['verdicts'])} group-metric pairs judged)")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\nseconds: generate {generated - started:.0f}, train {trained - generated:.0f}, evaluate {evaluated - trained:.0f}; "
          f"peak memory {peak:,.0f} MB")


if __name__ == "__main__":
    main()
