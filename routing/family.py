"""Family dedup: flagged parents and children linked to each other become one family flag."""

from __future__ import annotations

import polars as pl

from routing.table import RoutingError
from rules.families import connected

_GROUPS = pl.DataFrame(schema={"person": pl.String, "family": pl.String, "member": pl.Int64})


def family_groups(flagged: pl.DataFrame, families: pl.DataFrame | None) -> pl.DataFrame:
    """Flagged persons who share a family with another flagged person: person, family, member (1 = lead).

    Two flagged persons are in one family when a chain of parent-child links joins them through
    flagged persons only; an unflagged relative does not join two flags. The lead, by whom the
    family flag is routed, is the youngest child, since child welfare leads for the whole family.
    """
    if families is None or families.is_empty() or flagged.is_empty():
        return _GROUPS.clear()
    missing = sorted({"parent", "child"} - set(families.columns))
    if missing:
        raise RoutingError(f"families lack column(s) {missing}; expected parent-child pairs (parent, child)")
    ids = flagged.select("person")
    pairs = (
        families.select(a=pl.col("parent").cast(pl.String), b=pl.col("child").cast(pl.String))
        .join(ids, left_on="a", right_on="person", how="semi")
        .join(ids, left_on="b", right_on="person", how="semi")
        .filter(pl.col("a") != pl.col("b"))
    )
    if pairs.is_empty():
        return _GROUPS.clear()
    labels = connected(pairs)
    ages = flagged.select("person", "target", "age_years")
    return (
        labels.join(ages, on="person")
        .sort(
            [pl.col("target") != "child", "age_years", "person"],
            nulls_last=True,  # a member of unknown age does not lead a family of known ages
        )
        .with_columns(member=pl.int_range(1, pl.len() + 1, dtype=pl.Int64).over("family"))
        .select("person", "family", "member")
    )
