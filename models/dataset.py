"""The labelled data a model learns from: the cohort on each as-of date, its features, its outcome."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import polars as pl

from features.catalogue import FEATURE_NAMES
from features.table import feature_table
from models.labels import CHILDREN, Definition, cohort, escalation

# The child model's inputs: the child's own and its family's signals. Adults' own registers say
# nothing of a child; sex, origin and district are never inputs (they are what fairness audits).
MODEL_FEATURES: tuple[str, ...] = (
    "age_years",
    "notifications_365d", "notifications_90d", "days_since_last_notification", "siblings_notifications_365d",
    "school_absence_pct_90d", "school_absence_pct_change_90d", "missed_health_visitor_visits_365d", "missed_dental_visits_365d",
    "police_contacts_365d",
    "parent_substance_treatment_365d", "parent_days_since_alcohol_treatment", "parent_days_since_drug_treatment",
    "parent_psychiatric_contacts_365d", "parent_police_contacts_365d", "parent_eviction_notices_365d", "parent_homelessness_365d",
    "parent_benefit_weeks_365d", "parent_longest_benefit_spell_weeks_365d",
)
assert set(MODEL_FEATURES) - {"age_years"} <= set(FEATURE_NAMES), "every model input is a catalogue feature"
AGE_BANDS: tuple[tuple[int, int, str], ...] = ((0, 5, "0-5"), (6, 11, "6-11"), (12, 17, "12-17"), (18, 200, "18+"))


def matrix(frame: pl.DataFrame) -> np.ndarray:
    """The model's input matrix, columns in MODEL_FEATURES order, nulls as NaN."""
    return frame.select(pl.col(c).cast(pl.Float64) for c in MODEL_FEATURES).to_numpy()


def age_band() -> pl.Expr:
    """The age band of age_years, for fairness audits."""
    expr = None
    for low, high, name in AGE_BANDS:
        within = pl.col("age_years").is_between(low, high)
        expr = pl.when(within).then(pl.lit(name)) if expr is None else expr.when(within).then(pl.lit(name))
    return expr.otherwise(None).alias("age_band")


@dataclass(frozen=True)
class Dataset:
    """The scored cohort with features per as-of date, and the register whose rows label it."""

    frames: dict[date, pl.DataFrame]
    outcomes: pl.DataFrame
    horizon_days: int
    definition: Definition = CHILDREN

    @property
    def dates(self) -> list[date]:
        return sorted(self.frames)

    def labelled(self, as_of: date, *, known_by: date | None = None) -> pl.DataFrame:
        """The cohort on as_of with its label; with known_by, only outcomes known by then count."""
        frame = self.frames[as_of]
        label = escalation(frame, self.outcomes, as_of, self.horizon_days, known_by=known_by)
        return frame.with_columns(label, as_of=pl.lit(as_of))

    def labelled_all(self, dates: list[date] | None = None, *, known_by: date | None = None) -> pl.DataFrame:
        """Several as-of dates stacked, each labelled as known by known_by."""
        return pl.concat([self.labelled(d, known_by=known_by) for d in (dates or self.dates)], how="vertical_relaxed")


def last_known(sources: dict[str, pl.DataFrame]) -> date | None:
    """The latest date any register knew of something: the extracts' date, up to which outcomes are known."""
    return max((f["known_date"].max() for f in sources.values() if "known_date" in f.columns and f.height), default=None)


def require_known_outcomes(sources: dict[str, pl.DataFrame], as_of_dates: list[date], horizon_days: int) -> None:
    """Refuse as-of dates whose horizon of outcomes is not over by the extracts' date."""
    known = last_known(sources)
    unripe = [d for d in sorted(as_of_dates) if known is not None and d + timedelta(days=horizon_days) > known]
    if unripe:
        raise ValueError(
            f"as-of date(s) {[str(d) for d in unripe]} need {horizon_days} days of outcomes after them, but the "
            f"registers are known only up to {known}; use dates up to {known - timedelta(days=horizon_days)}"
        )


def cohort_scores(table: pl.DataFrame, support_measures: pl.DataFrame, model, model_version: str, as_of: date) -> pl.DataFrame:
    """The scored cohort's person, score (1-20), probability and model version, as the nightly run scores it."""
    scored = cohort(table, support_measures, as_of)
    X = matrix(scored)
    return scored.select("person").with_columns(
        score=pl.Series(model.score_levels(X), dtype=pl.Int64),
        probability=pl.Series(model.predict_proba(X)[:, 1], dtype=pl.Float64),
        model_version=pl.lit(model_version),
    )


def build(sources: dict[str, pl.DataFrame], as_of_dates: list[date], horizon_days: int) -> Dataset:
    """Features and cohort for every as-of date; refuses dates whose outcomes are not yet all known."""
    outcomes = sources["support_measures"]
    require_known_outcomes(sources, as_of_dates, horizon_days)
    frames = {}
    for d in sorted(set(as_of_dates)):
        table, _ = feature_table(sources, d)
        frames[d] = cohort(table, outcomes, d).with_columns(age_band())
    return Dataset(frames=frames, outcomes=outcomes, horizon_days=horizon_days)


def labelled_cohort(sources: dict[str, pl.DataFrame], as_of: date, horizon_days: int) -> pl.DataFrame:
    """The scored cohort on as_of with features and its escalation label."""
    table, _ = feature_table(sources, as_of)
    scored = cohort(table, sources["support_measures"], as_of)
    return scored.with_columns(escalation(scored, sources["support_measures"], as_of, horizon_days), as_of=pl.lit(as_of))


def data_hash(frame: pl.DataFrame) -> str:
    """SHA-256 of exactly what the model was trained on: as-of, pseudonym, features and label."""
    snapshot = frame.select("as_of", "person", *MODEL_FEATURES, "label").sort("as_of", "person").write_csv()
    return hashlib.sha256(snapshot.encode()).hexdigest()
