"""Point-in-time computation of the catalogue with polars: only what was known before the as-of date.

One lazy plan: each source is filtered once (known and happened by the as-of date, within the
widest window any of its features looks at) and grouped once per person, with every feature of
that source as one aggregation; parents' and siblings' values then reach the child through the
parent-child links in one group-by each.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, timedelta

import polars as pl

from features.catalogue import CATALOGUE, COUNT_LIKE, SPELL_GAP_DAYS, Feature
from sources.known import known_before


def known_and_happened(events: pl.LazyFrame, as_of: date) -> pl.LazyFrame:
    """Rows known before the as-of date (sources.known), about things that had happened by then."""
    return known_before(events, as_of).filter(pl.col("event_date") <= as_of)


def in_window(as_of: date, days: int | None, *, windows_back: int = 0) -> pl.Expr:
    """Rows whose event happened in (as_of - days, as_of], or that many windows further back."""
    if days is None:
        return pl.lit(True)
    end = as_of - timedelta(days=days * windows_back)
    return pl.col("event_date").is_between(end - timedelta(days=days), end, closed="right")


def matching(where: dict[str, tuple[str, ...]]) -> pl.Expr:
    """Rows whose columns take one of the listed values."""
    keep = pl.lit(True)
    for column, allowed in where.items():
        keep = keep & pl.col(column).is_in(list(allowed))
    return keep


def count(rows: pl.Expr) -> pl.Expr:
    return rows.sum().cast(pl.Int64)


def mean(column: str, rows: pl.Expr) -> pl.Expr:
    return pl.col(column).filter(rows).mean()


def days_since_last(rows: pl.Expr, as_of: date) -> pl.Expr:
    return (pl.lit(as_of) - pl.col("event_date").filter(rows).max()).dt.total_days()


def change_in_mean(column: str, rows: pl.Expr, earlier_rows: pl.Expr) -> pl.Expr:
    """The trend: the mean in the window minus the mean in the window before it."""
    return mean(column, rows) - mean(column, earlier_rows)


def in_person_date_order(events: pl.LazyFrame) -> pl.LazyFrame:
    """Rows sorted by person, then event date, with that order as one integer `_key`.

    Sorting integer codes is several times faster than sorting the string ids, and the person part
    of the key makes any two persons' dates far apart, so runs never span persons.
    """
    code = pl.col("person_id").cast(pl.Categorical).to_physical().cast(pl.Int64)
    day = pl.col("event_date").cast(pl.Int32).cast(pl.Int64) + 2**31
    return events.with_columns(_key=code * 2**32 + day).sort("_key")


def spell_so_far(rows: pl.Expr) -> pl.Expr:
    """Per row of `rows`, the distinct days of its spell up to it (rows must be in person-date order).

    A row continues the spell of the previous row of `rows` when their dates are at most
    SPELL_GAP_DAYS apart; the same date again adds no day.
    """
    key = pl.when(rows).then(pl.col("_key"))
    gap = key - key.shift(1).forward_fill()
    starts = gap.is_null() | (gap > SPELL_GAP_DAYS)
    days = (rows & (gap.is_null() | (gap > 0))).cum_sum()
    return pl.when(rows).then(days - pl.when(rows & starts).then(days).forward_fill() + 1)


def own_value(feature: Feature, as_of: date) -> pl.Expr:
    """A person's own value of the feature, as an aggregation over that person's rows of its source.

    Spells are the exception: a running value per row, whose maximum (the longest spell) per_person takes.
    """
    rows = in_window(as_of, feature.window_days) & matching(feature.where)
    if feature.agg == "count":
        return count(rows)
    if feature.agg == "mean":
        return mean(feature.column, rows)
    if feature.agg == "days_since_last":
        return days_since_last(rows, as_of)
    if feature.agg == "change_in_mean":
        return change_in_mean(feature.column, rows, in_window(as_of, feature.window_days, windows_back=1) & matching(feature.where))
    return spell_so_far(rows)


def reach_days(features: Iterable[Feature]) -> int | None:
    """How far back before the as-of date any of the features looks; None for all history."""
    days = []
    for f in features:
        if f.window_days is None:
            return None
        days.append(f.window_days * (2 if f.agg == "change_in_mean" else 1))
    return max(days)


def own_key(feature: Feature) -> tuple:
    """Features with the same key have the same own value (e.g. a person's and a parent's treatment count)."""
    return feature.source, feature.agg, feature.window_days, feature.column, tuple(sorted(feature.where.items()))


def per_person(events: pl.LazyFrame, features: list[Feature], columns: dict[tuple, str], as_of: date) -> pl.LazyFrame:
    """One row per person with rows of this source: every distinct own value of its features."""
    reach = reach_days(features)
    rows = known_and_happened(events, as_of)
    if reach is not None:
        rows = rows.filter(pl.col("event_date") > as_of - timedelta(days=reach))
    spells = {columns[own_key(f)]: own_value(f, as_of) for f in features if f.agg == "longest_spell_weeks"}
    if spells:
        # A spell is a running value along each person's dates, computed before grouping.
        rows = in_person_date_order(rows).with_columns(**spells)
    aggs = {columns[own_key(f)]: own_value(f, as_of) for f in features if f.agg != "longest_spell_weeks"}
    aggs |= {name: pl.col(name).max().cast(pl.Int64) for name in spells}
    return rows.group_by("person_id").agg(**aggs).rename({"person_id": "person"})


def over_parents(own: list[pl.LazyFrame], families: pl.LazyFrame, features: list[Feature], columns: dict[tuple, str]) -> pl.LazyFrame:
    """The parents' own values carried to each child, and which parent (mother, father, both) they are about."""
    joined = families.select("parent", "child", "relation")
    for values in own:
        joined = joined.join(values, left_on="parent", right_on="person", how="left")
    # The highest or lowest parent's value beside every parent first: only elementwise steps and
    # plain sums and maxima remain for the group-by, which polars runs without per-child lists.
    joined = joined.with_columns(**{
        f"_{f.name}": getattr(pl.col(columns[own_key(f)]), f.over)().over("child") for f in features if f.over in ("max", "min")
    })
    aggs = {}
    for f in features:
        value = pl.col(columns[own_key(f)])
        if f.over == "parents_with_any":
            aggs[f.name], behind = (value > 0).sum().cast(pl.Int64), value > 0
        else:
            aggs[f.name] = getattr(value, f.over)()
            behind = (value == pl.col(f"_{f.name}")) & ((value > 0) if f.agg in COUNT_LIKE else True)
        behind = behind.fill_null(False)
        one = pl.when(behind).then(pl.col("relation")).max()
        aggs[f"{f.name}_parent"] = pl.when(behind.sum() > 1).then(pl.lit("both")).otherwise(one)
    return joined.group_by("child").agg(**aggs).rename({"child": "person"})


