"""Benchmark: generate a synthetic municipality (default Copenhagen size) and print wall time and peak memory.

    uv run python bench/synth_bench.py [--persons 650000] [--out DIR] [--format parquet|csv-dk] [--mess 0.02]
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

from sources.synth import SynthSpec, generate
from tidlig.settings import load_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--persons", type=int, default=650_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--mess", type=float, default=0.02)
    parser.add_argument("--format", default="parquet")
    parser.add_argument("--out", type=Path, default=None, help="where to write (default: a temporary folder)")
    args = parser.parse_args()
    config = load_config()
    out = args.out or Path(tempfile.mkdtemp(prefix="tidlig-synth-"))
    started = time.perf_counter()
    town = generate(SynthSpec(persons=args.persons, seed=args.seed, start=config.synth.start, end=config.synth.end, mess=args.mess))
    generated = time.perf_counter() - started
    town.write(out, args.format)
    total = time.perf_counter() - started
    rows = sum(frame.height for frame in town.extracts.values())
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"persons {args.persons:,}  rows {rows:,}  generate {generated:.1f} s  generate+write {total:.1f} s  "
          f"peak memory {peak:,.0f} MB  ({args.format} in {out})")


if __name__ == "__main__":
    main()
