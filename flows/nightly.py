"""The nightly flow: read, validate, link, featurise, score, apply rules, route and store flags."""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass, replace
from functools import partial
from datetime import date, datetime
from pathlib import Path
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

import polars as pl
from prefect import flow, get_run_logger, task
from prefect.context import FlowRunContext
from prefect.states import Failed
from prefect.task_runners import ThreadPoolTaskRunner
from prefect.utilities.annotations import quote
from prefect.cache_policies import NONE
from pydantic import BaseModel, ConfigDict

from casework.accounts import Accounts
from casework.store import Run, RunInProgress, Store
from features.evidence import evidence
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
from sources.snapshot import snapshot
from tidlig import settings
from validate.context import ValidationRun, data_docs_index, gx_context, validation_run
from validate.contract import InvalidShareError, Validation, reference_order, references_from, validate_extract

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


# Test hook (tests/flows/test_crash.py): TIDLIG_TEST_CRASH_AT=<task name> SIGKILLs the run as soon
# as that task is done, and "store_flags:commit" just before the flags' transaction commits, the way
# the OOM killer or a lost machine would; nothing else reads it.
CRASH_AT = "TIDLIG_TEST_CRASH_AT"


def _crash_point(task, task_run, state) -> None:
    if os.environ.get(CRASH_AT) == task.name:
        os.kill(os.getpid(), signal.SIGKILL)


# Registers read and validated at once within a run: two cores; measured at 650,000 persons, ingest
# took 25.7 s one by one and 21.7 s two at a time (polars already spreads each over both cores).
SIDE_BY_SIDE = 2
stage = task(cache_policy=NONE, on_completion=[_crash_point])
io_stage = task(cache_policy=NONE, retries=2, retry_delay_seconds=5, retry_condition_fn=_transient, on_completion=[_crash_point])


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
    same_key_as: str | None = None  # the earlier run that had done this key's work; this run did nothing


@io_stage
def read_source(folder: Path | str, source: Source) -> Extract:
    """Read one register's extract from the extracts folder or database (sources.database)."""
    return read_extract(folder, source)


@stage
def validate_source(
    extract: Extract, source: Source, context: Any, max_invalid_share: float, run: ValidationRun, registered: dict[str, pl.Series],
) -> Validation:
    """Check one extract against its data contract; bad rows go to quarantine with the reason."""
    return validate_extract(extract, source, context=context, max_invalid_share=max_invalid_share, run=run, registered=registered)


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
    team_of, capacity = team_capacity(routing_table)
    result = train(sources, training_as_of, horizon_days, team_of=team_of, capacity=capacity)
    version = registry.log_and_register(result, name, engine=store.engine)
    # The very first model has nothing to be compared against; later ones wait for a person.
    registry.crown_first(name, version, engine=store.engine, gate_passed=result.gate.passed)
    get_run_logger().warning(
        "No champion was registered: trained %s version %s (%s, fairness gate %s) and crowned it; recorded in the audit log",
        name, version, result.candidate, "passed" if result.gate.passed else "FAILED",
    )
    return registry.load(name)


def team_capacity(table_path: Path | None):
    """The family teams' capacities and who goes to which team, for measuring precision at capacity."""
    table = load_routing_table(table_path) if table_path else load_routing_table()

    def team_of(frame: pl.DataFrame) -> pl.Series:
        # The scored cohort has no open case by definition.
        return assign_teams(frame.with_columns(case_team=pl.lit(None, dtype=pl.String)), table)["team"]

    return team_of, {team.id: team.weekly_capacity for team in table.teams}


@stage
def score(table: pl.DataFrame, support_measures: pl.DataFrame, model: RiskScorer, model_version: str, as_of: date) -> pl.DataFrame:
    """Score the cohort (score 1-20, probability); everyone else keeps null scores."""
    scored = cohort(table, support_measures, as_of)
    X = matrix(scored)
    scores = scored.select("person").with_columns(
        score=pl.Series(model.score_levels(X), dtype=pl.Int64),
        probability=pl.Series(model.predict_proba(X)[:, 1], dtype=pl.Float64),
        model_version=pl.lit(model_version),
    )
    cases = open_case_teams(support_measures, as_of)
    return table.join(scores, on="person", how="left").join(cases, on="person", how="left")


