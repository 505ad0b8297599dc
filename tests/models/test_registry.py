"""Training logs everything to MLflow; promotion is a person's decision, refused by a failed gate unless overridden."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import date
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from audit.log import read, verify
from casework.store import Store
from models import registry
from models.dataset import MODEL_FEATURES
from sources.synth import SynthSpec, generate
from tidlig.cli import app

pytestmark = pytest.mark.slow
DATES = [date(2023, 5, 1), date(2023, 11, 1), date(2024, 5, 1), date(2024, 11, 1), date(2025, 5, 1)]


@pytest.fixture(scope="module")
def trained(mlflow_server):
    """One small training for the module; the MLflow server starts up while it runs."""
    from models.train import train

    town = generate(SynthSpec(persons=2500, seed=7, start=date(2021, 1, 1), end=date(2026, 10, 31)))
    return train(town.extracts, DATES, 365, oracle=getattr(town, "oracle", None), n_boot=20)


@pytest.fixture
def registered(trained, tidlig_home: Path, monkeypatch):
    uri = f"sqlite:///{tidlig_home / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    registry.connect(uri, tidlig_home / "mlartifacts")
    store = Store.from_url(f"sqlite:///{tidlig_home / 'tidlig.db'}")
    store.create_schema()
    version = registry.log_and_register(trained, "m", engine=store.engine)
    return trained, version, store, uri


def test_a_training_run_logs_metrics_plots_fairness_and_card(registered):
    import mlflow

    result, version, store, _ = registered
    assert registry.alias_version("m", "candidate") == version and registry.alias_version("m", "champion") is None
    run = mlflow.search_runs(experiment_names=[registry.EXPERIMENT], output_format="list")[0]
    assert run.data.tags["data_hash"] == result.data_hash and run.data.params["candidate"] == result.candidate
    assert "average_precision_mean" in run.data.metrics and "cv.points.average_precision" in run.data.metrics
    files = {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id)}
    assert {"features.json", "model_card.md", "labels.md", "plots", "fairness", "evaluation"} <= files
    plots = {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id, "plots")}
    assert plots == {"plots/calibration.png", "plots/precision_at_k.png", "plots/metrics_over_time.png"}
    card = Path(mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path="model_card.md")).read_text()
    for heading in ("## Intended use", "## Data", "## Fairness", "## Limits"):
        assert heading in card
    model, loaded = registry.load("m", "candidate")
    assert loaded == version
    X = np.zeros((3, len(MODEL_FEATURES)))
    assert model.score_levels(X).tolist() == result.model.score_levels(X).tolist()
    assert [e.kind for e in read(store.engine)] == ["model.registered"]


def test_promotion_is_refused_by_a_failed_gate_and_accepted_with_an_override(registered, monkeypatch):
    from mlflow import MlflowClient

    _, version, store, uri = registered
    client = MlflowClient()
    client.set_model_version_tag("m", version, registry.GATE_TAG, "failed")
    client.set_model_version_tag("m", version, registry.FAILURES_TAG, json.dumps(["fpr disparity 1.40 for district=Nord"]))
    runner = CliRunner()
    monkeypatch.setenv("TIDLIG_DATABASE_URL", str(store.engine.url))
    base = ["models", "promote", "m", version, "--by", "Birgit Leder", "--reason", "better AP", "--tracking-uri", uri]

    refused = runner.invoke(app, base)
    assert refused.exit_code == 1 and "fairness gate" in refused.output and "district=Nord" in refused.output
    assert registry.alias_version("m", "champion") is None

    accepted = runner.invoke(app, [*base, "--override-gate", "Nord's higher FPR reviewed with the DPO"])
    assert accepted.exit_code == 0, accepted.output
    assert registry.alias_version("m", "champion") == version

    events = read(store.engine)
    assert [e.kind for e in events] == ["model.registered", "model.promotion_refused", "model.gate_overridden", "model.promoted"]
    assert events[1].payload["gate_failures"] == ["fpr disparity 1.40 for district=Nord"] and events[1].actor == "Birgit Leder"
    assert events[2].payload["reason"] == "Nord's higher FPR reviewed with the DPO"
    assert events[3].payload == {"name": "m", "version": version, "alias": "champion", "by": "Birgit Leder", "reason": "better AP"}
    assert verify(store.engine).ok

    listed = runner.invoke(app, ["models", "list", "--tracking-uri", uri])
    assert listed.exit_code == 0 and "champion" in listed.output and "candidate" in listed.output


def test_a_passed_gate_promotes_without_override_in_the_name_of_the_person_deciding(registered):
    from mlflow import MlflowClient

    _, version, store, _ = registered
    MlflowClient().set_model_version_tag("m", version, registry.GATE_TAG, "passed")
    assert registry.alias_version("m", "champion") is None  # registering never makes a champion
    done = registry.promote("m", version, by="Birgit Leder", reason="first model", engine=store.engine)
    assert registry.alias_version("m", "champion") == version
    assert done.previous is None and not done.overridden
    promoted = [e for e in read(store.engine) if e.kind == "model.promoted"]
    assert [e.actor for e in promoted] == ["Birgit Leder"]
    with pytest.raises(ValueError, match="reason"):
        registry.promote("m", version, by="Birgit Leder", reason=" ", engine=store.engine)


def test_training_audits_origin_but_never_learns_from_it(trained):
    from models.card import model_card

    assert "origin_group" in trained.fairness_groups
    origins = trained.fairness.filter(trained.fairness["attribute_name"] == "origin_group")["attribute_value"]
    assert set(origins) == {"danish", "western", "non_western"}
    assert not {"origin_group", "origin"} & set(MODEL_FEATURES)
    card = model_card(trained, name="m")
    assert "Origin is used\nonly for this audit, never as a model input" in card and "Not audited" not in card
    assert trained.gate.checked["metrics"] == ["fnr", "fdr"]


class _Server:
    """A real `mlflow server` subprocess on a free port: SQLite backend, artifacts served from a folder."""

    def __init__(self, folder: Path) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        self.folder, self.url, self.log = folder, f"http://127.0.0.1:{port}", folder / "mlflow-server.log"
        command = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
                   "--backend-store-uri", f"sqlite:///{folder / 'server.db'}", "--artifacts-destination", str(folder / "served")]
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                                            env=os.environ | {"MLFLOW_DISABLE_TELEMETRY": "true"})

    def ready(self) -> str:
        """The server's URL once /health answers (polled; the bound is generous for a busy machine)."""
        deadline = time.monotonic() + 120
        while True:
            if self.process.poll() is not None:
                pytest.fail(f"mlflow server exited with {self.process.returncode}:\n{self.log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as answer:
                    if answer.status == 200:
                        return self.url
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"mlflow server not ready at {self.url}:\n{self.log.read_text()[-3000:]}")
                time.sleep(0.2)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    server = _Server(tmp_path_factory.mktemp("mlflow-server"))
    yield server
    server.stop()


