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


def deployed_precision_curve(evaluation, path: Path) -> Path:
    """Precision among the first k children of each list (mean over replayed dates), the deployed list's capacity marked."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 5))
    for name, part in evaluation.curve.group_by("list", maintain_order=True):
        ax.plot(part["k"].to_numpy(), part["precision"].to_numpy(), label=name[0],
                linestyle="--" if name[0] == ORACLE else "-", linewidth=2.2 if name[0] == "deployed" else 1.2)
    per_date = evaluation.at_capacity.filter((pl.col("list") == "deployed") & (pl.col("team") == "all"))["k"][0] / len(evaluation.dates)
    ax.axvline(per_date, color="grey", linewidth=0.8, label="children on the lists per date")
    ax.set(xscale="log", xlabel="k (children looked at per date)", ylabel="precision at k",
           title="Precision at k, deployed list and alternatives")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def deployed_reliability(evaluation, path: Path) -> Path:
    """Observed escalation rate against the model's risk among each date's top 5%."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 5))
    bins = evaluation.calibration["reliability"]
    x, y = [b["predicted"] for b in bins], [b["observed"] for b in bins]
    ax.plot(x, y, marker="o", label="top 5% by risk")
    top = max([*x, *y, 0.01])
    ax.plot([0, top], [0, top], color="grey", linewidth=0.8)
    ax.set(xlabel="mean predicted risk", ylabel="observed escalation rate",
           title=f"Calibration in the top 5% (slope {evaluation.calibration['slope']:.2f}, "
                 f"intercept {evaluation.calibration['intercept']:.2f})")
    ax.title.set_fontsize(9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def deployed_at_capacity(evaluation, path: Path) -> Path:
    """Precision at capacity per team and list, with 95% intervals."""
    plt = _pyplot()
    table = evaluation.at_capacity
    teams = list(dict.fromkeys(table["team"].to_list()))
    lists = list(dict.fromkeys(table["list"].to_list()))
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(teams)), 4.5))
    width = 0.8 / len(lists)
    for i, name in enumerate(lists):
        part = table.filter(pl.col("list") == name)
        value = part["precision"].fill_nan(None).fill_null(0).to_numpy()
        err = np.vstack([np.nan_to_num(value - part["precision_low"].to_numpy()), np.nan_to_num(part["precision_high"].to_numpy() - value)]).clip(min=0)
        ax.bar(np.arange(len(teams)) + i * width, value, width, yerr=err, capsize=2, label=name)
    ax.set_xticks(np.arange(len(teams)) + 0.4 - width / 2, teams, rotation=30, ha="right", fontsize=8)
    ax.set(ylabel="precision at capacity", title="Precision at capacity per team (95% intervals)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def save_deployed(evaluation, folder: Path) -> list[Path]:
    """Write the deployed evaluation's plots into folder."""
    return [deployed_precision_curve(evaluation, folder / "deployed_precision_at_k.png"),
            deployed_reliability(evaluation, folder / "deployed_calibration_top5.png"),
            deployed_at_capacity(evaluation, folder / "deployed_precision_per_team.png")]
