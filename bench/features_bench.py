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

from features.catalogue import CATALOGUE, COUNT_LIKE, SPELL_GAP_DAYS, Feature  # noqa: E402
from features.compute import own_key, reach_days  # noqa: E402

IMPLEMENTATIONS = ("polars", "duckdb", "pandas")
# Every feature, and for parents' features which parent it is about, in catalogue order.
COLUMNS = ["person", *(c for f in CATALOGUE for c in (f.name, f"{f.name}_parent")[: 1 + f.names_parent])]


def _load(folder: Path) -> dict[str, pl.DataFrame]:
    return {path.stem: pl.read_parquet(path) for path in folder.glob("*.parquet")}


def _own_columns() -> dict[tuple, str]:
    """One name per distinct own value, shared by features that need the same one (as compute does)."""
    columns: dict[tuple, str] = {}
    for f in CATALOGUE:
        columns.setdefault(own_key(f), f"own_{len(columns)}")
    return columns


def run_polars(folder: Path, as_of: date) -> pl.DataFrame:
    from features.compute import compute

    sources = {path.stem: pl.scan_parquet(path) for path in folder.glob("*.parquet")}
    # The same persons and links as the references read (ages and the rest of linking are not features).
    people = (sources["population"].filter((pl.col("known_date") <= as_of) & (pl.col("birth_date") <= as_of))
              .select(person=pl.col("person_id").unique()))
    links = (sources["family_relations"].filter(pl.col("known_date") <= as_of)
             .select(parent="parent_id", child="child_id", relation="relation").unique(["parent", "child"]))
    return compute(people, sources, links, as_of).select(COLUMNS)


def _sql_rows(f: Feature, day: str, windows_back: int = 0) -> str:
    """The SQL condition for a feature's rows (within rows already known and happened by the day)."""
    clauses = [f"{c} IN ({', '.join(repr(v) for v in allowed)})" for c, allowed in f.where.items()]
    if f.window_days is not None:
        end = f"{day} - INTERVAL {f.window_days * windows_back} DAY"
        clauses.append(f"event_date > {end} - INTERVAL {f.window_days} DAY AND event_date <= {end}")
    return " AND ".join(clauses) or "TRUE"


