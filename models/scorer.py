"""The risk scorer: a calibrated probability of escalation and a 1-20 score a caseworker can read."""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.validation import check_is_fitted

SCORE_LEVELS = 20


class RiskScorer(ClassifierMixin, BaseEstimator):
    """Logistic regression on the catalogue features, with scores as ventiles of the training risk.

    Parameters
    ----------
    C : float
        Inverse regularisation strength of the logistic regression.
    """

    def __init__(self, *, C: float = 1.0):
        self.C = C

    def fit(self, X, y):
        """Fit on feature matrix X (missing values allowed) and 0/1 escalation labels y."""
        y = np.asarray(y)
        if set(np.unique(y)) - {0, 1}:
            raise ValueError(f"labels must be 0 or 1, got {sorted(set(np.unique(y)))}")
        if len(np.unique(y)) < 2:
            raise ValueError("training labels are all one class: pick as-of dates with escalations after them")
        self.pipeline_ = make_pipeline(
            SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True),
            StandardScaler(),
            LogisticRegression(C=self.C, max_iter=2000),
        ).fit(X, y)
        self.classes_ = self.pipeline_.classes_
        self.n_features_in_ = self.pipeline_.n_features_in_
        training_risk = self.pipeline_.predict_proba(X)[:, 1]
        self.ventile_edges_ = np.quantile(training_risk, np.linspace(0, 1, SCORE_LEVELS + 1)[1:-1])
        return self

    def predict_proba(self, X) -> np.ndarray:
        check_is_fitted(self)
        return self.pipeline_.predict_proba(X)

    def predict(self, X) -> np.ndarray:
        return self.classes_[(self.predict_proba(X)[:, 1] >= 0.5).astype(int)]

    def score_levels(self, X) -> np.ndarray:
        """1-20: which twentieth of the training population's risk each person falls in."""
        risk = self.predict_proba(X)[:, 1]
        return np.searchsorted(self.ventile_edges_, risk, side="right") + 1
