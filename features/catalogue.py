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
    # How a score's explanation says this signal in plain words: "da"/"en" with {value}, and
    # "da_missing"/"en_missing" for a person without a value.
    texts: dict[str, str] = field(default_factory=dict)


CATALOGUE: tuple[Feature, ...] = (
    Feature(
        name="notifications_365d",
        why="Repeated notifications from professionals are the clearest early sign that a child's situation is worsening.",
        source="notifications", agg="count", window_days=365,
        texts={"da": "{value} underretninger det seneste år", "en": "{value} notifications in the past year"},
    ),
    Feature(
        name="days_since_last_notification",
        why="A recent notification weighs more than an old one.",
        source="notifications", agg="days_since_last", window_days=None,
        texts={"da": "den seneste underretning kom for {value} dage siden", "en": "the latest notification came {value} days ago", "da_missing": "ingen underretninger registreret", "en_missing": "no notifications on record"},
    ),
    Feature(
        name="school_absence_pct_90d",
        why="Absence of 15% or more in a quarter is the legal threshold the school and municipality must act on.",
        source="school_absence", agg="mean", column="absence_pct", window_days=90,
        texts={"da": "{value} % fravær fra skolen de seneste 90 dage", "en": "{value}% absence from school in the past 90 days", "da_missing": "intet skolefravær registreret de seneste 90 dage", "en_missing": "no school absence on record in the past 90 days"},
    ),
    Feature(
        name="parent_substance_treatment_365d",
        why="Almost half of all placements are linked to a parent's substance abuse; a treatment start shows it.",
        source="substance_treatment", agg="count", window_days=365, of="parents", over_parents="parents_with_any",
        texts={"da": "{value} forælder/forældre er startet i alkohol- eller stofbehandling det seneste år", "en": "{value} parent(s) started alcohol or drug treatment in the past year"},
    ),
    Feature(
        name="parent_benefit_weeks_365d",
        why="Long spells on cash or sickness benefit strain a family's economy and daily life.",
        source="benefits", agg="count", window_days=365, where={"benefit": ("cash_benefit", "sickness")},
        of="parents", over_parents="max",
        texts={"da": "en forælder har modtaget kontanthjælp eller sygedagpenge i {value} uger det seneste år", "en": "a parent received cash or sickness benefit for {value} weeks in the past year"},
    ),
    Feature(
        name="substance_treatment_365d",
        why="An adult who started alcohol or drug treatment may need coordinated help, especially with children at home.",
        source="substance_treatment", agg="count", window_days=365,
        texts={"da": "{value} starter i alkohol- eller stofbehandling det seneste år", "en": "{value} alcohol or drug treatment starts in the past year"},
    ),
    Feature(
        name="benefit_weeks_365d",
        why="Long benefit spells are where early employment and social help pays off most.",
        source="benefits", agg="count", window_days=365,
        texts={"da": "{value} uger på offentlig forsørgelse det seneste år", "en": "{value} weeks on public benefits in the past year"},
    ),
)

FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in CATALOGUE)
