"""Benchmark: ingest and validate a Copenhagen-size initial load and one night's delta.

Each phase runs in its own process so its peak memory is its own:
    uv run python bench/ingest_bench.py [--persons 650000] [--work DIR]

The municipality is generated with 2% mess; the initial load is everything known up to the day
before the extract date (Parquet), the delta what became known on that last day (Danish CSV, as
municipal systems deliver it). Ingest = read, validate (GX, quarantine), pseudonymise, per source, as
the nightly flow does it: the population first, its ids checked in every other source, Data Docs built once.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import polars as pl


def prepare(persons: int, work: Path) -> None:
    from sources.synth import LATIN1_SOURCES, SynthSpec, generate, write_danish_csv
    from tidlig.settings import load_config

    config = load_config()
    town = generate(SynthSpec(persons=persons, seed=7, start=config.synth.start, end=config.synth.end, mess=0.02))
    last = config.synth.end
    (work / "initial").mkdir(parents=True, exist_ok=True)
    (work / "delta").mkdir(parents=True, exist_ok=True)
    for name, frame in town.extracts.items():
        frame.filter(pl.col("known_date") < last).write_parquet(work / "initial" / f"{name}.parquet")
        night = frame.filter(pl.col("known_date") == last)
        if night.is_empty():  # a register with nothing new that night still delivers its (empty) file: take one old row
            night = frame.filter(pl.col("known_date") == frame["known_date"].max()).head(1)
        write_danish_csv(night, work / "delta" / f"{name}.csv", latin1=name in LATIN1_SOURCES)
    print(f"prepared {persons:,} persons in {work} (initial load before {last}, delta known {last})")


def ingest(folder: Path, home: Path, population: Path | None) -> None:
    from sources.pseudonym import pseudonymise
    from sources.readers import read_extract
    from sources.registry import load_registry
    from validate.checks import registered_values
    from validate.context import gx_context, validation_run
    from validate.contract import reference_order, references_from, validate_extract

    registry = load_registry()
    context = gx_context(home)
    started = time.perf_counter()
    key = bytes(32)  # a benchmark key; real runs load the municipality's own
    # A delta's events mostly name persons known before that night: the initial load's population counts too.
    known = pl.read_parquet(population, columns=["person_id"])["person_id"] if population is not None else None
    registered: dict[str, pl.Series] = {}
    rows_in = quarantined = 0
    with validation_run(context) as run:  # as the nightly flow does: one Data Docs build for all sources
        referenced, independent = reference_order(registry)
        for source in [*referenced, *independent]:
            t = time.perf_counter()
            validation = validate_extract(read_extract(folder, source), source, context=context, registered=registered,
                                          today=None, max_invalid_share=0.5, run=run)
            registered |= references_from(validation, registry)
            if source.name == "population" and known is not None:
                registered["population.person_id"] = registered_values(pl.concat([known, validation.valid["person_id"]]))
            pseudonymise(validation.valid, source.person_id_columns, key)
            rows_in += validation.rows_in
            quarantined += validation.rows_quarantined
            assert validation.rows_in == validation.rows_valid + validation.rows_quarantined
            print(f"  {source.name:22s} {validation.rows_in:>11,} in {validation.rows_quarantined:>8,} quarantined {time.perf_counter() - t:6.2f} s")
        t = time.perf_counter()
    print(f"  {'Data Docs, built once':22s} {'':>33} {time.perf_counter() - t:6.2f} s")
    wall = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{folder.name}: {rows_in:,} rows in, {quarantined:,} quarantined, wall {wall:.1f} s, peak memory {peak:,.0f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--persons", type=int, default=650_000)
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--phase", choices=["prepare", "initial", "delta"], default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="tidlig-ingest-"))
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    if args.phase == "prepare":
        prepare(args.persons, work)
    elif args.phase == "initial":
        ingest(work / "initial", work / "home", None)
    elif args.phase == "delta":
        ingest(work / "delta", work / "home", work / "initial" / "population.parquet")
    else:
        for phase in ("prepare", "initial", "delta"):
            subprocess.run([sys.executable, __file__, "--phase", phase, "--persons", str(args.persons), "--work", str(work)], check=True)


if __name__ == "__main__":
    main()