@stage
def explain_flagged(scored: pl.DataFrame, hits: pl.DataFrame, model: RiskScorer) -> pl.DataFrame:
    """The top signals behind the score of every scored person a rule flagged (only they are read by anyone)."""
    flagged = scored.join(hits.select("person").unique(), on="person", how="semi").filter(pl.col("score").is_not_null())
    explained = flagged.select("person").with_columns(signals=signals(model, matrix(flagged), MODEL_FEATURES, context=flagged))
    return scored.join(explained, on="person", how="left")


@stage
def evidence_for_flags(sources: dict[str, pl.DataFrame], families: pl.DataFrame, drafts: list[FlagDraft], as_of: date) -> dict[str, list[dict]]:
    """The source rows behind each flag's reasons and signals, by the flag's person (flagged persons only)."""
    wanted: dict[str, list[str]] = {}  # person -> the features named for them
    about: dict[str, set[str]] = {}  # flag's person -> everyone its reasons and signals are about
    for draft in drafts:
        named = [(r.person or draft.person, name) for r in draft.reasons for name in r.values]
        named += [(s.get("person") or draft.person, s.get("feature", "")) for s in draft.signals]
        for person, name in named:
            wanted.setdefault(person, []).append(name)
        about[draft.person] = {person for person, _ in named}
    by_person: dict[str, list[dict]] = {}
    for row in evidence(sources, families, wanted, as_of).to_dicts():
        by_person.setdefault(row["person"], []).append(row)
    return {flagged: [row for p in sorted(persons) for row in by_person.get(p, ())] for flagged, persons in about.items()}


@stage
def apply_rules(scored: pl.DataFrame, ruleset: RuleSet, as_of: date, families: pl.DataFrame | None = None) -> pl.DataFrame:
    """Evaluate every rule over every person, and family rules over every family, at once; one row per hit."""
    return evaluate(ruleset, scored, as_of=as_of, families=families)


@stage
def route_flags(
    hits: pl.DataFrame, scored: pl.DataFrame, ruleset: RuleSet, table_path: Path | None, as_of: date,
    families: pl.DataFrame, history: pl.DataFrame, capacities: dict[str, int],
) -> list[FlagDraft]:
    """One flag per person or family with all its reasons, suppressed ones kept aside, ranked within capacity."""
    table = load_routing_table(table_path) if table_path else load_routing_table()
    # A team lead's capacity in the casework store wins over the routing table's starting value.
    teams = tuple(replace(t, weekly_capacity=capacities.get(t.id, t.weekly_capacity)) for t in table.teams)
    return route(hits, scored, ruleset, replace(table, teams=teams), as_of=as_of, families=families, history=history)


@io_stage
def store_flags(store: Store, run_id: str, drafts: list[FlagDraft], behind: dict[str, list[dict]] | None = None) -> list[int]:
    """Save new flags with their evidence in one transaction; a rerun of the same as-of date adds none twice."""
    if os.environ.get(CRASH_AT) == "store_flags:commit":
        import sqlalchemy as sa

        sa.event.listen(store.engine, "commit", lambda conn: os.kill(os.getpid(), signal.SIGKILL))
    return store.save_flags(run_id, drafts, behind)


def ingest(store: Store, run_id: str, folder: Path | str, context: Any, max_invalid_share: float, home: Path) -> tuple[dict[str, pl.DataFrame], int]:
    """Read, validate, account for and pseudonymise every registered source; returns the sources and rows quarantined."""
    key = load_key(home)
    sources: dict[str, pl.DataFrame] = {}
    quarantined = 0
    registry = load_registry()
    registered: dict[str, pl.Series] = {}  # e.g. the population's valid person ids, for "person not in population"
    referenced, independent = reference_order(registry)
    with validation_run(context) as run:  # one Data Docs build for the whole run, also when a source stops it
        for source in independent:
            # Made (or found) one at a time before any runs side by side: GX saves them in shared config files.
            run.checkpoint(source)

        def accept(source: Source, validation: Validation) -> None:
            nonlocal quarantined
            record_validation(store, run_id, validation)
            quarantined += validation.rows_quarantined
            sources[source.name] = pseudonymise_source(validation, source, key)

        def checked(source: Source) -> Validation:
            return validate_source(read_source(folder, source), source, context, max_invalid_share, run, registered)

        # The sources others look values up in come first, one by one.
        for source in referenced:
            validation = _refused_kept(store, run_id, partial(checked, source))
            registered |= references_from(validation, registry)
            accept(source, validation)
        # The rest only read those values, so within a flow run they are read and validated side by side;
        # called as a plain function (benchmarks, tools) they go one after another.
        if FlowRunContext.get() is not None:
            results = [
                validate_source.submit(read_source.submit(folder, source), source, context, max_invalid_share, run, registered).result
                for source in independent
            ]
        else:
            results = [partial(checked, source) for source in independent]
        for source, result in zip(independent, results):
            accept(source, _refused_kept(store, run_id, result))
    return sources, quarantined


