"""Why a person got their score: the signals that raised it, in plain Danish and English.

A signal's contribution is measured against the population baseline: how much the model's log-odds
of escalation drop when the person's value is replaced by the training population's typical value
(its median among persons with a value). Only a positive contribution raised the score. For the
logistic model that is the coefficient times the standardised distance from the baseline; for the
points rule it is the points the value gives beyond the baseline's; for any other model it is
measured by replacing the value (occlusion).

A missing value is compared with nothing: whether a register holds a value at all mostly follows
from age (no school absence before school age), so a missing-value indicator is never said as a
signal about the value. Age itself is context for the caseworker, never a signal (CONTEXT).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from features.catalogue import CATALOGUE
from features.texts import say
from models.baseline import PointsRule

TOP_SIGNALS = 3
MIN_CONTRIBUTION = 0.05  # log-odds; below this a signal does not noticeably move the score
# Model inputs shown beside the score as context, never as a signal that raised it: a child's age
# says who the child is, not something a caseworker could act on.
CONTEXT = frozenset({"age_years"})
# Model inputs that are not catalogue features carry their texts here.
EXTRA_TEXTS: dict[str, dict[str, str]] = {
    "age_years": {"da": "barnet er {value} år", "en": "the child is {value} {year|years} old"},
}
_COUNTS_PARENTS = frozenset(f.name for f in CATALOGUE if f.over == "parents_with_any")
_NAMES_PARENT = frozenset(f.name for f in CATALOGUE if f.names_parent)
SIGNAL_DTYPE = pl.List(pl.Struct({
    "feature": pl.String, "value": pl.Float64, "contribution": pl.Float64, "text_da": pl.String, "text_en": pl.String,
}))


def texts() -> dict[str, dict[str, str]]:
    """Text templates per model input: catalogue features and the extras."""
    return {f.name: f.texts for f in CATALOGUE} | EXTRA_TEXTS


def contributions(model, X: np.ndarray) -> np.ndarray:
    """Per person and input column, how much its value raises the model's log-odds above the population baseline.

    Missing values contribute 0 (see the module docstring).
    """
    baseline = population_baseline(model)
    if len(baseline) != X.shape[1]:
        raise ValueError(f"the model was trained on {len(baseline)} inputs but X has {X.shape[1]} columns")
    base = getattr(model, "estimator_", model)
    if isinstance(base, Pipeline) and isinstance(base[-1], LogisticRegression):
        out = _linear(base, X, baseline)
    elif isinstance(base, PointsRule):
        out = np.zeros(X.shape, dtype=float)
        gained = base.contributions(X) - base.contributions(np.broadcast_to(baseline, X.shape))
        np.add.at(out.T, base.columns_, gained.T)
    else:
        out = _occlusion(model, X, baseline)
    out[np.isnan(X) | np.isnan(baseline)] = 0.0
    return out


def population_baseline(model) -> np.ndarray:
    """The training population's typical value per input: its median among persons with a value."""
    baseline = getattr(model, "reference_", None)
    if baseline is None:
        raise ValueError("the model has no population baseline (reference_): explain a fitted models.scorer.RiskScorer")
    return np.asarray(baseline, dtype=float)


def _linear(pipeline: Pipeline, X: np.ndarray, baseline: np.ndarray) -> np.ndarray:
    # Value and baseline are both present, so their missing-value indicators are equal and cancel.
    scale = pipeline.named_steps["scale"].scale_[: X.shape[1]]
    return pipeline[-1].coef_[0][: X.shape[1]] * (X - baseline) / scale


def _occlusion(model, X: np.ndarray, baseline: np.ndarray) -> np.ndarray:
    full = _logit(model.predict_proba(X)[:, 1])
    out = np.zeros(X.shape, dtype=float)
    for j in np.flatnonzero(~np.isnan(baseline)):
        moved = X.copy()
        moved[:, j] = baseline[j]
        out[:, j] = full - _logit(model.predict_proba(moved)[:, 1])
    return out


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-9, 1 - 1e-9)
    return np.log(p / (1 - p))


def risk_in_words(level_risk: float | None, language: str) -> str | None:
    """A score level's calibrated risk as a caseworker says it: "omkring 6 ud af 100 børn med denne score ..."."""
    if level_risk is None or np.isnan(level_risk):
        return None
    in_100 = round(100 * level_risk)
    if language == "da":
        share = f"omkring {in_100} ud af 100" if in_100 >= 1 else "under 1 ud af 100"
        return f"{share} børn med denne score får brug for støtte inden for et år"
    if language == "en":
        share = f"about {in_100} in 100" if in_100 >= 1 else "fewer than 1 in 100"
        return f"{share} children with this score need support within a year"
    raise ValueError(f"language must be da or en, got {language!r}")


def describe(feature: str, value: float | None, language: str, *, parent: str | None = None) -> str | None:
    """The plain-language text of one signal, or None when the feature has no text for this case.

    `parent` ("mother", "father" or "both") names who a parent's signal is about.
    """
    return say(texts().get(feature, {}), value, language, parent=parent, parents_counted=feature in _COUNTS_PARENTS)


def signals(
    model, X: np.ndarray, feature_names: Sequence[str], *, top: int = TOP_SIGNALS, min_contribution: float = MIN_CONTRIBUTION,
    context: pl.DataFrame | None = None,
) -> pl.Series:
    """Per person, the top signals that raised their score above the population baseline: feature,
    value, contribution (always positive), text_da, text_en. Context inputs (age) are never signals.

    `context`, the feature table rows of X in the same order, lets a parent's signal name the
    parent (its `<feature>_parent` columns); without it the text says "a parent".
    """
    names = list(feature_names)
    if len(names) != X.shape[1]:
        raise ValueError(f"feature_names has {len(names)} names but X has {X.shape[1]} columns")
    if context is not None and context.height != X.shape[0]:
        raise ValueError(f"context has {context.height} rows but X has {X.shape[0]}; pass the table rows X was made from")
    columns = set() if context is None else set(context.columns)
    who = {n: context[f"{n}_parent"].to_list() for n in names if n in _NAMES_PARENT and f"{n}_parent" in columns}
    contrib = contributions(model, X)
    rows = []
    for i in range(X.shape[0]):
        found = []
        for j in np.argsort(-contrib[i], kind="stable"):
            if len(found) == top or contrib[i, j] < min_contribution:
                break
            if names[j] in CONTEXT:
                continue
            value = float(X[i, j])
            parent = who[names[j]][i] if names[j] in who else None
            text_da, text_en = describe(names[j], value, "da", parent=parent), describe(names[j], value, "en", parent=parent)
            if text_da is None or text_en is None:
                continue
            found.append({"feature": names[j], "value": value, "contribution": float(contrib[i, j]),
                          "text_da": text_da, "text_en": text_en})
        rows.append(found)
    return pl.Series("signals", rows, dtype=SIGNAL_DTYPE)
