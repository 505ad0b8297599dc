"""The retraining flow pauses for a person's decision, and the decision lands in the audit log."""

from __future__ import annotations

import threading
import time
from datetime import date

import httpx
import pytest

from audit.log import read
from casework.store import Store
from flows.retrain import training_dates
from sources.synth import SynthSpec, generate
from tidlig.settings import load_config

# Only stops a hung test: on a busy machine, training and the steps after an approval take minutes.
PATIENCE = 900


def test_training_dates_are_quarterly_and_end_before_outcomes_are_unknown():
    dates = training_dates(date(2026, 11, 15), 365, 4)
    assert dates == [date(2024, 11, 1), date(2025, 2, 1), date(2025, 5, 1), date(2025, 8, 1)]
    assert all(d + __import__("datetime").timedelta(days=365) < date(2026, 11, 15) for d in dates)


@pytest.mark.slow
@pytest.mark.prefect
def test_retraining_waits_for_approval_and_records_who_decided(tmp_path, monkeypatch, prefect_api):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.responses import SetStateStatus

    from flows.retrain import RetrainParams, retrain
    from models import registry

    monkeypatch.setenv("TIDLIG_HOME", str(tmp_path))
    monkeypatch.delenv("TIDLIG_DATABASE_URL", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    config = load_config()
    folder = generate(SynthSpec(persons=2500, seed=13, start=config.synth.start, end=config.synth.end)).write(tmp_path)

    outcome: dict = {}

    def run() -> None:
        try:
            outcome["summary"] = retrain(RetrainParams(as_of=date(2026, 11, 1), extracts=folder))
        except BaseException as exc:  # handed to the test below, not lost in the thread
            outcome["error"] = exc

    runner = threading.Thread(target=run, daemon=True)
    runner.start()
    # No step is timed: each wait ends when the flow gets there (or stops). The bound only ends a hang.
    deadline = time.monotonic() + PATIENCE
    with get_client(sync_client=True) as client:
        while (paused := _waiting_for_input(client)) is None and runner.is_alive():
            assert time.monotonic() < deadline, f"the retraining flow did not pause for approval in {PATIENCE} s"
            time.sleep(0.5)
        assert paused is not None, f"the retraining flow ended without pausing for approval: {outcome}"
        # The client's own call, not prefect.flow_runs.resume_flow_run: that one returns an un-awaited
        # coroutine, and resumes nothing, when it takes the calling thread for an async context.
        answer = client.resume_flow_run(paused.id, run_input={
            "approve": True, "by": "Lone Leder", "reason": "Bedre præcision ved kapacitet",
            "override_gate": "Syntetiske data; aldersforskelle i basisrater er reelle",
        })
    assert answer.status == SetStateStatus.ACCEPT, answer
    runner.join(timeout=PATIENCE)
    assert not runner.is_alive(), f"the retraining flow did not finish in {PATIENCE} s after its approval"
    if "error" in outcome:
        raise outcome["error"]
    summary = outcome["summary"]
    assert summary.outcome == "promoted"

    engine = Store.from_url(f"sqlite:///{tmp_path / 'tidlig.db'}").engine
    promoted = [e for e in read(engine) if e.kind == "model.promoted"]
    assert promoted and promoted[-1].actor == "Lone Leder"
    registry.connect(f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert registry.alias_version(config.model.name, "champion") == summary.version
    # The candidate was measured as deployed, and that list's fairness gate is the version's gate.
    from mlflow import MlflowClient

    version = MlflowClient().get_model_version(config.model.name, summary.version)
    metrics = MlflowClient().get_run(version.run_id).data.metrics
    assert metrics["deployed.dates"] >= 12 and "deployed.deployed.precision_at_capacity" in metrics
    assert version.tags[registry.GATE_TAG] in ("passed", "failed", "not_enough_data")
    assert summary.gate_passed == (version.tags[registry.GATE_TAG] == "passed")


def _waiting_for_input(client):
    """The paused flow run, once it can take its input.

    Prefect marks a run paused before the run stores the schema of the input it waits for, and
    refuses input until then ("Run input schema not found"): paused alone is not ready.
    """
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterState, FlowRunFilterStateType
    from prefect.client.schemas.objects import StateType
    from prefect.exceptions import ObjectNotFound

    paused = client.read_flow_runs(flow_run_filter=FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.PAUSED]))))
    for run in paused:
        keyset = run.state.state_details.run_input_keyset
        try:
            client.read_flow_run_input(run.id, keyset["schema"])
        except (ObjectNotFound, httpx.HTTPStatusError):
            continue
        return run
    return None


@pytest.mark.slow
@pytest.mark.prefect
def test_the_weekly_data_quality_flow_accounts_for_every_row(tmp_path, monkeypatch, prefect_api):
    from flows.quality import QualityParams, data_quality

    monkeypatch.setenv("TIDLIG_HOME", str(tmp_path))
    monkeypatch.delenv("TIDLIG_DATABASE_URL", raising=False)
    config = load_config()
    folder = generate(SynthSpec(persons=600, seed=3, start=config.synth.start, end=config.synth.end)).write(tmp_path)
    report = data_quality(QualityParams(extracts=folder))
    assert {name for name, *_ in report.sources} == {p.stem for p in folder.glob("*.parquet")}
    assert all(rows_in == valid + quarantined for _, rows_in, valid, quarantined in report.sources)
    assert report.data_docs.exists()
