"""The nightly flow: read, validate, link, featurise, score, apply rules, route and store flags."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import polars as pl
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NONE
from pydantic import BaseModel, ConfigDict

from casework.store import Store
from features.table import feature_table
from models import registry
from models.labels import cohort, open_case_teams
from models.scorer import RiskScorer
from models.explain import signals
from models.train import MODEL_FEATURES, matrix, train
from routing.flags import FlagDraft
from routing.route import assign_teams, route
from routing.table import load_routing_table
from rules.engine import RuleSet, evaluate, load_rules
from rules.publish import record_version
from sources.pseudonym import load_key, pseudonymise
from sources.readers import Extract, read_extract
from sources.registry import Source, load_registry
from tidlig import settings
from validate.context import data_docs_index, gx_context
from validate.contract import InvalidShareError, Validation, validate_extract

# Frames are passed between tasks in memory; hashing them for a cache key would cost more than
# the tasks themselves, and a run is keyed by its as-of date in the store instead.
def _transient(task, task_run, state) -> bool:
    """Retry only what a retry can fix: I/O and database connection errors, never bad data."""
    from sqlalchemy.exc import OperationalError

    try:
        state.result()
    except (OSError, OperationalError):
        return True
    except Exception:
        return False
    return False


stage = task(cache_policy=NONE)
io_stage = task(cache_policy=NONE, retries=2, retry_delay_seconds=5, retry_condition_fn=_transient)


class NightlyParams(BaseModel):
    """What a nightly run needs: the as-of date (default today), and optionally other extracts or config."""

    model_config = ConfigDict(frozen=True)

    as_of: date | None = None
    extracts: Path | None = None
    config: Path | None = None


@dataclass(frozen=True)
class NightlySummary:
    """What a run did, for the CLI and the audit log."""

    run_id: str
    as_of: date
    model_version: str
    rules_version: str
    flags_created: int
    flags_total: int
    rows_quarantined: int
    data_docs: Path


@io_stage
def read_source(folder: Path, source: Source) -> Extract:
    """Read one register's extract from the extracts folder."""
    return read_extract(folder, source)


@stage
def validate_source(extract: Extract, source: Source, context: Any, max_invalid_share: float) -> Validation:
    """Check one extract against its data contract; bad rows go to quarantine with the reason."""
    return validate_extract(extract, source, context=context, max_invalid_share=max_invalid_share)


@io_stage
def record_validation(store: Store, run_id: str, validation: Validation) -> None:
    """Store the row accounting and quarantined rows of one source."""
    store.record_source_check(
        run_id,
        validation.source,
        rows_in=validation.rows_in,
        rows_valid=validation.rows_valid,
        rows_quarantined=validation.rows_quarantined,
        quarantine_rows=validation.quarantine.drop("source").to_dicts(),
    )


@stage
def pseudonymise_source(validation: Validation, source: Source, key: bytes) -> pl.DataFrame:
    """Replace CPR numbers by pseudonyms before any later stage sees the rows."""
    return pseudonymise(validation.valid, source.person_id_columns, key)


@stage
def build_features(sources: dict[str, pl.DataFrame], as_of: date) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Link persons and families and compute every catalogue feature known on as_of; also the parent-child links."""
    return feature_table(sources, as_of)


@io_stage
def champion_model(
    sources: dict[str, pl.DataFrame], name: str, training_as_of: list[date], horizon_days: int,
    store: Store, routing_table: Path | None = None,
) -> tuple[RiskScorer, str]:
    """Load the champion model; if none is registered yet, train, register and crown the first (audited)."""
    found = registry.load(name)
    if found is not None:
        return found
    team_of, capacity = _team_capacity(routing_table)
    result = train(sources, training_as_of, horizon_days, team_of=team_of, capacity=capacity)
    version = registry.log_and_register(result, name, engine=store.engine)
    # The very first model has nothing to be compared against; later ones wait for a person.
    registry.crown_first(name, version, engine=store.engine, gate_passed=result.gate.passed)
    get_run_logger().warning(
        "No champion was registered: trained %s version %s (%s, fairness gate %s) and crowned it; recorded in the audit log",
        name, version, result.candidate, "passed" if result.gate.passed else "FAILED",
    )
    return registry.load(name)


def _team_capacity(table_path: Path | None):
    """The family teams' capacities and who goes to which team, for measuring precision at capacity."""
    table = load_routing_table(table_path) if table_path else load_routing_table()

    def team_of(frame: pl.DataFrame) -> pl.Series:
        # The scored cohort has no open case by definition.
        return assign_teams(frame.with_columns(case_team=pl.lit(None, dtype=pl.String)), table)["team"]

    return team_of, {team.id: team.weekly_capacity for team in table.teams}


