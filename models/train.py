"""Train the scorer: temporal cross-validation over a grid, selection by mean average precision, a fairness audit."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date

import polars as pl
from sklearn.base import clone
from threadpoolctl import threadpool_limits

from models import fairness
from models.baseline import PointsRule
from models.dataset import MODEL_FEATURES, build, data_hash, labelled_cohort, matrix
from models.evaluate import ORACLE, CrossValidation, TeamOf, cross_validate, select, temporal_folds
from models.labels import Definition
from models.scorer import RiskScorer, gradient_boosting

FLAG_LEVEL = 19  # the score rule flags the top two ventiles: the fairness audit looks at the same cut
# Audited, never model inputs: origin_group (Statistics Denmark's herkomst) is in the data for this audit only.
FAIRNESS_GROUPS = ("sex", "age_band", "district", "origin_group")
SELECT_BY = "average_precision"

__all__ = ["MODEL_FEATURES", "TrainingResult", "default_grid", "labelled_cohort", "matrix", "train"]


def default_grid() -> dict[str, RiskScorer]:
    """The candidates, simplest first: the points rule, logistic regressions, gradient boosting."""
    return {
        "points": RiskScorer(estimator=PointsRule(feature_names=MODEL_FEATURES)),
        "logistic_C0.1": RiskScorer(C=0.1),
        "logistic_C1": RiskScorer(C=1.0),
        "hist_gradient_boosting": RiskScorer(estimator=gradient_boosting()),
    }


@dataclass(frozen=True)
class TrainingResult:
    """A fitted scorer with how it was chosen, how it did out of time, and its fairness audit."""

    model: RiskScorer
    candidate: str
    training_as_of: tuple[date, ...]
    horizon_days: int
    definition: Definition
    cv: CrossValidation
    fairness: pl.DataFrame
    gate: fairness.GateResult
    data_hash: str
    rows: int
    positives: int
    fairness_groups: tuple[str, ...]
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def holdout_as_of(self) -> date:
        """The latest test date of the temporal cross-validation."""
        return self.cv.folds[-1].test_as_of


def train(
    sources: dict[str, pl.DataFrame],
    as_of_dates: list[date],
    horizon_days: int,
    *,
    candidates: Mapping[str, RiskScorer] | None = None,
    team_of: TeamOf | None = None,
    capacity: Mapping[str, int] | None = None,
    oracle: pl.DataFrame | None = None,
    n_boot: int = 200,
    min_train_dates: int = 1,
) -> TrainingResult:
    """Cross-validate every candidate over time, pick the best by mean AP, refit it on all dates, audit it."""
    # One OpenMP thread: on a small shared machine gradient boosting otherwise oversubscribes the
    # cores and a fit that takes a second takes a minute.
    with threadpool_limits(limits=1, user_api="openmp"):
        return _train(sources, as_of_dates, horizon_days, candidates=candidates, team_of=team_of,
                      capacity=capacity, oracle=oracle, n_boot=n_boot, min_train_dates=min_train_dates)


def _train(sources, as_of_dates, horizon_days, *, candidates, team_of, capacity, oracle, n_boot, min_train_dates) -> TrainingResult:
    candidates = dict(candidates or default_grid())
    dataset = build(sources, as_of_dates, horizon_days)
    folds = temporal_folds(dataset.dates, horizon_days, min_train_dates=min_train_dates)
    cv = cross_validate(dataset, candidates, folds=folds, team_of=team_of, capacity=capacity, oracle=oracle, n_boot=n_boot,
                        group_cols=FAIRNESS_GROUPS)
    chosen = select(cv, list(candidates), by=SELECT_BY)
    everything = dataset.labelled_all()
    model = clone(candidates[chosen]).fit(matrix(everything), everything["label"].to_numpy())

    out_of_time = cv.predictions.filter(pl.col("candidate") == chosen)
    groups = tuple(c for c in FAIRNESS_GROUPS if c in out_of_time.columns)
    audited = fairness.audit(out_of_time, score_col="score", label_col="label", group_cols=groups,
                             reference_groups=fairness.LARGEST, threshold=FLAG_LEVEL)
    summary = {f"{m}_mean": cv.mean(chosen, m) for m in ("roc_auc", "average_precision", "brier", "calibration_error",
                                                          "precision_at_capacity", "recall_at_capacity")}
    if ORACLE in set(cv.metrics["candidate"]):
        summary |= {f"oracle_{m}_mean": cv.mean(ORACLE, m) for m in ("roc_auc", "average_precision", "precision_at_capacity")}
    return TrainingResult(
        model=model,
        candidate=chosen,
        training_as_of=tuple(dataset.dates),
        horizon_days=horizon_days,
        definition=dataset.definition,
        cv=cv,
        fairness=audited,
        gate=fairness.gate(audited),
        data_hash=data_hash(everything),
        rows=everything.height,
        positives=int(everything["label"].sum()),
        fairness_groups=groups,
        metrics=summary,
    )
