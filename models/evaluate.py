"""Temporal cross-validation: train on as-of dates whose outcomes were known before the test date.

A fold tests on as-of date t and trains on every earlier as-of date d with d + horizon <= t, its
labels built only from register rows known on t. Each candidate and (on synthetic data) the oracle
risk are measured per test date, with percentile bootstrap intervals.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import polars as pl
from scipy.stats import rankdata
from sklearn.base import clone

from models.dataset import MODEL_FEATURES, Dataset, matrix
from models.scorer import levels

ORACLE = "oracle"
ALL_TEAMS = "all"
TOP_SHARE = 0.05  # without team capacities, the top 5% of the cohort is what gets looked at
CALIBRATION_BINS = 10
CI_METRICS = ("roc_auc", "average_precision", "brier", "calibration_error", "precision_at_capacity", "recall_at_capacity")

TeamOf = Callable[[pl.DataFrame], pl.Series]


@dataclass(frozen=True)
class Fold:
    """One step of the temporal cross-validation."""

    test_as_of: date
    train_as_of: tuple[date, ...]


def temporal_folds(dates: list[date], horizon_days: int, *, min_train_dates: int = 1) -> list[Fold]:
    """A fold per as-of date with at least min_train_dates earlier dates whose horizon ended by it."""
    ordered = sorted(set(dates))
    folds = []
    for test in ordered:
        train = tuple(d for d in ordered if d + timedelta(days=horizon_days) <= test)
        if len(train) >= min_train_dates:
            folds.append(Fold(test_as_of=test, train_as_of=train))
    if not folds:
        raise ValueError(
            f"no as-of date in {[str(d) for d in ordered]} has {min_train_dates} earlier date(s) at least "
            f"{horizon_days} days before it; add earlier as-of dates"
        )
    return folds


# Metrics written for speed: the bootstrap calls them thousands of times.

def roc_auc(y: np.ndarray, p: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney, ties counted half); NaN with one class only."""
    n1 = y.sum()
    n0 = len(y) - n1
    if n1 == 0 or n0 == 0:
        return float("nan")
    ranks = rankdata(p)
    return float((ranks[y == 1].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def average_precision(y: np.ndarray, p: np.ndarray) -> float:
    """Average precision as scikit-learn defines it (step-wise, ties as one threshold)."""
    if y.sum() == 0:
        return float("nan")
    order = np.argsort(-p, kind="stable")
    ys, ps = y[order], p[order]
    last = np.r_[np.nonzero(np.diff(ps))[0], len(ps) - 1]
    tps = np.cumsum(ys)[last]
    precision = tps / (last + 1)
    recall = tps / tps[-1]
    return float(np.sum(np.diff(np.r_[0, recall]) * precision))


def brier(y: np.ndarray, p: np.ndarray) -> float:
    return float(np.mean((p - y) ** 2))


def calibration_error(y: np.ndarray, p: np.ndarray, bins: int = CALIBRATION_BINS) -> float:
    """Expected calibration error over equal-count bins of predicted risk."""
    order = np.argsort(p, kind="stable")
    total = 0.0
    for part in np.array_split(order, bins):
        if len(part):
            total += len(part) * abs(p[part].mean() - y[part].mean())
    return float(total / len(p))


def at_capacity(y: np.ndarray, p: np.ndarray, teams: np.ndarray, capacity: Mapping[str, int]) -> dict[str, float]:
    """Precision and recall when each team looks at its `capacity` highest-risk persons."""
    out: dict[str, float] = {}
    hits = looked = 0
    for team in np.unique(teams):
        members = np.nonzero(teams == team)[0]
        k = min(int(capacity.get(team, 0)), len(members))
        top = members[np.argsort(-p[members], kind="stable")[:k]]
        tp = int(y[top].sum())
        positives = int(y[members].sum())
        hits, looked = hits + tp, looked + k
        out[f"precision_at_capacity/{team}"] = tp / k if k else float("nan")
        out[f"recall_at_capacity/{team}"] = tp / positives if positives else float("nan")
    out["precision_at_capacity"] = hits / looked if looked else float("nan")
    out["recall_at_capacity"] = hits / y.sum() if y.sum() else float("nan")
    return out


def metrics(y: np.ndarray, p: np.ndarray, teams: np.ndarray, capacity: Mapping[str, int]) -> dict[str, float]:
    """Every metric of one as-of date for one risk vector."""
    return {
        "rows": float(len(y)),
        "positives": float(y.sum()),
        "roc_auc": roc_auc(y, p),
        "average_precision": average_precision(y, p),
        "brier": brier(y, p),
        "calibration_error": calibration_error(y, p),
        **at_capacity(y, p, teams, capacity),
    }


def bootstrap(
    y: np.ndarray, p: np.ndarray, teams: np.ndarray, capacity: Mapping[str, int], *, n_boot: int, seed: int, level: float = 0.95
) -> dict[str, tuple[float, float]]:
    """Percentile intervals of the headline metrics, resampling persons with replacement."""
    if n_boot <= 0:
        return {}
    rng = np.random.default_rng(seed)
    draws: dict[str, list[float]] = {m: [] for m in CI_METRICS}
    for _ in range(n_boot):
        i = rng.integers(0, len(y), len(y))
        yb, pb = y[i], p[i]
        values = {
            "roc_auc": roc_auc(yb, pb), "average_precision": average_precision(yb, pb),
            "brier": brier(yb, pb), "calibration_error": calibration_error(yb, pb),
        }
        values |= {k: v for k, v in at_capacity(yb, pb, teams[i], capacity).items() if k in CI_METRICS}
        for m in CI_METRICS:
            draws[m].append(values[m])
    tail = (1 - level) / 2 * 100
    out = {}
    for m, values in draws.items():
        arr = np.asarray(values, dtype=float)
        arr = arr[~np.isnan(arr)]
        out[m] = (float(np.percentile(arr, tail)), float(np.percentile(arr, 100 - tail))) if len(arr) else (float("nan"),) * 2
    return out


def oracle_at(oracle: pl.DataFrame, persons: pl.Series, as_of: date) -> np.ndarray:
    """Each person's true risk at the last week starting on or before as_of (NaN when unknown)."""
    latest = (
        oracle.filter(pl.col("week") <= as_of)
        .sort("week")
        .group_by("person_id")
        .agg(pl.col("oracle_risk_12m").last())
        .rename({"person_id": "person"})
    )
    joined = pl.DataFrame({"person": persons}).join(latest, on="person", how="left", maintain_order="left")
    return joined["oracle_risk_12m"].cast(pl.Float64).fill_null(float("nan")).to_numpy()


@dataclass(frozen=True)
class CrossValidation:
    """Out-of-time predictions and per-date metrics of every candidate (and the oracle, if given)."""

    folds: tuple[Fold, ...]
    predictions: pl.DataFrame  # candidate, as_of, person, label, risk, score, team + group columns
    metrics: pl.DataFrame  # candidate, as_of, metric, value, low, high
    capacity: dict[str, int]

    def summary(self) -> pl.DataFrame:
        """Mean of each metric over folds, per candidate."""
        return (
            self.metrics.group_by("candidate", "metric")
            .agg(mean=pl.col("value").mean(), folds=pl.col("value").is_not_nan().sum())
            .sort("candidate", "metric")
        )

    def mean(self, candidate: str, metric: str) -> float:
        rows = self.metrics.filter((pl.col("candidate") == candidate) & (pl.col("metric") == metric))["value"]
        rows = rows.filter(rows.is_not_nan())
        return float(rows.mean()) if len(rows) else float("nan")


def teams_for(frame: pl.DataFrame, team_of: TeamOf | None) -> np.ndarray:
    return np.asarray(team_of(frame).to_list() if team_of else [ALL_TEAMS] * frame.height, dtype=object)


def default_capacity(dataset: Dataset) -> dict[str, int]:
    """Without team capacities: one pseudo-team looking at the top TOP_SHARE of a typical cohort."""
    typical = int(np.median([f.height for f in dataset.frames.values()]))
    return {ALL_TEAMS: max(1, round(TOP_SHARE * typical))}


def cross_validate(
    dataset: Dataset,
    candidates: Mapping[str, object],
    *,
    folds: list[Fold] | None = None,
    team_of: TeamOf | None = None,
    capacity: Mapping[str, int] | None = None,
    oracle: pl.DataFrame | None = None,
    n_boot: int = 200,
    seed: int = 0,
    group_cols: tuple[str, ...] = ("sex", "age_band", "district"),
) -> CrossValidation:
    """Fit each candidate per fold on past-known labels only; measure it on the fold's test date."""
    if not candidates:
        raise ValueError("give at least one candidate estimator")
    if ORACLE in candidates:
        raise ValueError(f"{ORACLE!r} is reserved for the true risk; rename that candidate")
    if (team_of is None) != (capacity is None):
        raise ValueError("give both team_of and capacity, or neither")
    folds = folds or temporal_folds(dataset.dates, dataset.horizon_days)
    capacity = dict(capacity) if capacity is not None else default_capacity(dataset)
    keep = [c for c in group_cols if c in dataset.frames[folds[0].test_as_of].columns]
    predictions, rows = [], []
    for fold_no, fold in enumerate(folds):
        train = dataset.labelled_all(list(fold.train_as_of), known_by=fold.test_as_of)
        test = dataset.labelled(fold.test_as_of)
        X_train, y_train = matrix(train), train["label"].to_numpy()
        if len(np.unique(y_train)) < 2:
            warnings.warn(f"fold testing {fold.test_as_of} skipped: its training labels are all one class", stacklevel=2)
            continue
        X_test, y_test = matrix(test), test["label"].to_numpy()
        teams = teams_for(test, team_of)
        risks: dict[str, tuple[np.ndarray, np.ndarray | None]] = {}
        for name, estimator in candidates.items():
            model = clone(estimator).fit(X_train, y_train)
            risk = model.predict_proba(X_test)[:, 1]
            edges = getattr(model, "ventile_edges_", None)
            risks[name] = (risk, levels(risk, edges) if edges is not None else None)
        if oracle is not None:
            true_risk = oracle_at(oracle, test["person"], fold.test_as_of)
            # No oracle row means the simulation did not have the child living here that week, so
            # no measure can start here: a true risk of 0 (the registers may not know it yet).
            if (~np.isnan(true_risk)).any():
                risks[ORACLE] = (np.nan_to_num(true_risk, nan=0.0), None)
        for name, (risk, score) in risks.items():
            values = metrics(y_test, risk, teams, capacity)
            intervals = bootstrap(y_test, risk, teams, capacity, n_boot=n_boot, seed=seed + fold_no)
            for metric, value in values.items():
                low, high = intervals.get(metric, (float("nan"), float("nan")))
                rows.append((name, fold.test_as_of, metric, float(value), low, high))
            predictions.append(test.select("person", "label", *keep).with_columns(
                candidate=pl.lit(name), as_of=pl.lit(fold.test_as_of), risk=pl.Series(risk),
                score=pl.Series(score, dtype=pl.Int64) if score is not None else pl.lit(None, dtype=pl.Int64),
                team=pl.Series(teams.tolist(), dtype=pl.String),
            ))
    if not rows:
        raise ValueError("every fold was skipped: no training dates with escalations of both kinds; add as-of dates")
    table = pl.DataFrame(rows, schema=["candidate", "as_of", "metric", "value", "low", "high"], orient="row")
    tested = set(table["as_of"].to_list())
    return CrossValidation(folds=tuple(f for f in folds if f.test_as_of in tested), predictions=pl.concat(predictions, how="vertical_relaxed"),
                           metrics=table, capacity=capacity)


def select(cv: CrossValidation, candidates: list[str], *, by: str = "average_precision") -> str:
    """The candidate with the best mean of `by` over folds; ties go to the earlier (simpler) one."""
    scores = {name: cv.mean(name, by) for name in candidates}
    usable = {n: s for n, s in scores.items() if not np.isnan(s)}
    if not usable:
        raise ValueError(f"no candidate has a defined {by} in any fold (no escalations in the test dates?): {scores}")
    best = max(usable.values())
    return next(n for n in candidates if usable.get(n) == best)


__all__ = ["MODEL_FEATURES", "CrossValidation", "Fold", "cross_validate", "select", "temporal_folds"]


def cluster_bootstrap_sums(clusters: np.ndarray, values: np.ndarray, *, n_boot: int, seed: int, chunk: int = 100) -> np.ndarray:
    """Bootstrap replicates of the column sums of values (rows x m), resampling clusters, shape (n_boot, m).

    A person appears on many weekly as-of dates with nearly the same features and the same outcome, so
    persons, not rows, are resampled: each person's rows get one Poisson(1) weight per replicate
    (the Poisson bootstrap, which for large samples equals drawing persons with replacement).
    Every metric of a list (precision, recall, per team, per group, paired differences) is a ratio
    of such sums, so one set of replicates gives all their intervals, and paired ones for free.
    """
    _, index = np.unique(clusters, return_inverse=True)
    values = np.asarray(values, dtype=float).reshape(len(index), -1)
    per_cluster = np.zeros((index.max() + 1 if len(index) else 0, values.shape[1]))
    np.add.at(per_cluster, index, values)
    rng = np.random.default_rng(seed)
    out = np.empty((n_boot, values.shape[1]))
    for start in range(0, n_boot, chunk):
        weights = rng.poisson(1.0, size=(min(chunk, n_boot - start), len(per_cluster))).astype(float)
        out[start:start + len(weights)] = weights @ per_cluster
    return out


def percentile_interval(draws: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """The percentile interval of bootstrap draws, ignoring undefined ones (NaN when none is defined)."""
    draws = np.asarray(draws, dtype=float)
    draws = draws[~np.isnan(draws)]
    if not len(draws):
        return float("nan"), float("nan")
    tail = (1 - level) / 2 * 100
    return float(np.percentile(draws, tail)), float(np.percentile(draws, 100 - tail))


def ratio(numerator: np.ndarray | float, denominator: np.ndarray | float) -> np.ndarray:
    """numerator / denominator, NaN where the denominator is 0."""
    numerator, denominator = np.asarray(numerator, dtype=float), np.asarray(denominator, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denominator > 0, numerator / np.where(denominator > 0, denominator, 1), np.nan)


def calibration_in_top(y: np.ndarray, p: np.ndarray, *, top: np.ndarray, bins: int = 5) -> dict:
    """Calibration where it matters, among the rows `top` marks: slope and intercept of the logistic
    recalibration logit P(y) = a + b logit(p) (perfect: a 0, b 1) and a reliability table of
    equal-count bins (mean predicted risk, observed rate, rows)."""
    from sklearn.linear_model import LogisticRegression

    y, p = np.asarray(y)[top], np.clip(np.asarray(p, dtype=float)[top], 1e-6, 1 - 1e-6)
    out: dict = {"rows": int(len(y)), "positives": int(y.sum()), "slope": float("nan"), "intercept": float("nan"), "reliability": []}
    if len(y) == 0:
        return out
    if 0 < y.sum() < len(y):
        logit = np.log(p / (1 - p)).reshape(-1, 1)
        fit = LogisticRegression(C=np.inf, max_iter=1000).fit(logit, y)  # C=inf: no penalty on a recalibration
        out["slope"], out["intercept"] = float(fit.coef_[0, 0]), float(fit.intercept_[0])
    order = np.argsort(p, kind="stable")
    out["reliability"] = [
        {"predicted": float(p[part].mean()), "observed": float(y[part].mean()), "rows": int(len(part))}
        for part in np.array_split(order, min(bins, len(order))) if len(part)
    ]
    return out
