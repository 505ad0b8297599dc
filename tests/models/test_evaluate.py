"""Temporal cross-validation never learns from the future; the fast metrics agree with scikit-learn."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import polars as pl
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.metrics import average_precision_score, roc_auc_score

from models.dataset import MODEL_FEATURES, Dataset
from models.evaluate import ORACLE, at_capacity, average_precision, cross_validate, roc_auc, select, temporal_folds

DATES = [date(2022, 1, 1), date(2022, 7, 1), date(2023, 1, 1), date(2023, 7, 1), date(2024, 1, 1)]
SEEN: list[tuple[date, ...]] = []


class Spy(ClassifierMixin, BaseEstimator):
    """Records every training set it is fitted on; predicts the first feature as risk."""

    def fit(self, X, y):
        SEEN.append((X[:, 1].copy(), np.asarray(y).copy()))
        self.classes_ = np.array([0, 1])
        self.ventile_edges_ = np.linspace(0, 1, 21)[1:-1]
        return self

    def predict_proba(self, X):
        p = np.clip(np.nan_to_num(X[:, 1]) / 10, 0, 1)
        return np.column_stack([1 - p, p])


def _dataset() -> Dataset:
    """Every child is in every cohort; column notifications_365d holds the as-of date's ordinal rank.

    Child "late" escalates 100 days after the first as-of date, but the municipality learns of it
    only on 2023-06-01: after the 2023-01-01 test date, before the 2023-07-01 one.
    """
    persons = [f"p{i}" for i in range(40)] + ["late"]
    frames = {}
    for rank, d in enumerate(DATES):
        frame = pl.DataFrame({"person": persons, "sex": ["F", "M"] * 20 + ["F"], "district": "Nord", "age_years": 8})
        frames[d] = frame.with_columns(*(pl.lit(rank if c == "notifications_365d" else 0.0).alias(c)
                                         for c in MODEL_FEATURES if c != "age_years"))
    rows = [{"person_id": f"p{i}", "event_date": d + timedelta(days=30), "known_date": d + timedelta(days=31)}
            for k, d in enumerate(DATES) for i in range(k, 40, 7)]
    rows.append({"person_id": "late", "event_date": DATES[0] + timedelta(days=100), "known_date": date(2023, 6, 1)})
    return Dataset(frames=frames, outcomes=pl.DataFrame(rows), horizon_days=365)


def test_folds_train_only_on_dates_whose_horizon_ended_before_the_test_date():
    folds = temporal_folds(DATES, 365)
    assert [f.test_as_of for f in folds] == DATES[2:]
    for fold in folds:
        assert all(d + timedelta(days=365) <= fold.test_as_of for d in fold.train_as_of)
    assert folds[0].train_as_of == (DATES[0],)
    with pytest.raises(ValueError, match="add earlier as-of dates"):
        temporal_folds(DATES[:2], 365)


def test_cross_validation_never_trains_on_labels_known_after_the_test_date():
    SEEN.clear()
    data = _dataset()
    late = data.frames[DATES[0]]["person"].to_list().index("late")
    cv = cross_validate(data, {"spy": Spy()}, n_boot=0)
    assert [f.test_as_of for f in cv.folds] == DATES[2:]
    first, second = SEEN[0], SEEN[1]
    # Fold testing 2023-01-01: only the 2022-01-01 cohort (rank 0), and "late" is not yet an escalation.
    assert set(first[0]) == {0.0}
    assert first[1][late] == 0
    # Fold testing 2023-07-01: the escalation is known by then, so it may be learned from.
    assert set(second[0]) == {0.0, 1.0}
    assert second[1][late] == 1
    # No training set ever holds an as-of date at or after its test date.
    for (ranks, _), fold in zip(SEEN, cv.folds):
        assert max(ranks) < DATES.index(fold.test_as_of)


def test_fast_metrics_match_scikit_learn():
    rng = np.random.default_rng(3)
    y = (rng.random(500) < 0.1).astype(int)
    p = np.round(rng.random(500) * 0.5 + 0.3 * y, 2)  # rounded: many ties
    assert roc_auc(y, p) == pytest.approx(roc_auc_score(y, p))
    assert average_precision(y, p) == pytest.approx(average_precision_score(y, p))
    assert np.isnan(roc_auc(np.zeros(5, int), p[:5]))


def test_precision_and_recall_at_each_teams_capacity():
    y = np.array([1, 0, 1, 0, 1, 0])
    p = np.array([0.9, 0.8, 0.1, 0.7, 0.6, 0.5])
    teams = np.array(["a", "a", "a", "b", "b", "b"], dtype=object)
    out = at_capacity(y, p, teams, {"a": 1, "b": 2})
    assert out["precision_at_capacity/a"] == 1.0 and out["recall_at_capacity/a"] == 0.5
    assert out["precision_at_capacity/b"] == 0.5 and out["recall_at_capacity/b"] == 1.0
    assert out["precision_at_capacity"] == pytest.approx(2 / 3) and out["recall_at_capacity"] == pytest.approx(2 / 3)


def test_oracle_is_measured_beside_the_candidates_and_never_selected():
    data = _dataset()
    oracle = pl.DataFrame({"person_id": ["late", "p0"], "week": [date(2022, 12, 30)] * 2, "oracle_risk_12m": [0.9, 0.1]})
    cv = cross_validate(data, {"spy": Spy()}, oracle=oracle, n_boot=5)
    assert ORACLE in set(cv.metrics["candidate"])
    assert cv.metrics.filter(pl.col("metric") == "roc_auc")["low"].is_not_nan().any()
    assert select(cv, ["spy"]) == "spy"
