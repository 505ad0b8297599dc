"""The nightly flow: read, validate, link, featurise, score, apply rules, route and store flags."""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass, field, replace
from functools import partial
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import polars as pl
from prefect import flow, get_run_logger, task
from prefect.context import FlowRunContext
from prefect.states import Failed
from prefect.task_runners import ThreadPoolTaskRunner
from prefect.utilities.annotations import quote
from prefect.cache_policies import NONE
from prefect.futures import PrefectFuture
from pydantic import BaseModel, ConfigDict

from casework.accounts import Accounts
from casework.store import Run, RunInProgress, Store
from features.evidence import evidence
from features.table import feature_table
from models import registry
from models.dataset import cohort_scores
from models.labels import open_case_teams
from models.scorer import RiskScorer
from models.explain import signals
from models.train import MODEL_FEATURES, matrix
from routing.flags import FlagDraft, Routing
from routing.route import RankingPolicy, assign_teams, route, with_signals
from routing.table import RoutingTable, load_routing_table
from rules.engine import RuleSet, evaluate, load_rules
from rules.publish import record_version
from sources.pseudonym import load_key, pseudonymise
from sources.readers import Extract, ExtractError, read_extract
from sources.registry import Source, load_registry
from sources.snapshot import snapshot
from tidlig import logs, settings
from validate.context import ValidationRun, data_docs_index, gx_context, validation_run
from validate.contract import (
    DeliveryRefused, Refused, Validation, reference_order, references_from, refusal_or_validation, validate_extract,
)
from validate.delivery import delivery_problems, refusal

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
# Task results and failures hold register rows before pseudonymisation: Prefect keeps them in
# memory only, never in its result storage.
stage = task(cache_policy=NONE, persist_result=False, on_completion=[_crash_point])
io_stage = task(cache_policy=NONE, persist_result=False, retries=2, retry_delay_seconds=5, retry_condition_fn=_transient,
                on_completion=[_crash_point])


class NightlyParams(BaseModel):
    """What a nightly run needs: the as-of date (default today), and optionally other extracts or config."""

    model_config = ConfigDict(frozen=True)

    as_of: date | None = None
    extracts: Path | None = None
    config: Path | None = None
    # Sources whose extract this run may use although it fails its delivery checks (too few rows,
    # count file disagrees, too old), with who decided so and why: written to the audit log.
    accept_incomplete: tuple[str, ...] = ()
    accepted_by: str | None = None
    accept_reason: str | None = None


@dataclass(frozen=True)
class Acceptance:
    """Who let this run use which sources' extracts although they failed their delivery checks, and why."""

    sources: tuple[str, ...]
    by: str
    reason: str


@dataclass
class Ingested:
    """What ingest read: each source's pseudonymised valid rows, the rows quarantined and trimmed, and what to warn of."""

    sources: dict[str, pl.DataFrame]
    rows_quarantined: int = 0
    rows_trimmed: int = 0
    warnings: list[str] = field(default_factory=list)
    accepted: list[str] = field(default_factory=list)  # sources used although they failed their delivery checks


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
    below_capacity: int = 0  # raised by the rules but ranked below a team's capacity: recorded, not shown
    rows_trimmed: int = 0
    # What the operator should know though nothing stopped the run: columns not read, extracts accepted.
    warnings: tuple[str, ...] = ()


@io_stage
def read_source(folder: Path | str, source: Source) -> Extract | Refused:
    """Read one register's extract from the extracts folder or database (sources.database); an unusable file comes back refused."""
    # Returned, not raised: a refused delivery is the register's to fix, not a task crash with a traceback.
    try:
        return read_extract(folder, source)
    except ExtractError as exc:
        return Refused(source.name, str(exc))


@stage
def validate_source(
    extract: Extract | Refused, source: Source, context: Any, max_invalid_share: float, run: ValidationRun,
    registered: dict[str, pl.Series],
) -> Validation | Refused:
    """Check one extract against its data contract; bad rows go to quarantine with the reason, a broken extract comes back refused."""
    if isinstance(extract, Refused):
        return extract
    return refusal_or_validation(source, partial(
        validate_extract, extract, source, context=context, max_invalid_share=max_invalid_share, run=run, registered=registered,
        refuse=False,
    ))


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
        rows_trimmed=validation.rows_trimmed,
    )


@stage
def pseudonymise_source(validation: Validation, source: Source, key: bytes) -> pl.DataFrame:
    """Replace CPR numbers by pseudonyms before any later stage sees the rows."""
    return pseudonymise(validation.valid, source.person_id_columns, key)


