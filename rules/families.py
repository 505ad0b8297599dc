"""Families as family rules see them: one row per family, with values derived from its members' rows.

A family is a set of parents and their children under 18 linked by the population register's
parent-child relations, as known on the as-of date: a chain of such links (two parents of one
child, a parent with children by two partners) makes one family. Adult children are left out, so
a grandparent's household is not merged with their grown-up child's.

The values below are everything a family rule may read; each is declared once, its name says the
output, and an unknown stays unknown: a count over members of whom nothing is known is null, not 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import polars as pl


@dataclass(frozen=True)
class FamilyValue:
    """One value of a family, aggregated over its children or its parents (adults) from a person column."""

    name: str
    why: str
    of: Literal["children", "parents"]
    agg: Literal["count", "count_at_least", "sum", "max"]
    column: str | None = None  # the person column read; None for "count", which counts the members
    at_least: float | None = None  # for "count_at_least": the members whose value is at least this
    # A short name for the value where pages list it, "da" and "en".
    label: dict[str, str] | None = None

    def expr(self) -> pl.Expr:
        """The aggregation over one family's member rows (in a group_by on the family)."""
        members = pl.col("target") == ("child" if self.of == "children" else "adult")
        if self.agg == "count":
            return members.sum().cast(pl.Int64).alias(self.name)
        values = pl.col(self.column).filter(members)
        if self.agg == "count_at_least":
            result = (values >= self.at_least).sum().cast(pl.Int64)
        else:
            result = values.sum() if self.agg == "sum" else values.max()
        return pl.when(values.is_not_null().any()).then(result).otherwise(None).alias(self.name)


FAMILY_VALUES: tuple[FamilyValue, ...] = (
    FamilyValue(
        "children", "How many children the family has: the more children, the more is at stake.", "children", "count",
        label={"da": "Børn i familien", "en": "Children in the family"},
    ),
    FamilyValue(
        "children_with_notification_365d",
        "Notifications on more than one child in a year point to the home rather than to one child.",
        "children", "count_at_least", "notifications_365d", 1,
        label={"da": "Børn med en underretning det seneste år", "en": "Children with a notification in the past year"},
    ),
    FamilyValue(
        "notifications_365d_all_children", "All notifications on the family's children in the last year, together.",
        "children", "sum", "notifications_365d",
        label={"da": "Underretninger om familiens børn det seneste år", "en": "Notifications about the family's children in the past year"},
    ),
    FamilyValue(
        "children_absent_15pct_90d",
        "School absence of 15% in a quarter is the legal threshold; in several children it points to the home.",
        "children", "count_at_least", "school_absence_pct_90d", 15,
        label={"da": "Børn med mindst 15 % skolefravær de seneste 90 dage", "en": "Children with at least 15% school absence in the past 90 days"},
    ),
    FamilyValue(
        "max_child_score", "The risk score of the family's most worrying child (scored children only).",
        "children", "max", "score",
        label={"da": "Højeste risikoscore blandt børnene (1-20)", "en": "Highest risk score among the children (1-20)"},
    ),
    FamilyValue(
        "parents_in_substance_treatment_365d",
        "Almost half of all placements are linked to a parent's substance abuse; a treatment start shows it.",
        "parents", "count_at_least", "substance_treatment_365d", 1,
        label={"da": "Forældre startet i misbrugsbehandling det seneste år", "en": "Parents who started substance treatment in the past year"},
    ),
    FamilyValue(
        "parents_on_benefit_26w_365d",
        "Half a year or more on public benefits strains a family's economy and daily life.",
        "parents", "count_at_least", "benefit_weeks_365d", 26,
        label={"da": "Forældre med mindst 26 uger på offentlig forsørgelse det seneste år", "en": "Parents with at least 26 weeks on public benefits in the past year"},
    ),
)

# What a family rule reads: one row per family ("family" is its id, never readable by a rule).
# Every value is a whole number: counts, a sum of counts, and the highest score.
FAMILY_SCHEMA: dict[str, pl.DataType] = {
    "family": pl.String(),
    "target": pl.String(),
    **{value.name: pl.Int64() for value in FAMILY_VALUES},
}
# The person columns the family values are built from.
MEMBER_COLUMNS: tuple[str, ...] = tuple(dict.fromkeys(v.column for v in FAMILY_VALUES if v.column))

_LABELS = pl.DataFrame(schema={"person": pl.String, "family": pl.String})


def connected(pairs: pl.DataFrame) -> pl.DataFrame:
    """Every person named in the pairs (columns a, b) with the smallest id linked to them by a chain of pairs: person, family."""
    if pairs.is_empty():
        return _LABELS.clear()
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    ids = pl.concat([pairs["a"], pairs["b"]]).unique().sort()
    index = pl.DataFrame({"person": ids}).with_row_index("i")
    coded = pairs.join(index, left_on="a", right_on="person").join(index, left_on="b", right_on="person", suffix="_b")
    edges = coo_matrix((np.ones(coded.height, dtype=np.int8), (coded["i"].to_numpy(), coded["i_b"].to_numpy())), shape=(ids.len(),) * 2)
    # One linear pass over the links, where joining them round by round took a round per generation.
    _, component = connected_components(edges, directed=False)
    labelled = index.with_columns(component=pl.Series(component))
    # ids are sorted, so the first person of a component has the smallest id.
    return labelled.with_columns(family=pl.col("person").first().over("component")).select("person", "family")


def family_members(persons: pl.DataFrame, links: pl.DataFrame) -> pl.DataFrame:
    """The family of every person in one: person, family; from links (parent, child) between known persons, child under 18."""
    known = persons.select("person", "target")
    pairs = (
        links.select(a=pl.col("parent").cast(pl.String), b=pl.col("child").cast(pl.String))
        .join(known.select(a="person"), on="a", how="semi")
        .join(known.filter(pl.col("target") == "child").select(b="person"), on="b", how="semi")
        .filter(pl.col("a") != pl.col("b"))
    )
    return connected(pairs)


def family_table(persons: pl.DataFrame, links: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """One row per family in FAMILY_SCHEMA, and who belongs to which family (person, family)."""
    members = family_members(persons, links)
    rows = (
        members.join(persons.select("person", "target", *MEMBER_COLUMNS), on="person")
        .group_by("family")
        .agg(*(value.expr() for value in FAMILY_VALUES))
        .with_columns(target=pl.lit("family"))
    )
    return rows.select(pl.col(c).cast(dtype) for c, dtype in FAMILY_SCHEMA.items()), members