def _refused_kept(store: Store, run_id: str, validated: Callable[[], Validation]) -> Validation:
    """The validation; when the extract is refused as a whole, its quarantined rows are kept for the steward first."""
    try:
        return validated()
    except InvalidShareError as refused:
        record_validation(store, run_id, refused.validation)
        raise


def today_in_copenhagen() -> date:
    """The municipality's calendar date, whatever the server's time zone."""
    return datetime.now(ZoneInfo("Europe/Copenhagen")).date()


@flow(name="nightly", log_prints=True, task_runner=ThreadPoolTaskRunner(max_workers=SIDE_BY_SIDE))
def nightly(params: NightlyParams) -> NightlySummary:
    """Score everyone known on the as-of date and route early-intervention flags to caseworkers."""
    from prefect.runtime import flow_run

    if params.as_of is None:
        params = params.model_copy(update={"as_of": today_in_copenhagen()})
    store = Store.from_url(settings.database_url())
    store.create_schema()
    run_id = str(flow_run.id or f"local-{params.as_of}")
    try:
        with store.lease("nightly", params.as_of):
            return _nightly(params, store, run_id)
    except RunInProgress as busy:
        # The other run is fine and this one did nothing: its flow run fails with the reason, no traceback.
        return Failed(message=str(busy), data=busy)


def _nightly(params: NightlyParams, store: Store, run_id: str) -> NightlySummary:
    """The run itself, while this process holds the as-of date's lease."""
    config = settings.load_config(params.config)
    home = settings.home()
    folder = params.extracts or settings.extracts_location(config)
    store.start_run(run_id, params.as_of, "nightly")
    doing = "run key"  # the stage a failure is recorded against
    try:
        registry.connect(settings.mlflow_tracking_uri(), home / "mlartifacts")
        context = gx_context(home)
        ruleset = load_rules(config.rules.folder) if config.rules.folder else load_rules()
        key = run_key(store, run_id, folder, ruleset, config.model.name)
        if done := completed_before(store, run_id, params.as_of, key):
            return _nothing_to_do(store, run_id, done, params.as_of, context)
        doing = "read+validate"
        sources, quarantined = ingest(store, run_id, folder, context, config.validate_.max_invalid_share, home)

        doing = "link+features"
        table, families = build_features(sources, params.as_of)
        doing = "model"
        model, version = champion_model(
            sources, config.model.name, config.model.training_as_of, config.model.horizon_days, store, config.routing.table
        )
        model_version = f"{config.model.name}/{version}"
        if model_version != key["model_version"]:
            store.set_run_key(run_id, model_version=model_version)
        doing = "score"
        scored = score(table, sources["support_measures"], model, model_version, params.as_of)
        doing = "rules+routing"
        record_version(store.engine, ruleset, run_id=run_id)  # once per version: the audit log says when rules changed
        hits = apply_rules(scored, ruleset, params.as_of, families)
        scored = explain_flagged(scored, hits, model)
        history = store.decision_history(params.as_of)
        capacities = {team.id: team.weekly_capacity for team in Accounts(store.engine).list_teams()}
        drafts = route_flags(hits, scored, ruleset, config.routing.table, params.as_of, families, history, capacities)
        doing = "evidence"
        # quote(): Prefect would otherwise walk every reason and evidence row looking for futures
        # (at 650,000 persons a minute per call); these collections never hold any.
        behind = evidence_for_flags(sources, families, quote(drafts), params.as_of)
        doing = "store"
        created = store_flags(store, run_id, quote(drafts), quote(behind))
    except Exception as exc:
        _record_failure(store, run_id, doing, exc)
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
        "snapshot": key["snapshot"],
    })
    return summary