@stage
def build_features(sources: dict[str, pl.DataFrame], as_of: date) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Link persons and families and compute every catalogue feature known on as_of; also the parent-child links."""
    return feature_table(sources, as_of)


class NoChampionError(LookupError):
    """No model carries the champion alias: a person must promote one before anyone is scored."""


@io_stage
def champion_model(name: str) -> tuple[RiskScorer, str]:
    """Load the champion model; without one, refuse: which model scores citizens is a person's decision."""
    found = registry.load(name)
    if found is None:
        raise NoChampionError(
            f"no version of model {name!r} is champion, so nobody can be scored. A person decides which model is used: "
            f"train a candidate (`tidlig models train`, or the monthly retraining flow), read its model card and "
            f"fairness audit (`tidlig models list`, MLflow), then promote it in your name: "
            f"`tidlig models promote {name} VERSION --by NAME --reason TEXT`"
        )
    return found


def team_capacity(table_path: Path | None):
    """The family teams' capacities and who goes to which team, for measuring precision at capacity."""
    table = load_routing_table(table_path)

    def team_of(frame: pl.DataFrame) -> pl.Series:
        # The scored cohort has no open case by definition.
        return assign_teams(frame.with_columns(case_team=pl.lit(None, dtype=pl.String)), table)["team"]

    return team_of, {team.id: team.weekly_capacity for team in table.teams}


@stage
def score(table: pl.DataFrame, support_measures: pl.DataFrame, model: RiskScorer, model_version: str, as_of: date) -> pl.DataFrame:
    """Score the cohort (score 1-20, probability, the calibrated risk of the score level); everyone else keeps null scores."""
    scores = cohort_scores(table, support_measures, model, model_version, as_of)
    scores = scores.with_columns(
        level_risk=pl.Series(model.level_risk(scores["score"].to_numpy()), dtype=pl.Float64, nan_to_null=True),
    )
    cases = open_case_teams(support_measures, as_of)
    return table.join(scores, on="person", how="left").join(cases, on="person", how="left")


@stage
def explain_flagged(scored: pl.DataFrame, drafts: list[FlagDraft], model: RiskScorer) -> list[FlagDraft]:
    """The flags with the top signals behind the scores of the persons they are about (only flags are read by anyone)."""
    about = pl.DataFrame({"person": sorted({m for d in drafts for m in d.members})}, schema={"person": pl.String})
    flagged = scored.join(about, on="person", how="semi").filter(pl.col("score").is_not_null())
    explained = flagged.select("person").with_columns(signals=signals(model, matrix(flagged), MODEL_FEATURES, context=flagged))
    return with_signals(drafts, dict(explained.iter_rows()))


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
    families: pl.DataFrame, history: pl.DataFrame, capacities: dict[str, int], policy: RankingPolicy,
    used_this_week: dict[str, int] | None = None,
) -> Routing:
    """One ranking per team cut at what is left of its weekly capacity: the flags shown, suppressed ones kept aside, the rest below capacity."""
    table = teams_at_capacity(table_path, capacities, used_this_week)
    return route(hits, scored, ruleset, table, as_of=as_of, policy=policy, families=families, history=history)


def teams_at_capacity(table_path: Path | None, capacities: dict[str, int], used_this_week: dict[str, int] | None = None) -> RoutingTable:
    """The routing table with each team's weekly capacity as its team lead set it, less what earlier nights of the week used."""
    table = load_routing_table(table_path)
    used = used_this_week or {}
    # A team lead's capacity in the casework store wins over the routing table's starting value.
    teams = tuple(
        replace(t, weekly_capacity=max(0, capacities.get(t.id, t.weekly_capacity) - used.get(t.id, 0))) for t in table.teams
    )
    return replace(table, teams=teams)


@io_stage
def store_flags(store: Store, run_id: str, drafts: list[FlagDraft], behind: dict[str, list[dict]] | None, routing: Routing) -> list[int]:
    """Save new flags with their evidence, and who fell below capacity, in one transaction; a rerun of the same as-of date adds none twice."""
    if os.environ.get(CRASH_AT) == "store_flags:commit":
        import sqlalchemy as sa

        sa.event.listen(store.engine, "commit", lambda conn: os.kill(os.getpid(), signal.SIGKILL))
    return store.save_flags(run_id, drafts, behind, below=routing.below, cuts=routing.cuts)


