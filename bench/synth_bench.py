"""Benchmark: generate a synthetic municipality (default Copenhagen size) and print wall time and peak memory.

    uv run python bench/synth_bench.py [--persons 650000] [--block-persons 250000] [--out DIR] [--format parquet|csv-dk] [--mess 0.02]

Generation goes block by block as `tidlig synth` does it, each block written before the next is
made; the goal is 650,000 residents in at most 2 minutes, and 6,000,000 within a 24 GB machine.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq

from sources.synth import BLOCK_PERSONS, SynthSpec, blocks, write_municipality
from tidlig.settings import load_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--persons", type=int, default=650_000)
    parser.add_argument("--block-persons", type=int, default=BLOCK_PERSONS)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--mess", type=float, default=0.02)
    parser.add_argument("--format", default="parquet")
    parser.add_argument("--out", type=Path, default=None, help="where to write (default: a temporary folder)")
    args = parser.parse_args()
    config = load_config()
    out = args.out or Path(tempfile.mkdtemp(prefix="tidlig-synth-"))
    spec = SynthSpec(persons=args.persons, seed=args.seed, start=config.synth.start, end=config.synth.end, mess=args.mess)
    started = time.perf_counter()
    laps = []

    def lap(done: int, total: int) -> None:
        laps.append(time.perf_counter() - started)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"  block {done}/{total} written at {laps[-1]:.1f} s, peak memory so far {peak:,.0f} MB", flush=True)

    print(f"persons {args.persons:,} in {len(blocks(args.persons, args.block_persons))} block(s) of at most {args.block_persons:,}")
    folder = write_municipality(spec, out, args.format, block_persons=args.block_persons, on_block=lap)
    total = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rows = sum(pq.ParquetFile(p).metadata.num_rows for p in folder.glob("*.parquet")) if args.format == "parquet" else None
    size = sum(p.stat().st_size for p in folder.iterdir()) / 2**20
    print(f"persons {args.persons:,}  rows {rows if rows is None else f'{rows:,}'}  generate+write {total:.1f} s  "
          f"peak memory {peak:,.0f} MB  files {size:,.0f} MB  ({args.format} in {out})")


if __name__ == "__main__":
    main()