def _sql_own(f: Feature, day: str) -> str:
    rows = _sql_rows(f, day)
    return {
        "count": f"COUNT(*) FILTER (WHERE {rows})",
        "mean": f"AVG({f.column}) FILTER (WHERE {rows})",
        "days_since_last": f"DATE_DIFF('day', MAX(event_date) FILTER (WHERE {rows}), {day})",
        "change_in_mean": f"AVG({f.column}) FILTER (WHERE {rows}) - AVG({f.column}) FILTER (WHERE {_sql_rows(f, day, 1)})",
    }[f.agg]


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
        f"CREATE TEMP TABLE links AS SELECT DISTINCT parent_id AS parent, child_id AS child, relation "
        f"FROM family_relations WHERE known_date <= {day}"
    )
    columns = _own_columns()
    # One aggregation per source, every feature a filtered aggregate of it; spells need window functions.
    for source in dict.fromkeys(f.source for f in CATALOGUE):
        features = [f for f in CATALOGUE if f.source == source]
        reach = reach_days(features)
        known = f"known_date <= {day} AND event_date <= {day}" + ("" if reach is None else f" AND event_date > {day} - INTERVAL {reach} DAY")
        aggs = {columns[own_key(f)]: _sql_own(f, day) for f in features if f.agg != "longest_spell_weeks"}
        select = ", ".join(f"{sql} AS {name}" for name, sql in aggs.items())
        con.execute(f"CREATE TEMP TABLE own_{source} AS SELECT person_id AS person{', ' if select else ''}{select} "
                    f"FROM {source} WHERE {known} GROUP BY person_id")
        for f in features:
            name = columns[own_key(f)]
            if f.agg != "longest_spell_weeks" or name in aggs:
                continue
            aggs[name] = "spell"
            con.execute(f"""
                CREATE TEMP TABLE spell AS
                WITH days AS (SELECT DISTINCT person_id AS person, event_date AS d FROM {source} WHERE {known} AND {_sql_rows(f, day)}),
                breaks AS (SELECT person, d, CASE WHEN DATE_DIFF('day', LAG(d) OVER (PARTITION BY person ORDER BY d), d) > {SPELL_GAP_DAYS}
                           THEN 1 ELSE 0 END AS brk FROM days),
                runs AS (SELECT person, SUM(brk) OVER (PARTITION BY person ORDER BY d) AS run FROM breaks)
                SELECT person, MAX(n) AS v FROM (SELECT person, run, COUNT(*) AS n FROM runs GROUP BY person, run) GROUP BY person""")
            con.execute(f"ALTER TABLE own_{source} ADD COLUMN {name} BIGINT")
            con.execute(f"UPDATE own_{source} o SET {name} = s.v FROM spell s WHERE s.person = o.person")
            con.execute("DROP TABLE spell")

    selects, joins = [], []
    for i, source in enumerate(dict.fromkeys(f.source for f in CATALOGUE)):
        joins.append(f"LEFT JOIN own_{source} s{i} ON s{i}.person = p.person")
        for f in CATALOGUE:
            if f.source == source and f.of == "self":
                selects.append((f, f"s{i}.{columns[own_key(f)]}"))
    parent_features = [f for f in CATALOGUE if f.of == "parents"]
    parent_sources = list(dict.fromkeys(f.source for f in parent_features))
    valued = " ".join(f"LEFT JOIN own_{s} o{k} ON o{k}.person = l.parent" for k, s in enumerate(parent_sources))
    per_parent = ", ".join(f"o{parent_sources.index(f.source)}.{columns[own_key(f)]} AS v_{f.name}" for f in parent_features)
    extremes = ", ".join(f"{'MAX' if f.over == 'max' else 'MIN'}(v_{f.name}) OVER (PARTITION BY child) AS x_{f.name}"
                         for f in parent_features if f.over != "parents_with_any")
    aggs = []
    for f in parent_features:
        v = f"v_{f.name}"
        if f.over == "parents_with_any":
            value, behind = f"COUNT(*) FILTER (WHERE {v} > 0)", f"{v} > 0"
        else:
            value = f"{'MAX' if f.over == 'max' else 'MIN'}({v})"
            behind = f"{v} = x_{f.name}" + (f" AND {v} > 0" if f.agg in COUNT_LIKE else "")
        aggs.append(f"{value} AS {f.name}, CASE WHEN COUNT(*) FILTER (WHERE {behind}) > 1 THEN 'both' "
                    f"ELSE MIN(relation) FILTER (WHERE {behind}) END AS {f.name}_parent")
    con.execute(f"""CREATE TEMP TABLE parents AS
        SELECT child AS person, {', '.join(aggs)} FROM (
            SELECT *, {extremes} FROM (SELECT l.child, l.relation, {per_parent} FROM links l {valued}))
        GROUP BY child""")
    sibling_features = [f for f in CATALOGUE if f.of == "siblings"]
    sums = ", ".join(f"SUM(o.{columns[own_key(f)]}) AS {f.name}" for f in sibling_features)
    con.execute(f"""CREATE TEMP TABLE siblings AS
        WITH pairs AS (SELECT DISTINCT a.child, b.child AS sibling FROM links a JOIN links b ON a.parent = b.parent WHERE a.child <> b.child)
        SELECT pairs.child AS person, {sums} FROM pairs JOIN own_notifications o ON o.person = pairs.sibling GROUP BY pairs.child""")
    out = []
    for f in CATALOGUE:
        column = {"self": dict((g.name, c) for g, c in selects).get(f.name), "parents": f"pa.{f.name}", "siblings": f"si.{f.name}"}[f.of]
        cast = "DOUBLE" if f.agg in ("mean", "change_in_mean") else "BIGINT"
        out.append(f"CAST({f'COALESCE({column}, 0)' if f.agg in COUNT_LIKE else column} AS {cast}) AS {f.name}")
        if f.names_parent:
            out.append(f"pa.{f.name}_parent")
    sql = (f"SELECT p.person, {', '.join(out)} FROM people p {' '.join(joins)} "
           f"LEFT JOIN parents pa ON pa.person = p.person LEFT JOIN siblings si ON si.person = p.person")
    return con.sql(sql).pl()


