"""Point-in-time computation of the catalogue with polars: only what was known on the as-of date."""

from __future__ import annotations

from datetime import date, timedelta

import polars as pl

from features.catalogue import CATALOGUE, Feature


def known_by(events: pl.DataFrame, as_of: date) -> pl.DataFrame:
    """Rows the municipality had learned of on the as-of date."""
    return events.filter(pl.col("known_date") <= as_of)


def in_window(events: pl.DataFrame, as_of: date, days: int | None) -> pl.DataFrame:
    """Rows whose event happened in the window (as_of - days, as_of]."""
    if days is None:
        return events.filter(pl.col("event_date") <= as_of)
    return events.filter(pl.col("event_date").is_between(as_of - timedelta(days=days), as_of, closed="right"))


def matching(events: pl.DataFrame, where: dict[str, tuple[str, ...]]) -> pl.DataFrame:
    """Rows whose columns take one of the listed values."""
    for column, allowed in where.items():
        events = events.filter(pl.col(column).is_in(list(allowed)))
    return events


def aggregate(events: pl.DataFrame, feature: Feature, as_of: date) -> pl.DataFrame:
    """One row per person with rows in the window: person, value."""
    value = {
        "count": pl.len(),
        "mean": pl.col(feature.column).mean() if feature.column else None,
        "days_since_last": (pl.lit(as_of) - pl.col("event_date").max()).dt.total_days(),
    }[feature.agg]
    return events.group_by("person_id").agg(value.alias(feature.name)).rename({"person_id": "person"})


def to_children(per_parent: pl.DataFrame, feature: Feature, families: pl.DataFrame) -> pl.DataFrame:
    """Carry the parents' values over to their children."""
    joined = families.join(per_parent.rename({"person": "parent"}), on="parent")
    value = pl.col(feature.name)
    agg = (value > 0).sum() if feature.over_parents == "parents_with_any" else value.max()
    return joined.group_by("child").agg(agg.alias(feature.name)).rename({"child": "person"})


def compute_feature(feature: Feature, events: pl.DataFrame, families: pl.DataFrame, as_of: date) -> pl.DataFrame:
    """One feature for everyone who has a value (person, feature.name)."""
    rows = matching(in_window(known_by(events, as_of), as_of, feature.window_days), feature.where)
    values = aggregate(rows, feature, as_of)
    return to_children(values, feature, families) if feature.of == "parents" else values


def compute(
    persons: pl.DataFrame,
    sources: dict[str, pl.DataFrame],
    families: pl.DataFrame,
    as_of: date,
    catalogue: tuple[Feature, ...] = CATALOGUE,
) -> pl.DataFrame:
    """Every feature for every person on as_of; counts with no rows are 0, other aggregates null.

    Sources may be DataFrames or LazyFrames (e.g. scanned Parquet): the whole catalogue is one
    lazy plan, so polars reads only the columns used and computes the features in parallel.
    """
    table = persons.lazy()
    links = families.lazy()
    for feature in catalogue:
        values = compute_feature(feature, sources[feature.source].lazy(), links, as_of)
        table = table.join(values, on="person", how="left")
    counts = [pl.col(f.name).fill_null(0).cast(pl.Int64) for f in catalogue if f.agg == "count"]
    return table.with_columns(counts).collect()
