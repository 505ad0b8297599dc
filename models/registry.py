"""The model registry in MLflow: log every training run, register it, load the champion."""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path

from models.scorer import RiskScorer
from models.train import MODEL_FEATURES, TrainingResult

EXPERIMENT = "tidlig-scoring"
CHAMPION = "champion"
CANDIDATE = "candidate"
# skops refuses to load classes it has not been told to trust; these are ours and sklearn's.
TRUSTED_TYPES = ["models.scorer.RiskScorer", "numpy.dtype"]


def connect(tracking_uri: str, artifacts: Path) -> None:
    """Point MLflow at the tracking store, with artifacts kept beside it rather than in the cwd."""
    import mlflow

    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    mlflow.set_tracking_uri(tracking_uri)
    if mlflow.get_experiment_by_name(EXPERIMENT) is None:
        artifacts.mkdir(parents=True, exist_ok=True)
        mlflow.create_experiment(EXPERIMENT, artifact_location=artifacts.resolve().as_uri())
    mlflow.set_experiment(EXPERIMENT)


def log_and_register(result: TrainingResult, name: str) -> str:
    """Log a training run (params, metrics, features, data hash), register it and tag it candidate."""
    import mlflow
    from mlflow import MlflowClient

    with mlflow.start_run(run_name=f"train-{result.holdout_as_of}"):
        mlflow.log_params({
            "estimator": type(result.model).__name__,
            "C": result.model.C,
            "training_as_of": ",".join(str(d) for d in result.training_as_of),
            "holdout_as_of": str(result.holdout_as_of),
            "rows": result.rows,
            "positives": result.positives,
        })
        mlflow.log_metrics(result.metrics)
        mlflow.set_tag("data_hash", result.data_hash)
        mlflow.log_dict({"features": list(MODEL_FEATURES)}, "features.json")
        mlflow.log_dict({"ventile_edges": result.model.ventile_edges_.tolist()}, "score_levels.json")
        info = mlflow.sklearn.log_model(
            result.model,
            name="model",
            registered_model_name=name,
            serialization_format="skops",
            skops_trusted_types=TRUSTED_TYPES,
            pip_requirements=["scikit-learn", "numpy"],
        )
    version = str(info.registered_model_version)
    MlflowClient().set_registered_model_alias(name, CANDIDATE, version)
    return version


def set_alias(name: str, version: str, alias: str = CHAMPION) -> None:
    """Point an alias (champion by default) at a registered version."""
    from mlflow import MlflowClient

    MlflowClient().set_registered_model_alias(name, alias, version)


def load(name: str, alias: str = CHAMPION) -> tuple[RiskScorer, str] | None:
    """The model behind the alias and its version, or None when no version carries the alias."""
    import mlflow
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    try:
        version = MlflowClient().get_model_version_by_alias(name, alias).version
    except MlflowException:
        return None
    model = mlflow.sklearn.load_model(f"models:/{name}/{version}")
    return model, str(version)
