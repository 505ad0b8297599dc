"""The model registry in MLflow: log every training run, register it as candidate, promote by a person's decision.

Only aggregates and pseudonym-free artifacts go to MLflow: metrics per as-of date, the fairness
table per group, plots, the feature list, the data snapshot's hash and the model card.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from audit import log as audit_log
from audit.events import FairnessGateOverridden, ModelPromoted, ModelPromotionRefused, ModelRegistered
from models.scorer import RiskScorer

EXPERIMENT = "tidlig-scoring"
CHAMPION = "champion"
CANDIDATE = "candidate"
GATE_TAG = "fairness_gate"  # passed, failed or not_enough_data; anything but passed blocks promotion
FAILURES_TAG = "fairness_gate_failures"
# skops refuses to load types it was not told to trust; only ours and the numeric stack qualify.
TRUSTED_PREFIXES = ("models.", "sklearn.", "numpy.", "scipy.")


class PromotionRefused(RuntimeError):
    """The fairness gate failed and no override with a reason was given."""


@dataclass(frozen=True)
class Promotion:
    """A promotion that happened: what, to which alias, replacing which version, and whether the gate was overridden."""

    name: str
    version: str
    alias: str
    previous: str | None
    gate_passed: bool
    overridden: bool


def connect(tracking_uri: str, artifacts: Path | None = None) -> None:
    """Point MLflow at the tracking store; a local store keeps artifacts beside it, a server its own."""
    import mlflow

    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    mlflow.set_tracking_uri(tracking_uri)
    if mlflow.get_experiment_by_name(EXPERIMENT) is None:
        if artifacts is not None and not tracking_uri.startswith(("http://", "https://")):
            artifacts.mkdir(parents=True, exist_ok=True)
            mlflow.create_experiment(EXPERIMENT, artifact_location=artifacts.resolve().as_uri())
        else:
            mlflow.create_experiment(EXPERIMENT)
    mlflow.set_experiment(EXPERIMENT)


def trusted_types(model: RiskScorer) -> list[str]:
    """The types skops must be told to trust to load this model; refuses anything outside our stack."""
    import skops.io

    untrusted = skops.io.get_untrusted_types(data=skops.io.dumps(model))
    foreign = [t for t in untrusted if not t.startswith(TRUSTED_PREFIXES)]
    if foreign:
        raise ValueError(f"the model holds types outside {TRUSTED_PREFIXES}: {foreign}; it cannot be loaded safely")
    return sorted(untrusted)


def log_and_register(result: Any, name: str, *, engine: Any = None, actor: str = "system", deployed: Any = None) -> str:
    """Log a training run (params, metrics, features, data hash, plots, fairness, card), register it as candidate.

    With `deployed` (routing/deployed.py: the list teams would see, replayed over held-out weekly
    dates), its numbers, plots and fairness audit are logged too, and its fairness gate is the
    version's gate: what is deployed is what is judged.
    """
    import mlflow
    from mlflow import MlflowClient

    from models import card, plots
    from models.dataset import MODEL_FEATURES

    chosen = result.cv.metrics.filter(result.cv.metrics["candidate"] == result.candidate)
    gate = deployed.gate if deployed is not None else result.gate
    with mlflow.start_run(run_name=f"train-{result.holdout_as_of}") as run:
        mlflow.log_params({
            "candidate": result.candidate,
            "estimator": type(result.model.estimator_).__name__,
            "calibration": result.model.calibration,
            "grid": ",".join(sorted(set(result.cv.metrics["candidate"].to_list()))),
            "training_as_of": ",".join(str(d) for d in result.training_as_of),
            "test_as_of": ",".join(str(f.test_as_of) for f in result.cv.folds),
            "horizon_days": result.horizon_days,
            "cohort_version": result.definition.cohort_version,
            "label_version": result.definition.label_version,
            "rows": result.rows,
            "positives": result.positives,
            "capacity": json.dumps(result.cv.capacity, ensure_ascii=False),
            **{f"model.{k}": str(v)[:250] for k, v in result.model.get_params(deep=False).items() if k != "estimator"},
        })
        mlflow.log_metrics({k: v for k, v in result.metrics.items() if v == v})
        for step, fold in enumerate(result.cv.folds):
            at = chosen.filter(chosen["as_of"] == fold.test_as_of)
            mlflow.log_metrics({m: v for m, v in zip(at["metric"], at["value"]) if v == v}, step=step)
        for candidate, metric, mean in result.cv.summary().select("candidate", "metric", "mean").iter_rows():
            if metric in ("roc_auc", "average_precision", "brier", "calibration_error", "precision_at_capacity") and mean == mean:
                mlflow.log_metric(f"cv.{candidate}.{metric}", mean)
        mlflow.set_tags({"data_hash": result.data_hash, GATE_TAG: gate.verdict,
                         "cohort_version": result.definition.cohort_version, "label_version": result.definition.label_version})
        mlflow.log_dict({"features": list(MODEL_FEATURES)}, "features.json")
        mlflow.log_dict({"ventile_edges": result.model.ventile_edges_.tolist()}, "score_levels.json")
        mlflow.log_dict(json.loads(gate.to_json()), "fairness/gate.json")
        if deployed is not None:
            mlflow.log_metrics(deployed.metrics())
            mlflow.log_params({"deployed.dates": f"{deployed.dates[0]}..{deployed.dates[-1]} ({len(deployed.dates)} weekly)",
                               "deployed.rules_version": deployed.rules_version[:250]})
        mlflow.log_text(result.definition.markdown(result.horizon_days), "labels.md")
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            result.cv.metrics.write_csv(folder / "cv_metrics.csv")
            result.fairness.write_csv(folder / "fairness.csv")
            (folder / "fairness.json").write_text(result.fairness.write_json(), encoding="utf-8")
            (folder / "model_card.md").write_text(card.model_card(result, name=name, deployed=deployed), encoding="utf-8")
            for path in plots.save_all(result.cv, result.candidate, folder):
                mlflow.log_artifact(str(path), "plots")
            if deployed is not None:
                for path in plots.save_deployed(deployed, folder):
                    mlflow.log_artifact(str(path), "plots")
                # Aggregates only: the replay's rows (pseudonyms) never leave the process.
                for table in ("at_capacity", "differences", "curve"):
                    getattr(deployed, table).write_csv(folder / f"deployed_{table}.csv")
                    mlflow.log_artifact(str(folder / f"deployed_{table}.csv"), "evaluation")
                deployed.fairness.write_csv(folder / "fairness_deployed_list.csv")
                mlflow.log_artifact(str(folder / "fairness_deployed_list.csv"), "fairness")
            mlflow.log_artifact(str(folder / "cv_metrics.csv"), "evaluation")
            mlflow.log_artifact(str(folder / "fairness.csv"), "fairness")
            mlflow.log_artifact(str(folder / "fairness.json"), "fairness")
            mlflow.log_artifact(str(folder / "model_card.md"))
        info = mlflow.sklearn.log_model(
            result.model,
            name="model",
            registered_model_name=name,
            serialization_format="skops",
            skops_trusted_types=trusted_types(result.model),
            pip_requirements=["scikit-learn", "numpy", "scipy"],
        )
        run_id = run.info.run_id
    version = str(info.registered_model_version)
    client = MlflowClient()
    record_gate(name, version, gate)
    client.set_model_version_tag(name, version, "candidate_estimator", result.candidate)
    client.set_model_version_tag(name, version, "average_precision_mean", f"{result.metrics.get('average_precision_mean', float('nan')):.4f}")
    client.set_registered_model_alias(name, CANDIDATE, version)
    if engine is not None:
        metrics = {k: round(v, 6) for k, v in result.metrics.items() if v == v}
        with engine.begin() as conn:
            audit_log.append(conn, ModelRegistered(name=name, version=version, metrics=metrics | {"mlflow_run": run_id}), actor=actor)
    return version


def record_gate(name: str, version: str, gate: Any) -> None:
    """Tag a version with its fairness gate's verdict and findings, which promotion reads."""
    from mlflow import MlflowClient

    client = MlflowClient()
    client.set_model_version_tag(name, version, GATE_TAG, gate.verdict)
    client.set_model_version_tag(name, version, FAILURES_TAG, _findings_tag(gate.failures))


