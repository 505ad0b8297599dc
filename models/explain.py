"""Why a person got their score: the top contributing signals, in plain Danish and English.

For the logistic model a signal's contribution is its coefficient times the person's standardised
value (plus its missing-value indicator's term), i.e. how far it moves the log-odds from an
average person. For the points rule it is the points the signal gave. For any other model it is
how much the log-odds drop when the signal is set to the training median (occlusion).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from features.catalogue import CATALOGUE
from features.texts import say
from models.baseline import PointsRule

TOP_SIGNALS = 3
MIN_CONTRIBUTION = 0.05  # log-odds; below this a signal does not noticeably move the score
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
    """Per person and input column, how much it raises the model's log-odds of escalation."""
    base = getattr(model, "estimator_", model)
    if isinstance(base, Pipeline) and isinstance(base[-1], LogisticRegression):
        return _linear(base, X)
    if isinstance(base, PointsRule):
        out = np.zeros(X.shape, dtype=float)
        np.add.at(out.T, base.columns_, base.contributions(X).T)
        return out
    return _occlusion(model, X)


def _linear(pipeline: Pipeline, X: np.ndarray) -> np.ndarray:
    # The transformed columns are the inputs, then one indicator per input that had missing values.
    z = pipeline[:-1].transform(X)
    terms = z * pipeline[-1].coef_[0]
    p = X.shape[1]
    out = terms[:, :p].copy()
    imputer = next((step for _, step in pipeline.steps if isinstance(step, SimpleImputer)), None)
    if imputer is not None and imputer.indicator_ is not None:
        for k, column in enumerate(imputer.indicator_.features_):
            out[:, column] += terms[:, p + k]
    return out


def _occlusion(model, X: np.ndarray) -> np.ndarray:
    reference = getattr(model, "reference_", None)
    if reference is None:
        reference = np.nanmedian(X, axis=0)
    full = _logit(model.predict_proba(X)[:, 1])
    out = np.empty(X.shape, dtype=float)
    for j in range(X.shape[1]):
        moved = X.copy()
        moved[:, j] = reference[j]
        out[:, j] = full - _logit(model.predict_proba(moved)[:, 1])
    return out


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-9, 1 - 1e-9)
    return np.log(p / (1 - p))


def describe(feature: str, value: float | None, language: str, *, parent: str | None = None) -> str | None:
    """The plain-language text of one signal, or None when the feature has no text for this case.

    `parent` ("mother", "father" or "both") names who a parent's signal is about.
    """
    return say(texts().get(feature, {}), value, language, parent=parent, parents_counted=feature in _COUNTS_PARENTS)


def signals(
    model, X: np.ndarray, feature_names: Sequence[str], *, top: int = TOP_SIGNALS, min_contribution: float = MIN_CONTRIBUTION,
    context: pl.DataFrame | None = None,
) -> pl.Series:
    """Per person, the top signals raising their risk: feature, value, contribution, text_da, text_en.

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
            value = None if np.isnan(X[i, j]) else float(X[i, j])
            # A zero count "raising" risk is an artefact of comparing with the average person.
            if value == 0:
                continue
            parent = who[names[j]][i] if names[j] in who else None
            text_da, text_en = describe(names[j], value, "da", parent=parent), describe(names[j], value, "en", parent=parent)
            if text_da is None or text_en is None:
                continue
            found.append({"feature": names[j], "value": value, "contribution": float(contrib[i, j]),
                          "text_da": text_da, "text_en": text_en})
        rows.append(found)
    return pl.Series("signals", rows, dtype=SIGNAL_DTYPE)