@stage
def score(table: pl.DataFrame, support_measures: pl.DataFrame, model: RiskScorer, model_version: str, as_of: date) -> pl.DataFrame:
    """Score the cohort (score 1-20, probability, top signals); everyone else keeps null scores."""
    scored = cohort(table, support_measures, as_of)
    X = matrix(scored)
    scores = scored.select("person").with_columns(
        score=pl.Series(model.score_levels(X), dtype=pl.Int64),
        probability=pl.Series(model.predict_proba(X)[:, 1], dtype=pl.Float64),
        model_version=pl.lit(model_version),
        signals=signals(model, X, MODEL_FEATURES),
    )
    cases = open_case_teams(support_measures, as_of)
    return table.join(scores, on="person", how="left").join(cases, on="person", how="left")


@stage
def apply_rules(scored: pl.DataFrame, ruleset: RuleSet, as_of: date) -> pl.DataFrame:
    """Evaluate every rule over every person at once; one row per rule that fired."""
    return evaluate(ruleset, scored, as_of=as_of)


@stage
def route_flags(
    hits: pl.DataFrame, scored: pl.DataFrame, ruleset: RuleSet, table_path: Path | None, as_of: date,
    families: pl.DataFrame, history: pl.DataFrame,
) -> list[FlagDraft]:
    """One flag per person or family with all its reasons, suppressed ones kept aside, ranked within capacity."""
    table = load_routing_table(table_path) if table_path else load_routing_table()
    return route(hits, scored, ruleset, table, as_of=as_of, families=families, history=history)


@io_stage
def store_flags(store: Store, run_id: str, drafts: list[FlagDraft]) -> list[int]:
    """Save new flags; a rerun of the same as-of date adds none twice."""
    return store.save_flags(run_id, drafts)


def ingest(store: Store, run_id: str, folder: Path, context: Any, max_invalid_share: float, home: Path) -> tuple[dict[str, pl.DataFrame], int]:
    """Read, validate, account for and pseudonymise every registered source; returns the sources and rows quarantined."""
    key = load_key(home)
    sources: dict[str, pl.DataFrame] = {}
    quarantined = 0
    for name, source in load_registry().items():
        try:
            validation = validate_source(read_source(folder, source), source, context, max_invalid_share)
        except InvalidShareError as refused:
            # The extract is refused as a whole, but its quarantined rows are kept for the steward.
            record_validation(store, run_id, refused.validation)
            raise
        record_validation(store, run_id, validation)
        quarantined += validation.rows_quarantined
        sources[name] = pseudonymise_source(validation, source, key)
    return sources, quarantined


def today_in_copenhagen() -> date:
    """The municipality's calendar date, whatever the server's time zone."""
    return datetime.now(ZoneInfo("Europe/Copenhagen")).date()


@flow(name="nightly", log_prints=True)
def nightly(params: NightlyParams) -> NightlySummary:
    """Score everyone known on the as-of date and route early-intervention flags to caseworkers."""
    from prefect.runtime import flow_run

    if params.as_of is None:
        params = params.model_copy(update={"as_of": today_in_copenhagen()})
    config = settings.load_config(params.config)
    home = settings.home()
    folder = params.extracts or settings.extracts_dir(config)
    store = Store.from_url(settings.database_url())
    store.create_schema()
    run_id = str(flow_run.id or f"local-{params.as_of}")
    store.start_run(run_id, params.as_of, "nightly")
    try:
        registry.connect(settings.mlflow_tracking_uri(), home / "mlartifacts")
        context = gx_context(home)
        sources, quarantined = ingest(store, run_id, folder, context, config.validate_.max_invalid_share, home)

        table, families = build_features(sources, params.as_of)
        model, version = champion_model(
            sources, config.model.name, config.model.training_as_of, config.model.horizon_days, store, config.routing.table
        )
        model_version = f"{config.model.name}/{version}"
        scored = score(table, sources["support_measures"], model, model_version, params.as_of)
        ruleset = load_rules(config.rules.folder) if config.rules.folder else load_rules()
        record_version(store.engine, ruleset, run_id=run_id)  # once per version: the audit log says when rules changed
        hits = apply_rules(scored, ruleset, params.as_of)
        history = store.decision_history(params.as_of)
        drafts = route_flags(hits, scored, ruleset, config.routing.table, params.as_of, families, history)
        created = store_flags(store, run_id, drafts)
    except Exception as exc:
        store.fail_run(run_id, type(exc).__name__, str(exc))
        raise
    summary = NightlySummary(
        run_id=run_id,
        as_of=params.as_of,
        model_version=model_version,
        rules_version=ruleset.version,
        flags_created=len(created),
        flags_total=len(drafts),
        rows_quarantined=quarantined,
        data_docs=data_docs_index(context),
    )
    store.finish_run(run_id, "completed", {
        "flags_created": summary.flags_created,
        "flags_total": summary.flags_total,
        "flags_suppressed": sum(d.suppressed for d in drafts),
        "rows_quarantined": quarantined,
        "model_version": summary.model_version,
        "rules_version": summary.rules_version,
    })
    return summary