def run_key(store: Store, run_id: str, folder: Path | str, ruleset: RuleSet, model_name: str) -> dict[str, str | None]:
    """The run's key besides its as-of date (data snapshot, champion, rules version), recorded on the run."""
    champion = registry.alias_version(model_name, registry.CHAMPION)
    key = {
        "snapshot": snapshot(folder, load_registry().values()),
        "model_version": f"{model_name}/{champion}" if champion else None,
        "rules_version": ruleset.version,
    }
    store.set_run_key(run_id, **key)
    return key


def completed_before(store: Store, run_id: str, as_of: date, key: dict[str, str | None]) -> Run | None:
    """The run that completed this key already, if any; runs of the key a killed process left running are marked interrupted."""
    same = [r for r in store.runs_with_key(as_of, "nightly", snapshot=key["snapshot"], rules_version=key["rules_version"])
            if r.run_id != run_id]
    for stale in (r for r in same if r.status == "running" and r.model_version in (None, key["model_version"])):
        # This run holds the as-of date's lease, which a live run would hold: a running one is a dead
        # one. Its flags were saved in one transaction or not at all; this run redoes what it had not finished.
        store.fail_run(stale.run_id, "interrupted", f"the run stopped without finishing (killed, out of memory or machine lost); run {run_id} took over its work")
        get_run_logger().warning("event=run.taken_over run_id=%s interrupted_run=%s as_of=%s", run_id, stale.run_id, as_of)
    done = [r for r in same if r.status == "completed" and key["model_version"] and r.model_version == key["model_version"]]
    return done[-1] if done else None


def _nothing_to_do(store: Store, run_id: str, done: Run, as_of: date, context: Any) -> NightlySummary:
    counts = done.counts or {}
    store.finish_run(run_id, "skipped", {**counts, "flags_created": 0, "same_key_as": done.run_id})
    get_run_logger().info(
        "event=run.skipped run_id=%s as_of=%s same_key_as=%s snapshot=%s model_version=%s rules_version=%s "
        "reason='this key was completed already: nothing to do, no flag written twice'",
        run_id, as_of, done.run_id, done.snapshot[:12], done.model_version, done.rules_version,
    )
    return NightlySummary(
        run_id=run_id, as_of=as_of, model_version=done.model_version, rules_version=done.rules_version,
        flags_created=0, flags_total=counts.get("flags_total", 0), rows_quarantined=counts.get("rows_quarantined", 0),
        data_docs=data_docs_index(context), same_key_as=done.run_id,
    )


def what_to_do(exc: BaseException) -> str:
    """The operator's next step after a failed run, by the kind of failure."""
    from sqlalchemy.exc import OperationalError

    from routing.table import RoutingError
    from rules.engine import RuleError
    from sources.readers import ExtractError
    from tidlig.settings import ConfigError

    again = "then start the same as-of date again: a rerun completes the work and writes no flag twice"
    if isinstance(exc, ExtractError):
        return f"correct or re-deliver the extract named above (`tidlig sources check FOLDER` lists every quarantined row), {again}"
    if isinstance(exc, (OperationalError, OSError)):
        return f"a database or file could not be reached even after retries: check TIDLIG_DATABASE_URL, the disk and the extracts folder or sources.database, {again}"
    if isinstance(exc, (RuleError, RoutingError, ConfigError)):
        return f"fix the rule files, routing table or config named above (`tidlig rules test` checks rules), {again}"
    return f"read the traceback in this flow run's log and fix the cause, {again}"


def _record_failure(store: Store, run_id: str, doing: str, exc: BaseException) -> None:
    hint = what_to_do(exc)
    exc.add_note(f"What to do: {hint}")
    store.fail_run(run_id, doing, f"{type(exc).__name__}: {exc} What to do: {hint}")
    get_run_logger().error("event=run.failed run_id=%s stage=%s error=%s what_to_do=%r", run_id, doing, type(exc).__name__, hint)