def test_register_list_and_promote_against_an_mlflow_server(trained, mlflow_server, tidlig_home: Path, monkeypatch):
    import mlflow
    from mlflow import MlflowClient

    url = mlflow_server.ready()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
    store = Store.from_url(f"sqlite:///{tidlig_home / 'tidlig.db'}")
    store.create_schema()
    monkeypatch.setenv("TIDLIG_DATABASE_URL", str(store.engine.url))
    try:
        registry.connect(url)
        version = registry.log_and_register(trained, "served", engine=store.engine)
        # The model and its card went through the server to its artifact folder, not to a local store.
        assert any(p.name == "model_card.md" for p in (mlflow_server.folder / "served").rglob("*"))
        MlflowClient().set_model_version_tag("served", version, registry.GATE_TAG, "failed")
        MlflowClient().set_model_version_tag("served", version, registry.FAILURES_TAG, json.dumps(["fnr disparity 1.60 for age_band=12-17"]))
        runner = CliRunner()
        listed = runner.invoke(app, ["models", "list", "--tracking-uri", url])
        assert listed.exit_code == 0 and "served" in listed.output and "candidate" in listed.output, listed.output
        base = ["models", "promote", "served", version, "--by", "Birgit Leder", "--reason", "monthly retraining",
                "--tracking-uri", url]
        refused = runner.invoke(app, base)
        assert refused.exit_code == 1 and "age_band=12-17" in refused.output
        accepted = runner.invoke(app, [*base, "--override-gate", "teenagers' FNR reviewed with the DPO"])
        assert accepted.exit_code == 0, accepted.output
        assert registry.alias_version("served", "champion") == version
        model, loaded = registry.load("served")
        assert loaded == version and model.score_levels(np.zeros((2, len(MODEL_FEATURES)))).shape == (2,)
        events = read(store.engine)
        assert [e.kind for e in events] == ["model.registered", "model.promotion_refused", "model.gate_overridden", "model.promoted"]
        assert events[3].payload["by"] == "Birgit Leder" and verify(store.engine).ok
    finally:
        mlflow.set_tracking_uri(None)  # forget the server (and its env variable) before it stops


def test_with_the_deployed_evaluation_its_numbers_plots_and_gate_are_the_versions(trained, tidlig_home: Path, monkeypatch):
    import mlflow

    from routing.deployed import evaluate_deployed, evaluation_dates
    from routing.table import load_routing_table
    from rules.engine import load_rules
    from tidlig.settings import load_config

    town = generate(SynthSpec(persons=2500, seed=5, start=date(2021, 1, 1), end=date(2026, 10, 31)))
    dates = evaluation_dates(town.extracts, 365, after=max(trained.training_as_of))[:12]
    deployed = evaluate_deployed(town.extracts, dates, model=trained.model, model_version="m/candidate", ruleset=load_rules(),
                                 table=load_routing_table(), policy=load_config().ranking.policy(), oracle=town.oracle, n_boot=100)
    uri = f"sqlite:///{tidlig_home / 'mlflow.db'}"
    registry.connect(uri, tidlig_home / "mlartifacts")
    store = Store.from_url(f"sqlite:///{tidlig_home / 'tidlig.db'}")
    store.create_schema()

    version = registry.log_and_register(trained, "d", engine=store.engine, deployed=deployed)

    tags = mlflow.MlflowClient().get_model_version("d", version).tags
    assert tags[registry.GATE_TAG] == deployed.gate.verdict
    run = mlflow.get_run(mlflow.MlflowClient().get_model_version("d", version).run_id)
    assert run.data.metrics["deployed.deployed.precision_at_capacity"] == pytest.approx(deployed.value("deployed")[0])
    assert "deployed.diff.deployed_minus_points.precision" in run.data.metrics
    plots = {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id, "plots")}
    assert {"plots/deployed_precision_at_k.png", "plots/deployed_calibration_top5.png", "plots/deployed_precision_per_team.png"} <= plots
    card = Path(mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path="model_card.md")).read_text()
    assert "## The deployed list at capacity" in card and "## Fairness of the deployed list" in card
    passed, findings = registry.gate_of("d", version)
    assert passed == deployed.gate.passed and findings == ([] if passed else list(deployed.gate.failures)[: len(findings)])
