"""Benchmark: the feature catalogue in polars, next to DuckDB SQL and pandas on the same data.

Each implementation runs in its own process (so peak memory is its own), reads the same Parquet
extracts, computes every catalogue feature for every person on the as-of date, and writes its
table; the tables must agree before any number is printed. The polars run also scores the
cohort with a fitted scorer, to time scoring at this size.

    uv run python bench/features_bench.py --persons 650000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import polars as pl

sys.path.insert(0, str(Path(__file__).parents[1]))

from features.catalogue import CATALOGUE, Feature  # noqa: E402

IMPLEMENTATIONS = ("polars", "duckdb", "pandas")


def _load(folder: Path) -> dict[str, pl.DataFrame]:
    return {path.stem: pl.read_parquet(path) for path in folder.glob("*.parquet")}


def run_polars(folder: Path, as_of: date) -> pl.DataFrame:
    from features.compute import compute
    from link.persons import families, persons

    sources = {path.stem: pl.scan_parquet(path) for path in folder.glob("*.parquet")}
    people = persons(sources["population"].collect(), as_of)
    links = families(sources["family_relations"].collect(), as_of)
    return compute(people.select("person"), sources, links, as_of)


def _where_sql(feature: Feature) -> str:
    clauses = [f"{c} IN ({', '.join(repr(v) for v in allowed)})" for c, allowed in feature.where.items()]
    return "".join(f" AND {c}" for c in clauses)


def run_duckdb(folder: Path, as_of: date) -> pl.DataFrame:
    import duckdb

    con = duckdb.connect()
    for path in folder.glob("*.parquet"):
        con.execute(f"CREATE VIEW {path.stem} AS SELECT * FROM read_parquet('{path}')")
    day = f"DATE '{as_of}'"
    con.execute(
        f"CREATE TEMP TABLE people AS SELECT person_id AS person FROM population "
        f"WHERE known_date <= {day} AND birth_date <= {day} GROUP BY person_id"
    )
    con.execute(
        f"CREATE TEMP TABLE links AS SELECT DISTINCT parent_id AS parent, child_id AS child "
        f"FROM family_relations WHERE known_date <= {day}"
    )
    selects, joins = [], []
    for i, f in enumerate(CATALOGUE):
        window = "" if f.window_days is None else f" AND event_date > {day} - INTERVAL {f.window_days} DAY"
        value = {"count": "COUNT(*)", "mean": f"AVG({f.column})", "days_since_last": f"DATE_DIFF('day', MAX(event_date), {day})"}[f.agg]
        own = (
            f"SELECT person_id AS person, {value} AS v FROM {f.source} "
            f"WHERE known_date <= {day} AND event_date <= {day}{window}{_where_sql(f)} GROUP BY person_id"
        )
        if f.of == "parents":
            over = "SUM(CASE WHEN o.v > 0 THEN 1 ELSE 0 END)" if f.over_parents == "parents_with_any" else "MAX(o.v)"
            own = f"SELECT l.child AS person, {over} AS v FROM links l JOIN ({own}) o ON o.person = l.parent GROUP BY l.child"
        joins.append(f"LEFT JOIN ({own}) f{i} ON f{i}.person = p.person")
        cast = "BIGINT" if f.agg != "mean" else "DOUBLE"
        filled = f"COALESCE(f{i}.v, 0)" if f.agg == "count" else f"f{i}.v"
        selects.append(f"CAST({filled} AS {cast}) AS {f.name}")
    sql = f"SELECT p.person, {', '.join(selects)} FROM people p {' '.join(joins)}"
    return con.sql(sql).pl()


def run_pandas(folder: Path, as_of: date) -> pl.DataFrame:
    import pandas as pd

    day = pd.Timestamp(as_of)
    frames = {path.stem: pd.read_parquet(path) for path in folder.glob("*.parquet")}
    for frame in frames.values():
        for column in ("event_date", "known_date", "birth_date"):
            if column in frame:
                frame[column] = pd.to_datetime(frame[column])
    pop = frames["population"]
    people = pd.DataFrame({"person": pop.loc[(pop.known_date <= day) & (pop.birth_date <= day), "person_id"].unique()})
    fam = frames["family_relations"]
    links = fam.loc[fam.known_date <= day, ["parent_id", "child_id"]].drop_duplicates().rename(columns={"parent_id": "parent", "child_id": "child"})
    table = people
    for f in CATALOGUE:
        rows = frames[f.source]
        keep = (rows.known_date <= day) & (rows.event_date <= day)
        if f.window_days is not None:
            keep &= rows.event_date > day - pd.Timedelta(days=f.window_days)
        for column, allowed in f.where.items():
            keep &= rows[column].isin(allowed)
        grouped = rows.loc[keep].groupby("person_id")
        if f.agg == "count":
            values = grouped.size()
        elif f.agg == "mean":
            values = grouped[f.column].mean()
        else:
            values = (day - grouped["event_date"].max()).dt.days
        values = values.rename(f.name).rename_axis("person").reset_index()
        if f.of == "parents":
            joined = links.merge(values.rename(columns={"person": "parent"}), on="parent")
            agg = (joined[f.name] > 0).groupby(joined.child).sum() if f.over_parents == "parents_with_any" else joined.groupby("child")[f.name].max()
            values = agg.rename(f.name).rename_axis("person").reset_index()
        table = table.merge(values, on="person", how="left")
        if f.agg == "count":
            table[f.name] = table[f.name].fillna(0).astype("int64")
    return pl.from_pandas(table)


def _score(folder: Path, table: pl.DataFrame, as_of: date) -> float:
    """Seconds to score the cohort with a scorer fitted on a sample (fitting is not timed)."""
    import numpy as np

    from features.table import feature_table
    from models.labels import cohort
    from models.scorer import RiskScorer
    from models.train import MODEL_FEATURES, matrix

    sources = _load(folder)
    full, _ = feature_table(sources, as_of)
    scored = cohort(full, sources["support_measures"], as_of)
    rng = np.random.default_rng(0)
    sample = matrix(scored.head(50_000))
    model = RiskScorer().fit(sample, rng.random(len(sample)) < 0.05)
    start = time.perf_counter()
    X = matrix(scored)
    model.predict_proba(X)
    model.score_levels(X)
    return time.perf_counter() - start


def child(implementation: str, folder: Path, as_of: date, out: Path) -> None:
    start = time.perf_counter()
    table = {"polars": run_polars, "duckdb": run_duckdb, "pandas": run_pandas}[implementation](folder, as_of)
    seconds = time.perf_counter() - start
    table.sort("person").write_parquet(out)
    result = {"seconds": seconds, "rows": table.height}
    if implementation == "polars":
        result["scoring_seconds"] = _score(folder, table, as_of)
    # VmHWM, not ru_maxrss: the latter carries the parent's peak across fork and exec.
    status = Path("/proc/self/status").read_text()
    result["peak_rss_mb"] = int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM"))) / 1024
    print(json.dumps(result))


def _same(a: pl.DataFrame, b: pl.DataFrame, name: str) -> None:
    if a.columns != b.columns or a.height != b.height:
        raise SystemExit(f"{name} differs in shape: {a.shape} vs {b.shape}, columns {a.columns} vs {b.columns}")
    for column in a.columns:
        left, right = a[column], b[column]
        if left.dtype.is_float() or right.dtype.is_float():
            close = ((left.cast(pl.Float64) - right.cast(pl.Float64)).abs() < 1e-9) | (left.is_null() & right.is_null())
            ok = bool(close.fill_null(False).all())
        else:
            ok = left.cast(pl.Utf8).equals(right.cast(pl.Utf8))
        if not ok:
            raise SystemExit(f"{name} differs from polars in column {column}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--persons", type=int, default=650_000, help="residents of the synthetic municipality")
    parser.add_argument("--as-of", type=date.fromisoformat, default=date(2026, 11, 1), help="as-of date")
    parser.add_argument("--child", choices=IMPLEMENTATIONS, help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.folder, args.as_of, args.out)
        return

    from sources.synth import SynthSpec, generate
    from tidlig.settings import load_config

    config = load_config()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        start = time.perf_counter()
        folder = generate(SynthSpec(persons=args.persons, seed=1, start=config.synth.start, end=config.synth.end)).write(tmp)
        print(f"synthetic municipality of {args.persons:,} persons: {time.perf_counter() - start:.1f} s")
        results, tables = {}, {}
        for name in IMPLEMENTATIONS:
            out = tmp / f"{name}.parquet"
            done = subprocess.run(
                [sys.executable, __file__, "--child", name, "--folder", str(folder), "--out", str(out), "--as-of", str(args.as_of)],
                capture_output=True, text=True, env={**os.environ, "POLARS_MAX_THREADS": os.environ.get("POLARS_MAX_THREADS", "2")},
            )
            if done.returncode != 0:
                raise SystemExit(f"{name} failed:\n{done.stderr[-3000:]}")
            results[name] = json.loads(done.stdout.strip().splitlines()[-1])
            tables[name] = pl.read_parquet(out)
        for name in IMPLEMENTATIONS[1:]:
            _same(tables["polars"], tables[name], name)
        print(f"features for {results['polars']['rows']:,} persons, {len(CATALOGUE)} features; all three agree")
        print(f"{'implementation':<16}{'seconds':>10}{'peak MB':>10}")
        for name in IMPLEMENTATIONS:
            print(f"{name:<16}{results[name]['seconds']:>10.2f}{results[name]['peak_rss_mb']:>10.0f}")
        print(f"scoring the cohort (polars features, fitted scorer): {results['polars']['scoring_seconds']:.2f} s")


if __name__ == "__main__":
    main()
