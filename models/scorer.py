"""The risk scorer: a calibrated probability of escalation and a 1-20 score a caseworker can read."""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin, clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.validation import check_is_fitted

SCORE_LEVELS = 20
CALIBRATION_METHODS = ("sigmoid", "isotonic")


def logistic(*, C: float = 1.0) -> Pipeline:
    """Median imputation with missing-value indicators, standardisation, logistic regression."""
    return Pipeline([
        ("impute", SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True)),
        ("scale", StandardScaler()),
        ("model", LogisticRegression(C=C, max_iter=2000)),
    ])


class FillEmptyColumns(TransformerMixin, BaseEstimator):
    """Columns without a single value in training become 0: they carry no signal, and gradient
    boosting cannot bin them (a small municipality may have no parent in drug treatment at all)."""

    def fit(self, X, y=None):
        X = np.asarray(X, dtype=float)
        self.empty_ = np.isnan(X).all(axis=0)
        self.n_features_in_ = X.shape[1]
        return self

    def transform(self, X):
        check_is_fitted(self)
        X = np.array(X, dtype=float)
        X[:, self.empty_] = 0.0
        return X


def gradient_boosting(*, learning_rate: float = 0.05, max_iter: int = 150, max_leaf_nodes: int = 15) -> Pipeline:
    """Gradient-boosted trees; missing values are handled by the trees themselves."""
    return Pipeline([
        ("fill_empty", FillEmptyColumns()),
        ("model", HistGradientBoostingClassifier(
            learning_rate=learning_rate, max_iter=max_iter, max_leaf_nodes=max_leaf_nodes,
            min_samples_leaf=40, l2_regularization=1.0, early_stopping=False, random_state=0,
        )),
    ])


class RiskScorer(ClassifierMixin, BaseEstimator):
    """A calibrated classifier with scores as ventiles of the training risk.

    Parameters
    ----------
    estimator : classifier or None
        The model to calibrate; None means `logistic(C=C)`.
    C : float
        Inverse regularisation strength of the default logistic regression (ignored otherwise).
    calibration : {"sigmoid", "isotonic"}
        How probabilities are calibrated. Sigmoid keeps the ranking, so scores do not tie.
    cv : int
        Folds of the calibration; the estimator itself is refitted on all training rows.
    """

    def __init__(self, *, estimator=None, C: float = 1.0, calibration: str = "sigmoid", cv: int = 3):
        self.estimator = estimator
        self.C = C
        self.calibration = calibration
        self.cv = cv

    def fit(self, X, y):
        """Fit on feature matrix X (missing values allowed) and 0/1 escalation labels y."""
        y = np.asarray(y)
        if set(np.unique(y)) - {0, 1}:
            raise ValueError(f"labels must be 0 or 1, got {sorted(set(np.unique(y)))}")
        if len(np.unique(y)) < 2:
            raise ValueError("training labels are all one class: pick as-of dates with escalations after them")
        if self.calibration not in CALIBRATION_METHODS:
            raise ValueError(f"calibration must be one of {CALIBRATION_METHODS}, got {self.calibration!r}")
        base = logistic(C=self.C) if self.estimator is None else clone(self.estimator)
        # ensemble=False: one estimator fitted on all rows (what explanations read), calibrated on
        # out-of-fold predictions of the same rows. Calibration sees only the rows given to fit.
        self.calibrated_ = CalibratedClassifierCV(base, method=self.calibration, cv=self.cv, ensemble=False).fit(X, y)
        self.estimator_ = self.calibrated_.calibrated_classifiers_[0].estimator
        self.classes_ = self.calibrated_.classes_
        self.n_features_in_ = self.calibrated_.n_features_in_
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an all-missing column has no median
            self.reference_ = np.nanmedian(np.asarray(X, dtype=float), axis=0)
        training_risk = self.calibrated_.predict_proba(X)[:, 1]
        self.ventile_edges_ = np.quantile(training_risk, np.linspace(0, 1, SCORE_LEVELS + 1)[1:-1])
        # What a score level means in words: the calibrated risk of the training persons at that level;
        # a level nobody reached (risks tied at an edge) means the risk at its lower edge.
        at_level = levels(training_risk, self.ventile_edges_)
        lower_edges = np.concatenate([[training_risk.min()], self.ventile_edges_])
        self.level_risk_ = np.array([
            training_risk[at_level == level].mean() if (at_level == level).any() else lower_edges[level - 1]
            for level in range(1, SCORE_LEVELS + 1)
        ])
        return self

    def predict_proba(self, X) -> np.ndarray:
        check_is_fitted(self)
        return self.calibrated_.predict_proba(X)

    def predict(self, X) -> np.ndarray:
        return self.classes_[(self.predict_proba(X)[:, 1] >= 0.5).astype(int)]

    def level_risk(self, score_levels: np.ndarray) -> np.ndarray:
        """The calibrated probability of escalation at each given score level (NaN for a model fitted before levels had one)."""
        check_is_fitted(self)
        by_level = getattr(self, "level_risk_", None)
        if by_level is None:
            return np.full(len(score_levels), np.nan)
        return by_level[np.asarray(score_levels, dtype=int) - 1]

    def score_levels(self, X) -> np.ndarray:
        """1-20: which twentieth of the training population's risk each person falls in."""
        return levels(self.predict_proba(X)[:, 1], self.ventile_edges_)


def levels(risk: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Score levels 1..len(edges)+1 of risks, given the ventile edges of a training distribution."""
    return np.searchsorted(edges, risk, side="right") + 1