def _findings_tag(findings: tuple[str, ...], limit: int = 4900) -> str:
    """The gate's findings as a JSON list that fits a tag (MLflow keeps 5000 characters), whole findings only."""
    kept = list(findings)
    while len(text := json.dumps(kept, ensure_ascii=False)) > limit:
        kept = kept[: len(kept) // 2 if len(kept) > 8 else len(kept) - 1]
    dropped = len(findings) - len(kept)
    return json.dumps(kept + [f"... and {dropped} more in fairness/gate.json"], ensure_ascii=False) if dropped else text


def set_alias(name: str, version: str, alias: str = CHAMPION) -> None:
    """Point an alias (champion by default) at a registered version."""
    from mlflow import MlflowClient

    MlflowClient().set_registered_model_alias(name, alias, version)


def alias_version(name: str, alias: str) -> str | None:
    """The version an alias points at, or None."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    try:
        return str(MlflowClient().get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None


def load(name: str, alias: str = CHAMPION) -> tuple[RiskScorer, str] | None:
    """The model behind the alias and its version, or None when no version carries the alias."""
    version = alias_version(name, alias)
    if version is None:
        return None
    return load_version(name, version), version


def load_version(name: str, version: str) -> RiskScorer:
    """The model of one registered version; LookupError when there is no such version."""
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        return mlflow.sklearn.load_model(f"models:/{name}/{version}")
    except MlflowException:
        raise LookupError(f"model {name!r} has no version {version!r}; see `tidlig models list`") from None


def gate_of(name: str, version: str) -> tuple[bool, list[str]]:
    """The fairness gate recorded on a version; a version without one counts as failed."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    try:
        tags = MlflowClient().get_model_version(name, version).tags
    except MlflowException:
        raise LookupError(f"model {name!r} has no version {version!r}; see `tidlig models list`") from None
    if tags.get(GATE_TAG) == "passed":
        return True, []
    failures = json.loads(tags.get(FAILURES_TAG, "[]") or "[]")
    return False, failures or ["no fairness audit is recorded for this version"]


def promote(
    name: str, version: str, *, by: str, reason: str, engine: Any, override: str | None = None, alias: str = CHAMPION
) -> Promotion:
    """Move the alias to the version if its fairness gate passed, or if a person overrides it with a reason.

    A refusal is written to the audit log before PromotionRefused is raised; a promotion (and an
    override) is written in the same transaction that moves the alias.
    """
    if not by or not by.strip():
        raise ValueError("a promotion needs the name of the person deciding (--by)")
    if not reason or not reason.strip():
        raise ValueError("a promotion needs a reason (--reason)")
    if override is not None and not override.strip():
        raise ValueError("an override needs a reason of its own; leave it out to respect the gate")
    passed, failures = gate_of(name, version)
    if not passed and override is None:
        with engine.begin() as conn:
            audit_log.append(conn, ModelPromotionRefused(name=name, version=version, alias=alias, by=by, reason=reason,
                                                         gate_failures=failures), actor=by)
        verdict = "failed the fairness gate" if not all(f.startswith("not enough data") for f in failures) else \
            "has a fairness gate that could not judge every group (not enough data)"
        raise PromotionRefused(
            f"{name} version {version} {verdict} ({len(failures)} finding(s): {'; '.join(failures[:3])}"
            f"{' ...' if len(failures) > 3 else ''}); promote it only with --override-gate REASON"
        )
    previous = alias_version(name, alias)
    with engine.begin() as conn:
        if not passed:
            audit_log.append(conn, FairnessGateOverridden(name=name, version=version, by=by, reason=override,
                                                          gate_failures=failures), actor=by)
        audit_log.append(conn, ModelPromoted(name=name, version=version, alias=alias, by=by, reason=reason), actor=by)
        # Last, inside the transaction: if MLflow refuses, the audit rows roll back with it.
        set_alias(name, version, alias)
    return Promotion(name=name, version=version, alias=alias, previous=previous, gate_passed=passed, overridden=not passed)


def versions(name: str | None = None) -> list[dict[str, Any]]:
    """Registered versions (of one model or all): version, aliases, gate, mean AP, created."""
    from mlflow import MlflowClient

    client = MlflowClient()
    names = [name] if name else [m.name for m in client.search_registered_models()]
    out = []
    for model_name in names:
        aliases: dict[str, list[str]] = {}
        for alias, version in client.get_registered_model(model_name).aliases.items():
            aliases.setdefault(str(version), []).append(alias)
        for v in client.search_model_versions(f"name='{model_name}'"):
            out.append({
                "name": model_name, "version": str(v.version), "aliases": sorted(aliases.get(str(v.version), [])),
                "gate": v.tags.get(GATE_TAG, "unknown"), "estimator": v.tags.get("candidate_estimator", ""),
                "average_precision": v.tags.get("average_precision_mean", ""), "created": v.creation_timestamp,
            })
    return sorted(out, key=lambda r: (r["name"], int(r["version"])))
