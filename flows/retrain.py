"""Training flows: the first model on the configured dates, and the monthly retraining that waits for a person's approval.

Neither makes a model champion by itself: that is a person's decision (`tidlig models promote`,
or the approval the retraining waits for).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import polars as pl
from prefect import flow, get_run_logger, pause_flow_run, task
from prefect.task_runners import ThreadPoolTaskRunner
from prefect.cache_policies import NONE
from prefect.exceptions import FlowPauseTimeout
from prefect.input import RunInput
from pydantic import BaseModel, ConfigDict, Field

from audit.events import CandidateRejected
from audit.log import append
from casework.store import Store
from casework.accounts import Accounts
from flows.nightly import SIDE_BY_SIDE, ingest, team_capacity, teams_at_capacity, today_in_copenhagen
from models import registry
from models.train import TrainingResult, train
from routing.deployed import DeployedEvaluation, evaluate_deployed, evaluation_dates
from routing.route import RankingPolicy
from rules.engine import load_rules
from tidlig import logs, settings
from validate.context import gx_context


class RetrainParams(BaseModel):
    """What a retraining run needs: the date it runs as of (default today), and optionally other extracts or config."""

    model_config = ConfigDict(frozen=True)

    as_of: date | None = None
    extracts: Path | None = None
    config: Path | None = None


class Approval(RunInput):
    """A person's decision on the candidate: approve or reject, with their name and a reason."""

    approve: bool = Field(description="True promotes the candidate to champion; False keeps the current champion.")
    by: str = Field(min_length=1, description="The name of the person deciding.")
    reason: str = Field(min_length=1, description="Why: recorded in the audit log.")
    override_gate: str | None = Field(
        default=None, description="Only to promote despite a failed fairness gate: the reason for overriding it."
    )


@dataclass(frozen=True)
class TrainSummary:
    """The candidate a training run registered."""

    name: str
    version: str
    candidate: str
    gate_passed: bool


@dataclass(frozen=True)
class RetrainSummary:
    """What a retraining run ended with."""

    version: str
    candidate: str
    gate_passed: bool
    outcome: str  # "promoted", "rejected", "refused by the fairness gate" or "no decision in time"


def training_dates(as_of: date, horizon_days: int, quarters: int) -> list[date]:
    """Quarterly as-of dates ending a horizon plus a quarter before as_of, so every outcome is known."""
    latest = as_of - timedelta(days=horizon_days + 92)
    latest = latest.replace(day=1)
    dates = []
    year, month = latest.year, latest.month
    for _ in range(quarters):
        dates.append(date(year, month, 1))
        month -= 3
        if month < 1:
            month += 12
            year -= 1
    return sorted(dates)


@task(cache_policy=NONE)
def train_candidate(sources: dict[str, pl.DataFrame], dates: list[date], horizon_days: int, routing_table: Path | None) -> TrainingResult:
    """Cross-validate the model grid over time, refit the best and audit its fairness."""
    team_of, capacity = team_capacity(routing_table)
    return train(sources, dates, horizon_days, team_of=team_of, capacity=capacity)


@task(cache_policy=NONE)
def evaluate_candidate(
    sources: dict[str, pl.DataFrame], result: TrainingResult, name: str, rules_folder: Path | None,
    routing_table: Path | None, capacities: dict[str, int], policy: RankingPolicy,
) -> DeployedEvaluation:
    """Replay the nightly decision with the candidate over the weekly dates after its training window; measure the teams' lists."""
    dates = evaluation_dates(sources, result.horizon_days, after=max(result.training_as_of))
    ruleset = load_rules(rules_folder)
    return evaluate_deployed(sources, dates, model=result.model, model_version=f"{name}/candidate", ruleset=ruleset,
                             table=teams_at_capacity(routing_table, capacities), policy=policy, horizon_days=result.horizon_days,
                             trained_until=max(result.training_as_of))


@task(cache_policy=NONE, retries=2, retry_delay_seconds=10)
def register_candidate(result: TrainingResult, name: str, store: Store, deployed: DeployedEvaluation | None = None) -> str:
    """Log the training run and the deployed list's evaluation to MLflow; register the model with the alias candidate (audited)."""
    return registry.log_and_register(result, name, engine=store.engine, deployed=deployed)


