"""The points baseline, calibration of the scorer, and the plain-language explanations."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from models.baseline import PointsRule
from models.dataset import MODEL_FEATURES
from models.explain import contributions, risk_in_words, signals
from models.scorer import RiskScorer, gradient_boosting

NAMES = ("notifications_365d", "school_absence_pct_90d", "parent_substance_treatment_365d")
RULE = (("notifications_365d", 2, 1), ("notifications_365d", 2, 3), ("school_absence_pct_90d", 2, 15),
        ("parent_substance_treatment_365d", 3, 1))


def _children(n=3000, seed=0):
    rng = np.random.default_rng(seed)
    X = np.column_stack([rng.poisson(0.3, n), rng.beta(1.5, 20, n) * 100, rng.random(n) < 0.05]).astype(float)
    X[rng.random(n) < 0.3, 1] = np.nan  # not of school age
    logit = -4 + 0.8 * X[:, 0] + 0.08 * np.nan_to_num(X[:, 1]) + 1.5 * X[:, 2]
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return X, y


def test_points_are_fixed_per_signal_and_missing_scores_nothing():
    X = np.array([[0, 20, 0], [1, np.nan, 1], [4, 10, 0], [3, 15, 1]], dtype=float)
    model = PointsRule(points=RULE, feature_names=NAMES)
    assert model.fit(X, [0, 1, 0, 1]) is model
    assert model.decision_function(X).tolist() == [2, 5, 4, 9]
    assert model.contributions(X)[3].tolist() == [2, 2, 2, 3]
    risk = model.predict_proba(X)[:, 1]
    assert np.all(np.diff(risk[np.argsort(model.decision_function(X))]) >= 0), "more points never means less risk"


def test_points_rule_init_is_keyword_only_and_errors_name_what_is_allowed():
    with pytest.raises(TypeError):
        PointsRule(RULE)
    X, y = _children(50)
    with pytest.raises(ValueError, match=r"unknown feature\(s\) \['dental'\]; features: \["):
        PointsRule(points=(("dental", 1, 1),), feature_names=NAMES).fit(X, y)
    with pytest.raises(ValueError, match="feature_names has 2 names but X has 3 columns"):
        PointsRule(feature_names=NAMES[:2]).fit(X, y)


@pytest.mark.parametrize("estimator", [None, PointsRule(points=RULE, feature_names=NAMES), gradient_boosting()],
                         ids=["logistic", "points", "boosting"])
def test_calibrated_risk_matches_observed_rates_on_new_data(estimator):
    X, y = _children(6000)
    X_new, y_new = _children(6000, seed=1)
    model = RiskScorer(estimator=estimator).fit(X, y)
    risk = model.predict_proba(X_new)[:, 1]
    assert abs(risk.mean() - y_new.mean()) < 0.01
    top = risk >= np.quantile(risk, 0.9)
    assert abs(risk[top].mean() - y_new[top].mean()) < 0.06
    assert set(np.unique(model.score_levels(X))) <= set(range(1, 21))


def test_scorer_refuses_unknown_calibration():
    X, y = _children(200)
    with pytest.raises(ValueError, match=r"calibration must be one of \('sigmoid', 'isotonic'\)"):
        RiskScorer(calibration="platt").fit(X, y)


def test_logistic_contributions_are_measured_from_the_population_baseline():
    X, y = _children(2000)
    model = RiskScorer().fit(X, y)
    pipe = model.estimator_
    coef, scale = pipe[-1].coef_[0], pipe.named_steps["scale"].scale_
    baseline = np.nanmedian(X, axis=0)
    rows = np.array([[3, 30, 1], [0, np.nan, 0]], dtype=float)
    got = contributions(model, rows)
    for j in range(3):
        assert got[0, j] == pytest.approx(coef[j] * (rows[0, j] - baseline[j]) / scale[j])
    # Replacing the value by the baseline moves the uncalibrated log-odds by exactly the contribution.
    moved = rows[:1].copy()
    moved[0, 1] = baseline[1]
    assert pipe.decision_function(rows[:1])[0] - pipe.decision_function(moved)[0] == pytest.approx(got[0, 1])
    # A missing value is compared with nothing, and the typical person's values contribute nothing.
    assert got[1, 1] == 0
    assert np.allclose(contributions(model, baseline[None, :]), 0)


@pytest.mark.parametrize("estimator", [PointsRule(points=RULE, feature_names=NAMES), gradient_boosting()], ids=["points", "boosting"])
def test_other_models_measure_contributions_from_the_baseline_too(estimator):
    X, y = _children(3000)
    model = RiskScorer(estimator=estimator).fit(X, y)
    baseline = np.nanmedian(X, axis=0)
    assert np.allclose(contributions(model, baseline[None, :]), 0)
    got = contributions(model, np.array([[5, np.nan, 1]], dtype=float))[0]
    assert got[0] > 0 and got[1] == 0 and got[2] > 0


def _fitted(weights: dict[str, float], n: int = 4000, seed: int = 0, at_school: float = 0.0):
    """A scorer over MODEL_FEATURES where only the weighted columns matter (and, for school-age
    children, having an absence record at all), the column map and the population baseline."""
    rng = np.random.default_rng(seed)
    col = {name: i for i, name in enumerate(MODEL_FEATURES)}
    X = np.zeros((n, len(MODEL_FEATURES)))
    X[:, col["age_years"]] = rng.integers(0, 18, n)
    X[:, col["notifications_365d"]] = rng.poisson(0.3, n)
    X[:, col["parent_substance_treatment_365d"]] = rng.random(n) < 0.05
    X[:, col["school_absence_pct_90d"]] = rng.beta(1.5, 20, n) * 100
    X[X[:, col["age_years"]] < 6, col["school_absence_pct_90d"]] = np.nan  # not of school age
    X[:, col["days_since_last_notification"]] = np.nan
    logit = -4 + at_school * ~np.isnan(X[:, col["school_absence_pct_90d"]])
    logit += sum(w * np.nan_to_num(X[:, col[name]]) for name, w in weights.items())
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # days_since_last_notification has no value at all
        baseline = np.nanmedian(X, axis=0)
    return RiskScorer().fit(X, y), col, baseline


def test_a_signal_with_a_negative_contribution_is_not_listed_as_raising_the_score():
    # School-age children escalate more; the model learns it through the absence record's
    # missing-value indicator. A school child with almost no absence is below the baseline.
    model, col, baseline = _fitted({"notifications_365d": 0.9, "school_absence_pct_90d": 0.04}, n=8000, at_school=1.5)
    person = baseline.copy()[None, :]
    person[0, col["notifications_365d"]] = 4
    person[0, col["school_absence_pct_90d"]] = 0.5
    assert contributions(model, person)[0, col["school_absence_pct_90d"]] < 0
    found = signals(model, person, MODEL_FEATURES)[0].to_list()
    assert [s["feature"] for s in found] == ["notifications_365d"]
    assert all(s["contribution"] > 0 for s in found)


def test_age_is_context_never_a_signal():
    # Age is the strongest input here, and a one-year-old is far from the typical child's age.
    model, col, baseline = _fitted({"age_years": -0.3, "notifications_365d": 1.0}, n=8000)
    baby = baseline.copy()[None, :]
    baby[0, col["age_years"]] = 1
    baby[0, col["notifications_365d"]] = 1
    baby[0, col["school_absence_pct_90d"]] = np.nan
    assert contributions(model, baby)[0, col["age_years"]] > 0.5
    listed = [s["feature"] for s in signals(model, baby, MODEL_FEATURES)[0].to_list()]
    assert listed == ["notifications_365d"]


def test_gradient_boosting_fits_when_a_column_has_no_value_at_all():
    # A small municipality may have no parent in drug treatment on any training date.
    X, y = _children(500)
    X[:, 2] = np.nan
    model = RiskScorer(estimator=gradient_boosting()).fit(X, y)
    assert np.isfinite(model.predict_proba(X)).all()
    X_new = X.copy()
    X_new[:, 2] = 1.0  # a value seen after training changes nothing the model could not have learnt
    assert np.allclose(model.predict_proba(X_new), model.predict_proba(X))


def test_each_score_level_means_the_calibrated_risk_of_the_training_persons_at_it():
    X, y = _children(4000)
    model = RiskScorer().fit(X, y)
    risk, levels = model.predict_proba(X)[:, 1], model.score_levels(X)
    for level in np.unique(levels):
        assert model.level_risk(np.array([level]))[0] == pytest.approx(risk[levels == level].mean())
    assert not np.isnan(model.level_risk(np.arange(1, 21))).any()
    assert np.all(np.diff(model.level_risk(np.arange(1, 21))) >= 0), "a higher score never means a lower risk"


def test_the_risk_is_said_as_so_many_in_100_children():
    assert risk_in_words(0.061, "da") == "omkring 6 ud af 100 børn med denne score får brug for støtte inden for et år"
    assert risk_in_words(0.061, "en") == "about 6 in 100 children with this score need support within a year"
    assert risk_in_words(0.003, "da").startswith("under 1 ud af 100")
    assert risk_in_words(None, "en") is None and risk_in_words(float("nan"), "da") is None
