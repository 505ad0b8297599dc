"""Train the scorer on earlier as-of dates, holding out the latest for an honest evaluation."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date

import numpy as np
import polars as pl
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

from features.catalogue import FEATURE_NAMES
from features.table import feature_table
from models.labels import cohort, escalation
from models.scorer import RiskScorer

MODEL_FEATURES: tuple[str, ...] = ("age_years", *FEATURE_NAMES)
TOP_SHARE = 0.05  # evaluated at the top 5% of the cohort, roughly what teams can see each week


@dataclass(frozen=True)
class TrainingResult:
    """A fitted scorer with how it was made and how it did on the held-out as-of date."""

    model: RiskScorer
    training_as_of: tuple[date, ...]
    holdout_as_of: date
    metrics: dict[str, float]
    data_hash: str
    rows: int
    positives: int


def labelled_cohort(sources: dict[str, pl.DataFrame], as_of: date, horizon_days: int) -> pl.DataFrame:
    """The scored cohort on as_of with features and its escalation label."""
    table, _ = feature_table(sources, as_of)
    scored = cohort(table, sources["support_measures"], as_of)
    return scored.with_columns(escalation(scored, sources["support_measures"], as_of, horizon_days), as_of=pl.lit(as_of))


def matrix(frame: pl.DataFrame) -> np.ndarray:
    """The model's input matrix, columns in MODEL_FEATURES order, nulls as NaN."""
    return frame.select(pl.col(c).cast(pl.Float64) for c in MODEL_FEATURES).to_numpy()


def evaluate(model: RiskScorer, frame: pl.DataFrame) -> dict[str, float]:
    """Ranking and calibration metrics on one labelled as-of date."""
    y = frame["label"].to_numpy()
    risk = model.predict_proba(matrix(frame))[:, 1]
    k = max(1, int(round(TOP_SHARE * len(y))))
    top = np.argsort(-risk)[:k]
    metrics = {
        "rows": float(len(y)),
        "positives": float(y.sum()),
        "brier": float(brier_score_loss(y, risk)),
        "precision_at_top_5pct": float(y[top].mean()),
        "recall_at_top_5pct": float(y[top].sum() / max(1, y.sum())),
    }
    if 0 < y.sum() < len(y):
        metrics["roc_auc"] = float(roc_auc_score(y, risk))
        metrics["average_precision"] = float(average_precision_score(y, risk))
    return metrics


def train(sources: dict[str, pl.DataFrame], as_of_dates: list[date], horizon_days: int) -> TrainingResult:
    """Fit on all but the last as-of date, evaluate on the last, then refit on all of them."""
    dates = sorted(as_of_dates)
    frames = [labelled_cohort(sources, d, horizon_days) for d in dates]
    train_frame, holdout = pl.concat(frames[:-1]), frames[-1]
    model = RiskScorer().fit(matrix(train_frame), train_frame["label"].to_numpy())
    metrics = evaluate(model, holdout)
    everything = pl.concat(frames)
    final = RiskScorer().fit(matrix(everything), everything["label"].to_numpy())
    digest = hashlib.sha256(everything.select("as_of", "person", *MODEL_FEATURES, "label").sort("as_of", "person").write_csv().encode()).hexdigest()
    return TrainingResult(
        model=final,
        training_as_of=tuple(dates),
        holdout_as_of=dates[-1],
        metrics=metrics,
        data_hash=digest,
        rows=everything.height,
        positives=int(everything["label"].sum()),
    )