@task(cache_policy=NONE)
def decide(approval: Approval, name: str, version: str, store: Store) -> str:
    """Carry out the person's decision: promote through the fairness gate, or record the rejection."""
    if not approval.approve:
        with store.engine.begin() as conn:
            append(conn, CandidateRejected(name=name, version=version, by=approval.by, reason=approval.reason), actor=approval.by)
        return "rejected"
    try:
        registry.promote(name, version, by=approval.by, reason=approval.reason, engine=store.engine, override=approval.override_gate)
    except registry.PromotionRefused as refused:
        get_run_logger().warning("Candidate %s/%s not promoted: %s", name, version, refused)
        return "refused by the fairness gate"
    return "promoted"


def _train_and_register(
    store: Store, run_id: str, params: RetrainParams, config: settings.Config, dates: list[date], *, evaluate: bool,
) -> tuple[TrainingResult, str, DeployedEvaluation | None]:
    """Read and validate the extracts, train on the dates, measure the list it would deploy, and register it as candidate.

    The very first model has no weeks after its training window to be replayed on; a retrained one has.
    """
    home = settings.home()
    logs.redact_prefect_logs()
    registry.connect(settings.mlflow_tracking_uri(), home / "mlartifacts")
    folder = params.extracts or settings.extracts_location(config)
    sources = ingest(store, run_id, folder, gx_context(home), config.validate_.max_invalid_share, home).sources
    result = train_candidate(sources, dates, config.model.horizon_days, config.routing.table)
    deployed = None
    if evaluate:
        capacities = {team.id: team.weekly_capacity for team in Accounts(store.engine).list_teams()}
        deployed = evaluate_candidate(sources, result, config.model.name, config.rules.folder, config.routing.table, capacities,
                                      config.ranking.policy())
    return result, register_candidate(result, config.model.name, store, deployed), deployed


def _started(params: RetrainParams, flow_name: str) -> tuple[date, settings.Config, Store, str]:
    """The run's as-of date, config, store and id, with the run recorded as started."""
    from prefect.runtime import flow_run

    as_of = params.as_of or today_in_copenhagen()
    config = settings.load_config(params.config)
    store = Store.from_url(settings.database_url())
    store.create_schema()
    run_id = str(flow_run.id or f"local-{flow_name}-{as_of}")
    store.start_run(run_id, as_of, flow_name)
    return as_of, config, store, run_id


@flow(name="train", log_prints=True, task_runner=ThreadPoolTaskRunner(max_workers=SIDE_BY_SIDE))
def train_first(params: RetrainParams) -> TrainSummary:
    """Train a model on the config's training dates and register it as candidate; a person promotes it, or not."""
    _, config, store, run_id = _started(params, "train")
    try:
        result, version, _ = _train_and_register(store, run_id, params, config, config.model.training_as_of, evaluate=False)
    except Exception as exc:
        store.fail_run(run_id, type(exc).__name__, str(exc))
        raise
    store.finish_run(run_id, "completed", {"version": version, "candidate": result.candidate, "gate_passed": result.gate.passed})
    return TrainSummary(config.model.name, version, result.candidate, result.gate.passed)


@flow(name="retrain", log_prints=True, task_runner=ThreadPoolTaskRunner(max_workers=SIDE_BY_SIDE))
def retrain(params: RetrainParams) -> RetrainSummary:
    """Train a candidate on rolling quarterly dates, then pause until a named person approves or rejects it."""
    as_of, config, store, run_id = _started(params, "retrain")
    try:
        dates = training_dates(as_of, config.model.horizon_days, config.model.retrain_quarters)
        result, version, deployed = _train_and_register(store, run_id, params, config, dates, evaluate=True)
        gate = "passed" if deployed.gate.passed else f"{deployed.gate.verdict.replace('_', ' ').upper()}: promoting it needs override_gate with a reason"
        print(f"Candidate {config.model.name}/{version} ({result.candidate}) is registered; the deployed list's precision at capacity "
              f"{deployed.value('deployed')[0]:.3f} (points rule {deployed.value('points')[0]:.3f}) over {len(deployed.dates)} weeks; "
              f"fairness gate {gate}. Waiting for approval.")
        approval = pause_flow_run(
            wait_for_input=Approval,
            timeout=int(config.model.approval_timeout_hours * 3600),
            poll_interval=5,
        )
        outcome = decide(approval, config.model.name, version, store)
    except FlowPauseTimeout:
        # The candidate keeps its alias; the champion stays. A person can still promote it later.
        outcome = "no decision in time"
    except Exception as exc:
        store.fail_run(run_id, type(exc).__name__, str(exc))
        raise
    store.finish_run(run_id, "completed", {"version": version, "candidate": result.candidate, "outcome": outcome})
    return RetrainSummary(version=version, candidate=result.candidate, gate_passed=deployed.gate.passed, outcome=outcome)
