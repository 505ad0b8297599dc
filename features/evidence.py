"""The source rows behind a flagged person's features: the trail from a decision back to the registers.

For each feature a flag names, the rows the feature counted on the as-of date, read with the
catalogue's own definition (source, window, where, of) and the same filters the computation uses,
so the trail cannot drift from the value. Only the register, the event date and the date the
municipality knew it are kept: enough to find the row in the register, nothing of its contents.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from datetime import date

import polars as pl

from features.catalogue import CATALOGUE, Feature
from features.compute import in_window, known_and_happened, matching, sibling_pairs

EVIDENCE_SCHEMA = {
    "person": pl.String, "feature": pl.String, "source": pl.String, "event_date": pl.Date, "known_date": pl.Date,
}
AGGS = ("count", "mean", "days_since_last", "change_in_mean", "longest_spell_weeks")
OWNERS = ("self", "parents", "siblings")
# The Feature fields this module reads, and those that do not change which rows count (a parent
# feature counts every parent's rows whichever way it combines them). A field outside both sets
# came with a new kind of feature: it must be taught here, not guessed at.
_FIELDS_READ = {"source", "agg", "window_days", "column", "where", "of"}
_FIELDS_IGNORED = {"name", "why", "texts", "label", "over"}


class EvidenceError(ValueError):
    """A feature's source rows cannot be listed; the message names the feature and what is unknown."""


def evidence(
    sources: Mapping[str, pl.DataFrame | pl.LazyFrame],
    families: pl.DataFrame,
    wanted: Mapping[str, Iterable[str]],
    as_of: date,
    catalogue: tuple[Feature, ...] = CATALOGUE,
) -> pl.DataFrame:
    """Per flagged person, the rows behind each named feature: person, feature, source, event_date, known_date.

    `wanted` maps a person to the feature names in their reasons and signals; names outside the
    catalogue (the score, the household size) are not counted from a register's rows and are
    skipped. `families` holds the parent-child links (parent, child) the features were computed with.
    """
    by_name = {feature.name: feature for feature in catalogue}
    persons_of: dict[str, list[str]] = {}
    for person, names in wanted.items():
        for name in dict.fromkeys(names):
            if name in by_name:
                persons_of.setdefault(name, []).append(person)
    parts = [
        _rows_behind(by_name[name], sources, families, persons, as_of)
        for name, persons in sorted(persons_of.items())
    ]
    if not parts:
        return pl.DataFrame(schema=EVIDENCE_SCHEMA)
    return (
        pl.concat(pl.collect_all(parts))
        .sort(["person", "feature", "event_date", "known_date"], descending=[False, False, True, True])
    )


def check_supported(feature: Feature) -> None:
    """Raise EvidenceError when this module does not know how the feature chooses its rows."""
    if feature.agg not in AGGS:
        raise EvidenceError(
            f"feature {feature.name!r}: evidence does not know the aggregate {feature.agg!r} (it knows {', '.join(AGGS)}); "
            "say in features/evidence.py which source rows such a feature counts"
        )
    if feature.of not in OWNERS:
        raise EvidenceError(
            f"feature {feature.name!r}: evidence does not know whose rows of={feature.of!r} reads (it knows "
            f"{', '.join(OWNERS)}); say in features/evidence.py which source rows such a feature counts"
        )
    for field in dataclasses.fields(feature):
        if field.name in _FIELDS_READ | _FIELDS_IGNORED:
            continue
        default = field.default_factory() if field.default_factory is not dataclasses.MISSING else field.default
        if getattr(feature, field.name) != default:
            raise EvidenceError(
                f"feature {feature.name!r} sets {field.name}={getattr(feature, field.name)!r}, which evidence does "
                "not read yet; say in features/evidence.py how it changes the source rows the feature counts"
            )


def _rows_behind(
    feature: Feature, sources: Mapping[str, pl.DataFrame | pl.LazyFrame], families: pl.DataFrame,
    persons: list[str], as_of: date,
) -> pl.LazyFrame:
    check_supported(feature)
    if feature.source not in sources:
        raise EvidenceError(f"feature {feature.name!r} reads source {feature.source!r}, which is not among the sources given")
    window = in_window(as_of, feature.window_days)
    if feature.agg == "change_in_mean":  # the trend compares the window with the one before it
        window = window | in_window(as_of, feature.window_days, windows_back=1)
    rows = known_and_happened(sources[feature.source].lazy(), as_of).filter(window & matching(feature.where))
    if feature.agg in ("mean", "change_in_mean"):
        rows = rows.filter(pl.col(feature.column).is_not_null())  # a missing value is not in the mean
    flagged = pl.LazyFrame({"person": persons}, schema={"person": pl.String})
    if feature.of == "parents":
        owners = flagged.join(families.lazy().select(person="child", owner="parent"), on="person")
    elif feature.of == "siblings":
        owners = flagged.join(sibling_pairs(families.lazy()).select(person="child", owner="sibling"), on="person")
    else:
        owners = flagged.with_columns(owner=pl.col("person"))
    rows = owners.join(rows.select("person_id", "event_date", "known_date"), left_on="owner", right_on="person_id")
    if feature.agg == "days_since_last":
        # The value is set by the latest row alone (each parent's latest, for a parent feature).
        rows = rows.filter(pl.col("event_date") == pl.col("event_date").max().over("person", "owner"))
    return rows.select(
        "person", feature=pl.lit(feature.name), source=pl.lit(feature.source),
        event_date=pl.col("event_date").cast(pl.Date), known_date=pl.col("known_date").cast(pl.Date),
    )
