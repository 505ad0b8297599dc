import numpy as np
import pytest

from models.scorer import RiskScorer


def _data(n=400, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    X[rng.random((n, 3)) < 0.1] = np.nan
    y = (np.nan_to_num(X[:, 0]) + rng.normal(0, 0.5, n) > 1.2).astype(int)
    return X, y


def test_fit_returns_self_and_scores_are_ventiles_of_the_training_risk():
    X, y = _data()
    model = RiskScorer(C=0.5)
    assert model.fit(X, y) is model
    levels = model.score_levels(X)
    assert levels.min() == 1 and levels.max() == 20
    counts = np.bincount(levels, minlength=21)[1:]
    assert counts.min() >= 0.5 * len(X) / 20
    risk = model.predict_proba(X)[:, 1]
    assert np.all(np.diff(levels[np.argsort(risk)]) >= 0)


def test_init_is_keyword_only_and_bad_labels_say_what_is_allowed():
    with pytest.raises(TypeError):
        RiskScorer(1.0)
    X, y = _data()
    with pytest.raises(ValueError, match="0 or 1"):
        RiskScorer().fit(X, y + 1)
    with pytest.raises(ValueError, match="one class"):
        RiskScorer().fit(X, np.zeros(len(y)))