def sibling_pairs(families: pl.LazyFrame) -> pl.LazyFrame:
    """(child, sibling): other children of any of the child's parents, each pair once."""
    links = families.select("parent", "child")
    return (
        links.join(links.rename({"child": "sibling"}), on="parent")
        .filter(pl.col("child") != pl.col("sibling"))
        .select("child", "sibling")
        .unique()
    )


def over_siblings(own: list[pl.LazyFrame], families: pl.LazyFrame, features: list[Feature], columns: dict[tuple, str]) -> pl.LazyFrame:
    """The siblings' own values summed for each child."""
    joined = sibling_pairs(families)
    for values in own:
        joined = joined.join(values, left_on="sibling", right_on="person", how="left")
    return joined.group_by("child").agg(**{f.name: pl.col(columns[own_key(f)]).sum() for f in features}).rename({"child": "person"})


def compute(
    persons: pl.DataFrame | pl.LazyFrame,
    sources: dict[str, pl.DataFrame],
    families: pl.DataFrame | pl.LazyFrame,
    as_of: date,
    catalogue: tuple[Feature, ...] = CATALOGUE,
) -> pl.DataFrame:
    """Every feature for every person (column `person`) on as_of; counts with no rows are 0, other aggregates null.

    Parents' features also get a column `<name>_parent` saying which parent the value is about.
    Sources may be DataFrames or LazyFrames (e.g. scanned Parquet): polars reads only the columns
    used and computes the sources in parallel.
    """
    missing = sorted({f.source for f in catalogue} - set(sources))
    if missing:
        raise ValueError(f"the feature catalogue needs source(s) {missing}, which were not given; read them before computing features")
    columns: dict[tuple, str] = {}
    for f in catalogue:
        columns.setdefault(own_key(f), f"own_{len(columns)}")
    links = families.lazy()
    found: list[pl.LazyFrame] = []  # per source or relation: persons with a value, and their values
    relatives: dict[str, tuple[list[pl.LazyFrame], list[Feature]]] = {"parents": ([], []), "siblings": ([], [])}
    for source in dict.fromkeys(f.source for f in catalogue):
        features = [f for f in catalogue if f.source == source]
        own = per_person(sources[source].lazy(), features, columns, as_of)
        mine = [f for f in features if f.of == "self"]
        if mine:
            found.append(own.select("person", *(pl.col(columns[own_key(f)]).alias(f.name) for f in mine)))
        for of, (frames, wanted) in relatives.items():
            theirs = [f for f in features if f.of == of]
            if theirs:
                frames.append(own.select("person", *dict.fromkeys(columns[own_key(f)] for f in theirs)))
                wanted.extend(theirs)
    for of, combine in (("parents", over_parents), ("siblings", over_siblings)):
        frames, features = relatives[of]
        if features:
            found.append(combine(frames, links, features, columns))
    # The few persons with any value are put side by side first, so the whole population is
    # joined once rather than once per source.
    values = found[0]
    for more in found[1:]:
        values = values.join(more, on="person", how="full", coalesce=True)
    counts = [pl.col(f.name).fill_null(0).cast(pl.Int64) for f in catalogue if f.agg in COUNT_LIKE]
    table = persons.lazy()
    return table.join(values, on="person", how="left").with_columns(counts).select(*table.collect_schema().names(), *_order(catalogue)).collect()


# What each kind of aggregate gives: counts, days and weeks are whole numbers, means are not.
VALUE_TYPES: dict[str, pl.DataType] = {
    "count": pl.Int64(), "longest_spell_weeks": pl.Int64(), "days_since_last": pl.Int64(),
    "mean": pl.Float64(), "change_in_mean": pl.Float64(),
}


def feature_schema(catalogue: tuple[Feature, ...] = CATALOGUE) -> dict[str, pl.DataType]:
    """The columns compute adds and their types, in its order: what later stages may read."""
    return {c: VALUE_TYPES[f.agg] if c == f.name else pl.String() for f in catalogue for c in _order((f,))}


def _order(catalogue: tuple[Feature, ...]) -> list[str]:
    """Each feature in catalogue order, a parent's feature followed by which parent it is about."""
    return [c for f in catalogue for c in (f.name, f"{f.name}_parent")[: 1 + f.names_parent]]
