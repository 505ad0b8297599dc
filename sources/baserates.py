"""Danish base rates the synthetic municipality must come near, and how they are measured on it.

Targets are national figures (DOMAIN.md) turned into rates: per resident or per child (0-17) and
year, or a share at the extract date. Yearly rates are averaged over the last three years of
history so that a mid-size municipality gives stable numbers; stocks are counted on the end date.
Tolerances are relative (rel) or absolute (abs) and wide where the national figure itself is soft.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import polars as pl

DENMARK = 5_880_000
CHILDREN = 1_156_000
YEARS = 3


@dataclass(frozen=True)
class Target:
    value: float
    tolerance: float
    relative: bool
    source: str

    def accepts(self, measured: float) -> bool:
        slack = self.tolerance * self.value if self.relative else self.tolerance
        return abs(measured - self.value) <= slack

    def describe(self) -> str:
        return f"{self.value:.4g} ± {self.tolerance:.0%}" if self.relative else f"{self.value:.4g} ± {self.tolerance:.3g}"


TARGETS: dict[str, Target] = {
    "child_share": Target(CHILDREN / DENMARK, 0.03, False, "1.156M of 5.88M are 0-17"),
    "notifications_per_child_year": Target(152_700 / CHILDREN, 0.30, True, "152,700 notifications a year"),
    "notified_children_share_year": Target(85_300 / CHILDREN, 0.30, True, "on 85,300 children a year"),
    "new_placements_per_child_year": Target(3_400 / CHILDREN, 0.40, True, "about 3,400 new placements a year"),
    "placed_share": Target(0.009, 0.40, True, "0.9% of 0-22-year-olds placed at any time"),
    "support_measure_share": Target(0.035, 0.35, True, "3.5% with a preventive support measure"),
    "pupils_over_10pct_absence": Target(0.216, 0.05, False, "21.6% of pupils above 10% absence"),
    "mean_absence": Target(0.07, 0.015, False, "mean absence about 7%"),
    "children_with_alcohol_parent": Target(0.09, 0.02, False, "about 9% of children"),
    "alcohol_treatment_per_capita_year": Target(24_800 / DENMARK, 0.35, True, "24,800 in alcohol treatment"),
    "drug_treatment_per_capita_year": Target(20_400 / DENMARK, 0.35, True, "20,400 in drug treatment"),
    "evictions_per_capita_year": Target(2_000 / DENMARK, 0.50, True, "about 2,000 evictions a year"),
    "homeless_share": Target(6_000 / DENMARK, 0.50, True, "about 6,000 homeless"),
    "placements_with_parental_abuse": Target(0.5, 0.12, False, "about half of placements"),
    # Statistics Denmark's origin groups (herkomst): the rest are persons of Danish origin.
    "western_origin_share": Target(0.06, 0.015, False, "about 6% immigrants and descendants from Western countries"),
    "non_western_origin_share": Target(0.09, 0.02, False, "about 9% from non-Western countries"),
}


def _age(birth: pl.Expr, on: date) -> pl.Expr:
    return (pl.lit(on) - birth).dt.total_days() / 365.25


def measure(extracts: dict[str, pl.DataFrame], truth: pl.DataFrame, end: date) -> dict[str, float]:
    """Every TARGETS rate, measured on generated extracts (without mess) and the ground truth."""
    since = end - timedelta(days=365 * YEARS)
    last_year = end - timedelta(days=365)
    population = extracts["population"].join(truth.select("person_id", "resident_at_end", "family_alcohol", "family_abuse"), on="person_id")
    residents = population.filter(pl.col("resident_at_end"))
    children = residents.filter(_age(pl.col("birth_date"), end) < 18)
    n, kids = residents.height, children.height

    def in_window(frame: pl.DataFrame, start: date = since) -> pl.DataFrame:
        return frame.filter(pl.col("event_date") > start, pl.col("event_date") <= end)

    def open_on(frame: pl.DataFrame) -> pl.DataFrame:
        return frame.filter(pl.col("event_date") <= end, pl.col("end_date").is_null() | (pl.col("end_date") > end))

    def overlapping(frame: pl.DataFrame, start: date) -> pl.DataFrame:
        return frame.filter(pl.col("event_date") <= end, pl.col("end_date").is_null() | (pl.col("end_date") > start))

    notes = in_window(extracts["notifications"])
    measures = extracts["support_measures"]
    placements = measures.filter(pl.col("measure") == "placement")
    kid_ids = children.select("person_id")
    absence = in_window(extracts["school_absence"], last_year)
    per_pupil = absence.group_by("person_id").agg(pl.col("absence_pct").mean() / 100, pl.len()).filter(pl.col("len") >= 20)
    treatment = overlapping(extracts["substance_treatment"], last_year)
    with_cause = placements.join(truth.select("person_id", "family_abuse"), on="person_id")
    return {
        "child_share": kids / n,
        "notifications_per_child_year": notes.height / YEARS / kids,
        "notified_children_share_year": in_window(notes, last_year)["person_id"].n_unique() / kids,
        "new_placements_per_child_year": in_window(placements).height / YEARS / kids,
        "placed_share": open_on(placements).join(kid_ids, on="person_id")["person_id"].n_unique() / kids,
        "support_measure_share": open_on(measures.filter(pl.col("measure") != "placement")).join(kid_ids, on="person_id")["person_id"].n_unique() / kids,
        "pupils_over_10pct_absence": (per_pupil["absence_pct"] > 0.10).mean(),
        "mean_absence": absence["absence_pct"].mean() / 100,
        "children_with_alcohol_parent": children["family_alcohol"].mean(),
        "alcohol_treatment_per_capita_year": treatment.filter(pl.col("substance") == "alcohol")["person_id"].n_unique() / n,
        "drug_treatment_per_capita_year": treatment.filter(pl.col("substance") == "drugs")["person_id"].n_unique() / n,
        "evictions_per_capita_year": in_window(extracts["evictions"].filter(pl.col("stage") == "executed")).height / YEARS / n,
        "homeless_share": open_on(extracts["homelessness"])["person_id"].n_unique() / n,
        "placements_with_parental_abuse": with_cause["family_abuse"].mean(),
        "western_origin_share": (residents["origin_group"] == "western").mean(),
        "non_western_origin_share": (residents["origin_group"] == "non_western").mean(),
    }


def report(measured: dict[str, float]) -> str:
    """One line per rate: measured, target with tolerance, ok or OFF."""
    lines = []
    for name, target in TARGETS.items():
        value = measured[name]
        lines.append(f"{name:36s} {value:10.5f}   target {target.describe():18s} {'ok' if target.accepts(value) else 'OFF'}")
    return "\n".join(lines)
