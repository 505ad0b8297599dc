"""A points rule like the Gladsaxe model: fixed points per signal, summed; the baseline every model must beat."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted, validate_data

# (feature, points, at least): a signal scores its points when the feature's value is at least
# the bound. Chosen by hand from the domain, never fitted: that is what makes it a baseline.
DEFAULT_POINTS: tuple[tuple[str, int, float], ...] = (
    ("notifications_365d", 2, 1),
    ("notifications_365d", 2, 3),
    ("school_absence_pct_90d", 2, 15),
    ("parent_substance_treatment_365d", 3, 1),
    ("parent_benefit_weeks_365d", 1, 26),
)


def _points(values: np.ndarray, bounds: np.ndarray, weights: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        hit = np.nan_to_num(values, nan=-np.inf) >= bounds
    return hit * weights


def points_total(X: np.ndarray, feature_names: Sequence[str], points: Sequence[tuple[str, int, float]] = DEFAULT_POINTS) -> np.ndarray:
    """The points total per row; the rule is fixed, so ranking by it needs no fitting (and no labels)."""
    names = list(feature_names)
    columns = [names.index(f) for f, _, _ in points]
    return _points(np.asarray(X, dtype=float)[:, columns], np.array([b for _, _, b in points], dtype=float),
                   np.array([w for _, w, _ in points], dtype=float)).sum(axis=1)


class PointsRule(ClassifierMixin, BaseEstimator):
    """Fixed points per signal; the risk of a total is the escalation rate seen at that total in training.

    Parameters
    ----------
    points : sequence of (feature, points, at_least)
        A feature scores `points` when its value is at least `at_least`; a missing value scores 0.
    feature_names : sequence of str
        The names of X's columns, in order; every feature in `points` must be one of them.
    """

    def __init__(self, *, points: Sequence[tuple[str, int, float]] = DEFAULT_POINTS, feature_names: Sequence[str] = ()):
        self.points = points
        self.feature_names = feature_names

    def fit(self, X, y):
        """Check the rule against the columns and tabulate the escalation rate per points total."""
        X, y = validate_data(self, X, y, ensure_all_finite="allow-nan")
        names = list(self.feature_names)
        if len(names) != X.shape[1]:
            raise ValueError(f"feature_names has {len(names)} names but X has {X.shape[1]} columns")
        unknown = sorted({f for f, _, _ in self.points} - set(names))
        if unknown:
            raise ValueError(f"points name unknown feature(s) {unknown}; features: {names}")
        self.classes_ = np.unique(y)
        if len(self.classes_) != 2:
            raise ValueError(f"need labels of two classes (0 and 1), got {self.classes_.tolist()}")
        self.columns_ = np.array([names.index(f) for f, _, _ in self.points], dtype=int)
        self.weights_ = np.array([p for _, p, _ in self.points], dtype=float)
        self.bounds_ = np.array([b for _, _, b in self.points], dtype=float)
        totals = self.decision_function(X).astype(int)
        positives = np.bincount(totals, weights=(y == self.classes_[1]).astype(float), minlength=int(self.weights_.sum()) + 1)
        counts = np.bincount(totals, minlength=len(positives))
        # Laplace-smoothed, then made non-decreasing: more points never means less risk.
        rate = (positives + 0.5) / (counts + 1.0)
        self.rate_by_total_ = np.maximum.accumulate(rate)
        return self

    def contributions(self, X) -> np.ndarray:
        """Points each signal gives each person, shape (n, len(points))."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, ensure_all_finite="allow-nan")
        return _points(X[:, self.columns_], self.bounds_, self.weights_)

    def decision_function(self, X) -> np.ndarray:
        """The points total per person."""
        return self.contributions(X).sum(axis=1)

    def predict_proba(self, X) -> np.ndarray:
        totals = self.decision_function(X).astype(int)
        risk = self.rate_by_total_[np.minimum(totals, len(self.rate_by_total_) - 1)]
        return np.column_stack([1 - risk, risk])

    def predict(self, X) -> np.ndarray:
        return self.classes_[(self.predict_proba(X)[:, 1] >= 0.5).astype(int)]