def ingest(
    store: Store, run_id: str, folder: Path | str, context: Any, max_invalid_share: float, home: Path,
    *, as_of: date | None = None, acceptance: Acceptance | None = None,
) -> Ingested:
    """Read, validate, account for and pseudonymise every registered source; with as_of, also check each delivery is whole and current.

    Raises DeliveryRefused naming every extract that cannot be used (the quarantine of those that
    were read is kept); a source others look values up in stops it before the rest are read.
    """
    key = load_key(home)
    done = Ingested(sources={})
    refused: list[Refused] = []
    registry = load_registry()
    last_rows = store.accepted_rows() if as_of else {}
    registered: dict[str, pl.Series] = {}  # e.g. the population's valid person ids, for "person not in population"
    referenced, independent = reference_order(registry)
    with validation_run(context) as run:  # one Data Docs build for the whole run, also when a source stops it
        for source in independent:
            # Made (or found) one at a time before any runs side by side: GX saves them in shared config files.
            run.checkpoint(source)

        def accept(source: Source, outcome: Validation | Refused) -> Validation | None:
            if isinstance(outcome, Validation) and as_of is not None:
                outcome = _delivered(store, run_id, source, outcome, as_of, last_rows.get(source.name), acceptance, done)
            if isinstance(outcome, Refused):
                if outcome.validation is not None:  # kept for the steward, though the extract is refused
                    record_validation(store, run_id, outcome.validation)
                refused.append(outcome)
                return None
            record_validation(store, run_id, outcome)
            done.rows_quarantined += outcome.rows_quarantined
            done.rows_trimmed += outcome.rows_trimmed
            if outcome.ignored_columns:
                done.warnings.append(
                    f"{outcome.file}: column(s) {', '.join(outcome.ignored_columns)} are not in the registry for source "
                    f"'{source.name}' and were not read (least data); ask {source.owner} to leave them out, or register them."
                )
            done.sources[source.name] = pseudonymise_source(outcome, source, key)
            return outcome

        def checked(source: Source) -> Validation | Refused:
            return validate_source(read_source(folder, source), source, context, max_invalid_share, run, registered)

        # The sources others look values up in come first, one by one; without them the rest cannot be checked.
        for source in referenced:
            validation = accept(source, checked(source))
            if validation is None:
                raise DeliveryRefused(refused)
            registered |= references_from(validation, registry)
        # The rest only read those values, so within a flow run they are read and validated side by side;
        # called as a plain function (benchmarks, tools) they go one after another.
        if FlowRunContext.get() is not None:
            results = []
            for source in independent:
                read = read_source.submit(folder, source)
                results.append(partial(_settled, read, validate_source.submit(read, source, context, max_invalid_share, run, registered)))
        else:
            results = [partial(checked, source) for source in independent]
        for source, result in zip(independent, results):
            accept(source, result())
    if refused:
        raise DeliveryRefused(refused)
    return done


def _settled(read: PrefectFuture, validated: PrefectFuture) -> Validation | Refused:
    """The validation's outcome; when the read itself failed (e.g. the database out of reach after retries), the read's own error."""
    read.wait()
    if not read.state.is_completed():
        read.result()  # raises the read's error, not Prefect's "run is in PENDING state" of the validation waiting on it
    return validated.result()


def _delivered(
    store: Store, run_id: str, source: Source, validation: Validation, as_of: date, last_rows: int | None,
    acceptance: Acceptance | None, done: Ingested,
) -> Validation | Refused:
    """The validation if its delivery is whole and current, or accepted as it is by a person (audited); else its refusal."""
    problems = delivery_problems(validation, source, as_of=as_of, last_rows=last_rows)
    if not problems:
        return validation
    if acceptance is None or source.name not in acceptance.sources:
        return refusal(source, validation, problems, as_of)
    messages = [p.message for p in problems]
    store.accept_delivery(run_id, source.name, validation.file, messages, by=acceptance.by, reason=acceptance.reason)
    done.accepted.append(source.name)
    done.warnings.append(f"{'; '.join(messages)}. Used all the same: accepted by {acceptance.by} (audit log, delivery.accepted).")
    get_run_logger().warning("event=delivery.accepted run_id=%s source=%s checks=%s", run_id, source.name, ",".join(p.check for p in problems))
    return validation


def today_in_copenhagen() -> date:
    """The municipality's calendar date, whatever the server's time zone."""
    return datetime.now(ZoneInfo("Europe/Copenhagen")).date()


