"""Evaluation plots for the training run: calibration, precision at k, metrics over time (aggregates only)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from models.evaluate import ORACLE, CrossValidation


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # no display on servers and workers
    import matplotlib.pyplot as plt

    return plt


def calibration(cv: CrossValidation, path: Path, bins: int = 10) -> Path:
    """Observed escalation rate against predicted risk, out of time, per candidate (equal-count bins)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 5))
    top = 0.0
    for name, part in cv.predictions.group_by("candidate", maintain_order=True):
        risk, label = part["risk"].to_numpy(), part["label"].to_numpy()
        order = np.argsort(risk)
        chunks = [c for c in np.array_split(order, bins) if len(c)]
        x = [risk[c].mean() for c in chunks]
        y = [label[c].mean() for c in chunks]
        top = max(top, *x, *y)
        ax.plot(x, y, marker="o", label=name[0], linestyle="--" if name[0] == ORACLE else "-")
    ax.plot([0, top], [0, top], color="grey", linewidth=0.8)
    ax.set(xlabel="predicted risk", ylabel="observed escalation rate", title="Calibration (out of time)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def precision_at_k(cv: CrossValidation, path: Path) -> Path:
    """Precision among the k highest risks, averaged over test dates, with the teams' total capacity marked."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 5))
    for name, part in cv.predictions.group_by("candidate", maintain_order=True):
        curves = []
        for _, day in part.group_by("as_of"):
            label = day.sort("risk", descending=True)["label"].to_numpy()
            curves.append(np.cumsum(label) / np.arange(1, len(label) + 1))
        k = min(len(c) for c in curves)
        ax.plot(np.arange(1, k + 1), np.mean([c[:k] for c in curves], axis=0), label=name[0],
                linestyle="--" if name[0] == ORACLE else "-")
    ax.axvline(sum(cv.capacity.values()), color="grey", linewidth=0.8, label="total capacity")
    ax.set(xscale="log", xlabel="k (persons looked at)", ylabel="precision at k", title="Precision at k (mean over test dates)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def over_time(cv: CrossValidation, path: Path, metrics: tuple[str, ...] = ("roc_auc", "average_precision", "precision_at_capacity")) -> Path:
    """Each headline metric per test date with its bootstrap interval, per candidate."""
    plt = _pyplot()
    fig, axes = plt.subplots(len(metrics), 1, figsize=(7, 3 * len(metrics)), sharex=True)
    for ax, metric in zip(np.atleast_1d(axes), metrics):
        rows = cv.metrics.filter(pl.col("metric") == metric).sort("as_of")
        for name, part in rows.group_by("candidate", maintain_order=True):
            value, low, high = (part[c].to_numpy() for c in ("value", "low", "high"))
            err = np.vstack([np.nan_to_num(value - low), np.nan_to_num(high - value)]).clip(min=0)
            ax.errorbar(part["as_of"].to_list(), value, yerr=err, marker="o", capsize=2, label=name[0],
                        linestyle="--" if name[0] == ORACLE else "-")
        ax.set_ylabel(metric)
    np.atleast_1d(axes)[0].legend(fontsize=8)
    np.atleast_1d(axes)[0].set_title("Metrics per test as-of date (95% bootstrap intervals)")
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def save_all(cv: CrossValidation, chosen: str, folder: Path) -> list[Path]:
    """Write the three plots into folder."""
    return [calibration(cv, folder / "calibration.png"), precision_at_k(cv, folder / "precision_at_k.png"),
            over_time(cv, folder / "metrics_over_time.png")]
