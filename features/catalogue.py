"""The feature catalogue: one declaration per feature; the name says the output."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True)
class Feature:
    """A per-person aggregate of one source's rows in a window that ends on the as-of date."""

    name: str
    why: str
    source: str
    agg: Literal["count", "mean", "days_since_last"]
    window_days: int | None  # None: all history known on the as-of date
    column: str | None = None  # the column averaged by "mean"
    where: dict[str, tuple[str, ...]] = field(default_factory=dict)  # keep rows whose column is in the set
    of: Literal["self", "parents"] = "self"
    # For features of the parents: "parents_with_any" counts parents with a non-zero value,
    # "max" takes the worst parent.
    over_parents: Literal["parents_with_any", "max"] | None = None


CATALOGUE: tuple[Feature, ...] = (
    Feature(
        name="notifications_365d",
        why="Repeated notifications from professionals are the clearest early sign that a child's situation is worsening.",
        source="notifications", agg="count", window_days=365,
    ),
    Feature(
        name="days_since_last_notification",
        why="A recent notification weighs more than an old one.",
        source="notifications", agg="days_since_last", window_days=None,
    ),
    Feature(
        name="school_absence_pct_90d",
        why="Absence of 15% or more in a quarter is the legal threshold the school and municipality must act on.",
        source="school_absence", agg="mean", column="absence_pct", window_days=90,
    ),
    Feature(
        name="parent_substance_treatment_365d",
        why="Almost half of all placements are linked to a parent's substance abuse; a treatment start shows it.",
        source="substance_treatment", agg="count", window_days=365, of="parents", over_parents="parents_with_any",
    ),
    Feature(
        name="parent_benefit_weeks_365d",
        why="Long spells on cash or sickness benefit strain a family's economy and daily life.",
        source="benefits", agg="count", window_days=365, where={"benefit": ("cash_benefit", "sickness")},
        of="parents", over_parents="max",
    ),
    Feature(
        name="substance_treatment_365d",
        why="An adult who started alcohol or drug treatment may need coordinated help, especially with children at home.",
        source="substance_treatment", agg="count", window_days=365,
    ),
    Feature(
        name="benefit_weeks_365d",
        why="Long benefit spells are where early employment and social help pays off most.",
        source="benefits", agg="count", window_days=365,
    ),
)

FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in CATALOGUE)