def _pandas_own(rows, f: Feature, day):
    """One person-indexed Series: the feature's own value for everyone with rows in its window."""
    import pandas as pd

    def kept(windows_back: int = 0):
        keep = pd.Series(True, index=rows.index)
        if f.window_days is not None:
            end = day - pd.Timedelta(days=f.window_days * windows_back)
            keep &= (rows.event_date > end - pd.Timedelta(days=f.window_days)) & (rows.event_date <= end)
        for column, allowed in f.where.items():
            keep &= rows[column].isin(allowed)
        return rows.loc[keep]

    grouped = kept().groupby("person_id")
    if f.agg == "count":
        return grouped.size()
    if f.agg == "mean":
        return grouped[f.column].mean()
    if f.agg == "days_since_last":
        return (day - grouped["event_date"].max()).dt.days
    if f.agg == "change_in_mean":
        return (grouped[f.column].mean() - kept(1).groupby("person_id")[f.column].mean()).dropna()
    days = kept()[["person_id", "event_date"]].drop_duplicates().sort_values(["person_id", "event_date"])
    breaks = days.groupby("person_id")["event_date"].diff().dt.days > SPELL_GAP_DAYS
    run = breaks.groupby(days.person_id).cumsum()
    return days.groupby([days.person_id, run]).size().groupby(level=0).max()


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
    links = (fam.loc[fam.known_date <= day, ["parent_id", "child_id", "relation"]].drop_duplicates(["parent_id", "child_id"])
             .rename(columns={"parent_id": "parent", "child_id": "child"}))
    pairs = links[["parent", "child"]].merge(links[["parent", "child"]].rename(columns={"child": "sibling"}), on="parent")
    pairs = pairs.loc[pairs.child != pairs.sibling, ["child", "sibling"]].drop_duplicates()
    known = {name: rows.loc[(rows.known_date <= day) & (rows.event_date <= day)] for name, rows in frames.items() if "event_date" in rows}
    table = people
    for f in CATALOGUE:
        values = _pandas_own(known[f.source], f, day).rename("v").rename_axis("person").reset_index()
        if f.of == "parents":
            joined = links.merge(values.rename(columns={"person": "parent"}), on="parent")
            by_child = joined.groupby("child")["v"]
            if f.over == "parents_with_any":
                value, behind = (joined.v > 0).groupby(joined.child).sum(), joined.v > 0
            else:
                value = by_child.max() if f.over == "max" else by_child.min()
                extreme = by_child.transform("max" if f.over == "max" else "min")
                behind = (joined.v == extreme) & ((joined.v > 0) if f.agg in COUNT_LIKE else True)
            who = joined.loc[behind].groupby("child")["relation"].agg(lambda r: r.iloc[0] if len(r) == 1 else "both")
            values = pd.DataFrame({f.name: value, f"{f.name}_parent": who}).rename_axis("person").reset_index()
        elif f.of == "siblings":
            joined = pairs.merge(values.rename(columns={"person": "sibling"}), on="sibling")
            values = joined.groupby("child")["v"].sum().rename(f.name).rename_axis("person").reset_index()
        else:
            values = values.rename(columns={"v": f.name})
        table = table.merge(values, on="person", how="left")
        if f.agg in COUNT_LIKE:
            table[f.name] = table[f.name].fillna(0).astype("int64")
    return pl.from_pandas(table).select(COLUMNS)


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


def _peak_mb() -> float:
    # VmHWM, not ru_maxrss: the latter carries the parent's peak across fork and exec.
    status = Path("/proc/self/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM"))) / 1024


def child(implementation: str, folder: Path, as_of: date, out: Path) -> None:
    start = time.perf_counter()
    table = {"polars": run_polars, "duckdb": run_duckdb, "pandas": run_pandas}[implementation](folder, as_of)
    seconds = time.perf_counter() - start
    table.sort("person").write_parquet(out)
    # Peak memory of the features alone, before scoring reads the extracts again.
    result = {"seconds": seconds, "rows": table.height, "peak_rss_mb": _peak_mb()}
    if implementation == "polars":
        result["scoring_seconds"] = _score(folder, table, as_of)
        result["scoring_peak_rss_mb"] = _peak_mb()
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
        print(f"scoring the cohort (polars features, fitted scorer): {results['polars']['scoring_seconds']:.2f} s, "
              f"peak {results['polars']['scoring_peak_rss_mb']:.0f} MB with the features")


if __name__ == "__main__":
    main()