@flow(name="nightly", log_prints=True, persist_result=False, task_runner=ThreadPoolTaskRunner(max_workers=SIDE_BY_SIDE))
def nightly(params: NightlyParams) -> NightlySummary:
    """Score everyone known on the as-of date and route early-intervention flags to caseworkers."""
    from prefect.runtime import flow_run

    if params.as_of is None:
        params = params.model_copy(update={"as_of": today_in_copenhagen()})
    logs.redact_prefect_logs()
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
    acceptance = _acceptance(params)
    home = settings.home()
    folder = params.extracts or settings.extracts_location(config)
    store.start_run(run_id, params.as_of, "nightly")
    doing = "run key"  # the stage a failure is recorded against
    try:
        registry.connect(settings.mlflow_tracking_uri(), home / "mlartifacts")
        context = gx_context(home)
        ruleset = load_rules(config.rules.folder)
        key = run_key(store, run_id, folder, ruleset, config.model.name)
        if done := completed_before(store, run_id, params.as_of, key):
            return _nothing_to_do(store, run_id, done, params.as_of, context)
        # Before any register is read: without a champion nobody may be scored.
        doing = "model"
        model, version = champion_model(config.model.name)
        model_version = f"{config.model.name}/{version}"
        if model_version != key["model_version"]:
            store.set_run_key(run_id, model_version=model_version)
        doing = "read+validate"
        ingested = ingest(store, run_id, folder, context, config.validate_.max_invalid_share, home, as_of=params.as_of, acceptance=acceptance)
        sources, quarantined = ingested.sources, ingested.rows_quarantined

        doing = "link+features"
        table, families = build_features(sources, params.as_of)
        doing = "score"
        scored = score(table, sources["support_measures"], model, model_version, params.as_of)
        doing = "rules+routing"
        record_version(store.engine, ruleset, run_id=run_id)  # once per version: the audit log says when rules changed
        hits = apply_rules(scored, ruleset, params.as_of, families)
        history = store.decision_history(params.as_of)
        capacities = {team.id: team.weekly_capacity for team in Accounts(store.engine).list_teams()}
        routing = route_flags(
            hits, scored, ruleset, config.routing.table, params.as_of, families, history, capacities, config.ranking.policy(),
            store.shown_this_week(params.as_of),
        )
        drafts = explain_flagged(scored, quote(routing.flags), model)
        doing = "evidence"
        # quote(): Prefect would otherwise walk every reason and evidence row looking for futures
        # (at 650,000 persons a minute per call); these collections never hold any.
        behind = evidence_for_flags(sources, families, quote(drafts), params.as_of)
        doing = "store"
        created = store_flags(store, run_id, quote(drafts), quote(behind), quote(routing))
    except DeliveryRefused as refused:
        # Failed with the message and no traceback: a refused delivery is the register's to fix, not a bug.
        _record_failure(store, run_id, doing, refused)
        return Failed(message="\n".join([str(refused), *getattr(refused, "__notes__", ())]), data=refused)
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
        below_capacity=len(routing.below),
        data_docs=data_docs_index(context),
        rows_trimmed=ingested.rows_trimmed,
        warnings=tuple(ingested.warnings),
    )
    for warning in ingested.warnings:
        get_run_logger().warning("%s", warning)
    store.finish_run(run_id, "completed", {
        "flags_created": summary.flags_created,
        "flags_total": summary.flags_total,
        "flags_suppressed": sum(d.suppressed for d in drafts),
        "below_capacity": len(routing.below),
        "rows_quarantined": quarantined,
        "rows_trimmed": ingested.rows_trimmed,
        "deliveries_accepted": ingested.accepted,
        "warnings": ingested.warnings,
        "model_version": summary.model_version,
        "rules_version": summary.rules_version,
        "snapshot": key["snapshot"],
    })
    return summary


def _acceptance(params: NightlyParams) -> Acceptance | None:
    """Who accepts which incomplete or old deliveries for this run; refused unless every source is registered and a name and reason are given."""
    if not params.accept_incomplete:
        return None
    unknown = sorted(set(params.accept_incomplete) - set(load_registry()))
    if unknown:
        raise ValueError(f"accept_incomplete names {', '.join(unknown)}, which no registered source is called; see sources/registry.yaml")
    if not (params.accepted_by or "").strip() or not (params.accept_reason or "").strip():
        raise ValueError("accepting an incomplete or old extract needs the name of who accepts it and a reason (accepted_by, accept_reason)")
    return Acceptance(tuple(params.accept_incomplete), params.accepted_by.strip(), params.accept_reason.strip())


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
    if isinstance(exc, NoChampionError):
        return f"have the person who answers for the model promote a version as named above, {again}"
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
