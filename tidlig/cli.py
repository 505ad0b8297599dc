"""The `tidlig` command line. Heavy libraries are imported inside commands so help stays fast."""

from __future__ import annotations

import getpass
from datetime import date
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

app = typer.Typer(help="Tidlig: early warning for municipal social services. A person decides; Tidlig flags.", no_args_is_help=True)
run_app = typer.Typer(help="Run pipeline flows through Prefect.", no_args_is_help=True)
flags_app = typer.Typer(help="Read and decide on flags.", no_args_is_help=True)
audit_app = typer.Typer(help="Check the audit log.", no_args_is_help=True)
rules_app = typer.Typer(help="Work with rule files.", no_args_is_help=True)
app.add_typer(run_app, name="run")
app.add_typer(flags_app, name="flags")
app.add_typer(audit_app, name="audit")
app.add_typer(rules_app, name="rules")


@app.callback()
def _logging() -> None:
    """Tidlig's own loggers write structured lines to stderr (TIDLIG_LOG_LEVEL, TIDLIG_LOG_FORMAT=kv|json)."""
    import os

    from tidlig import logs

    logs.configure(os.environ.get("TIDLIG_LOG_LEVEL", "WARNING").upper())

ConfigOption = Annotated[Optional[Path], typer.Option("--config", help="Config file (default: the embedded defaults).")]
ByOption = Annotated[str, typer.Option("--by", help="Your name, recorded in the audit log.")]


class Decision(str, Enum):
    accept = "accept"
    dismiss = "dismiss"
    defer = "defer"


def _fail(message: str) -> None:
    typer.secho(f"Error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2)


def _parse_date(text: str, option: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        _fail(f"{option} must be a date as YYYY-MM-DD, got {text!r}")


def _config(path: Path | None):
    from tidlig.settings import ConfigError, load_config

    try:
        return load_config(path)
    except ConfigError as exc:
        _fail(str(exc))


def _store():
    from casework.store import Store
    from tidlig import settings

    store = Store.from_url(settings.database_url())
    store.create_schema()
    return store


def _prepare_prefect() -> None:
    """Defaults that make Prefect's ephemeral API start reliably on a small machine."""
    import os

    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


def _run_nightly(as_of: date, extracts: Path | None, config: Path | None):
    _prepare_prefect()
    from casework.store import RunInProgress
    from flows.nightly import NightlyParams, nightly
    from tidlig.prefect_api import temporary_api

    try:
        with temporary_api():
            return nightly(NightlyParams(as_of=as_of, extracts=extracts, config=config))
    except RunInProgress as busy:
        _fail(str(busy))
    except Exception as exc:
        # The flow recorded the failure (stage, error, what to do) in the store and the audit log;
        # the traceback is in the flow run's log.
        notes = "".join(f"\n{note}" for note in getattr(exc, "__notes__", ()))
        _fail(f"the nightly run for {as_of} failed ({type(exc).__name__}): {exc}{notes}")


@app.command()
def synth(
    out: Annotated[Path, typer.Option(help="Folder to write extracts/ and ground_truth.parquet into.")],
    persons: Annotated[int, typer.Option(min=1, help="Number of residents.")] = 3000,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives the same municipality.")] = 7,
    mess: Annotated[float, typer.Option(min=0, max=0.5, help="Share of rows with real-world faults: late, corrected, duplicated, unknown ids.")] = 0.02,
    format: Annotated[str, typer.Option("--format", help="parquet, or csv-dk (';', decimal comma, DD-MM-YYYY, Latin-1 or UTF-8 with BOM).")] = "parquet",
    config: ConfigOption = None,
) -> None:
    """Generate a synthetic municipality: register extracts plus a hidden ground-truth file.

    Large municipalities are made in blocks of households, each written before the next is made,
    so memory stays bounded (all of Denmark, 6,000,000 residents, fits in a few GB).
    """
    from sources.synth import FORMATS, SynthSpec, blocks, write_municipality

    cfg = _config(config)
    if format not in FORMATS:
        _fail(f"--format must be one of {', '.join(FORMATS)}, got {format!r}")
    from tidlig.progress import progress

    spec = SynthSpec(persons=persons, seed=seed, start=cfg.synth.start, end=cfg.synth.end, mess=mess)
    with progress(f"Generating {persons:,} residents ({format})", total=len(blocks(persons))) as step:
        folder = write_municipality(spec, out, format, on_block=lambda done, total: step())
    typer.echo(f"Wrote extracts to {folder} and the ground truth (for evaluation only) to {out / 'ground_truth.parquet'}")


@run_app.command("nightly")
def run_nightly(
    as_of: Annotated[str, typer.Option("--as-of", help="As-of date YYYY-MM-DD: only what was known by then is used.")],
    extracts: Annotated[Optional[Path], typer.Option(help="Folder of extracts (default: TIDLIG_HOME/extracts).")] = None,
    config: ConfigOption = None,
) -> None:
    """Run the nightly scoring flow for one as-of date; rerunning the same date adds no duplicates."""
    summary = _run_nightly(_parse_date(as_of, "--as-of"), extracts, config)
    if summary.same_key_as:
        typer.echo(
            f"Nothing to do: run {summary.same_key_as} already completed {summary.as_of} on the same extracts, "
            f"model {summary.model_version} and rules {summary.rules_version} ({summary.flags_total} flags); "
            f"recorded as run {summary.run_id}, skipped."
        )
        return
    typer.echo(
        f"Run {summary.run_id} for {summary.as_of}: {summary.flags_created} new flags "
        f"({summary.flags_total} in all), {summary.rows_quarantined} rows quarantined, "
        f"model {summary.model_version}, rules {summary.rules_version}."
    )


@app.command()
def demo(
    persons: Annotated[Optional[int], typer.Option(min=200, help="Residents of the synthetic municipality (default from config).")] = None,
    config: ConfigOption = None,
) -> None:
    """Make a synthetic municipality, run the nightly flow on it and print each team's flag list."""
    from sources.synth import SynthSpec, generate
    from tidlig import settings

    import os

    # The demo prints the teams' lists; the flow's own progress lines stay in Prefect's run log.
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    cfg = _config(config)
    home = settings.home()
    spec = SynthSpec(persons=persons or cfg.synth.persons, seed=cfg.synth.seed, start=cfg.synth.start, end=cfg.synth.end)
    typer.echo(f"Generating a synthetic municipality of {spec.persons} residents in {home} ...")
    folder = generate(spec).write(home)
    typer.echo(f"Running the nightly flow through Prefect for as-of {cfg.features.as_of} ...")
    summary = _run_nightly(cfg.features.as_of, folder, config)
    _print_team_lists(summary.as_of)
    typer.echo(
        f"\n{summary.flags_total} flags ({summary.flags_created} new) from model {summary.model_version} "
        f"and rules {summary.rules_version}; {summary.rows_quarantined} source rows quarantined.\n"
        "Where to look next:\n"
        "  tidlig flags list --team TEAM        a team's list\n"
        "  tidlig flags show ID                 why a person was flagged (the view is logged)\n"
        "  tidlig flags decide ID accept|dismiss|defer --reason TEXT --by NAME\n"
        "  tidlig audit verify                  check the audit log's hash chain\n"
        "  tidlig users add mette.h --name 'Mette Hansen' --role caseworker --team familie-nord\n"
        "  tidlig serve --insecure-cookies      the web app on http://127.0.0.1:8000 (plain HTTP: local trial only)\n"
        f"  mlflow ui --backend-store-uri {settings.mlflow_tracking_uri()}\n"
        f"  Data Docs: {summary.data_docs.as_uri()}"
    )


def _print_team_lists(as_of: date) -> None:
    store = _store()
    flags = store.list_flags(as_of=as_of)
    for team in sorted({f.team for f in flags}):
        team_flags = [f for f in flags if f.team == team]
        suppressed = sum(f.status == "suppressed" for f in team_flags)
        waiting = sum(f.queued for f in team_flags)
        shown = len(team_flags) - waiting - suppressed
        typer.secho(
            f"\n{team}: {shown} flags this week, {waiting} waiting beyond capacity, {suppressed} suppressed (kept with the reason)",
            bold=True,
        )
        for f in team_flags:
            if not f.queued and f.status != "suppressed":
                typer.echo(_flag_line(f))


def _flag_line(f) -> str:
    score = f"score {f.score:>2}" if f.score is not None else "not scored"
    reasons = "; ".join(r.text_da for r in f.reasons)
    state = "waiting" if f.queued else f.status
    return f"  #{f.id:<5} {f.person}  priority {f.priority}  {score}  [{state}]  {reasons}"


@flags_app.command("list")
def flags_list(
    team: Annotated[Optional[str], typer.Option(help="Only this team's flags.")] = None,
    as_of: Annotated[Optional[str], typer.Option("--as-of", help="Only flags of this as-of date (YYYY-MM-DD).")] = None,
    status: Annotated[Optional[str], typer.Option(help="Only flags in this state: open, accepted, dismissed or deferred.")] = None,
) -> None:
    """List flags in priority order: pseudonym, priority, score, state and the reasons in plain words."""
    flags = _store().list_flags(team=team, as_of=_parse_date(as_of, "--as-of") if as_of else None, status=status)
    if not flags:
        typer.echo("No flags match.")
    for f in flags:
        typer.echo(f"{f.as_of} {f.team:<22}" + _flag_line(f))


@flags_app.command("show")
def flags_show(
    flag_id: Annotated[int, typer.Argument(help="The flag's number.")],
    by: ByOption = getpass.getuser(),
    purpose: Annotated[str, typer.Option(help="Why you look at this person's data; logged.")] = "case review",
) -> None:
    """Show why a person was flagged: every rule with its values, the score and the model version."""
    try:
        f = _store().get_flag(flag_id, viewer=by, purpose=purpose)
    except LookupError as exc:
        _fail(str(exc))
    typer.echo(f"Flag #{f.id} for {f.person} ({f.target}), as of {f.as_of}")
    typer.echo(f"Team: {f.team}  priority {f.priority}  rank {f.rank}{'  (waiting beyond capacity)' if f.queued else ''}  state: {f.status}")
    if f.score is not None:
        typer.echo(f"Score: {f.score} of 20 (probability {f.probability:.1%}), model {f.model_version}")
    typer.echo(f"Rules version: {f.rules_version}\nReasons:")
    for r in f.reasons:
        typer.echo(f"  - {r.text_da} / {r.text_en}  [{r.rule_id}: {r.values}]")
    if f.signals:
        typer.echo("What raised the score most:")
        for signal in f.signals:
            typer.echo(f"  - {signal['text_da']} / {signal['text_en']}")
    for d in f.decisions:
        typer.echo(f"Decision: {d.decision} by {d.by} at {d.at:%Y-%m-%d %H:%M}: {d.reason or ''}")


@flags_app.command("decide")
def flags_decide(
    flag_id: Annotated[int, typer.Argument(help="The flag's number.")],
    decision: Annotated[Decision, typer.Argument(help="accept opens an early-intervention contact; dismiss or defer need a reason.")],
    by: ByOption,
    reason: Annotated[Optional[str], typer.Option(help="Why: required for dismiss and defer.")] = None,
    until: Annotated[Optional[str], typer.Option(help="For defer: the date (YYYY-MM-DD) to look again.")] = None,
) -> None:
    """Record a caseworker's decision on a flag; it goes to the audit log."""
    defer_until = _parse_date(until, "--until") if until else None
    try:
        _store().decide(flag_id, decision.value, reason=reason, by=by, defer_until=defer_until)
    except (LookupError, ValueError) as exc:
        _fail(str(exc))
    typer.echo(f"Flag #{flag_id}: {decision.value} recorded by {by}.")


@audit_app.command("verify")
def audit_verify() -> None:
    """Walk the hash chain; exit 1 and name the first broken link if any row was altered."""
    from audit.log import verify

    result = verify(_store().engine)
    if result.ok:
        typer.echo(f"Audit log intact: {result.checked} events, hash chain verified.")
        return
    typer.secho(f"Audit log BROKEN at event {result.first_broken_seq}: {result.problem}", fg=typer.colors.RED, err=True)
    raise typer.Exit(1)


@rules_app.command("test")
def rules_test(folder: Annotated[Optional[Path], typer.Option(help="Folder of rule files (default: the shipped rules).")] = None) -> None:
    """Run every test case embedded in the rule files."""
    from rules.engine import RuleError, load_rules, run_embedded_tests

    try:
        ruleset = load_rules(folder) if folder else load_rules()
    except RuleError as exc:
        _fail(str(exc))
    failures = run_embedded_tests(ruleset)
    for failure in failures:
        typer.secho(str(failure), fg=typer.colors.RED)
    cases = sum(len(r.tests) for r in (*ruleset.rules, *ruleset.suppressions))
    typer.echo(f"{cases - len(failures)} passed, {len(failures)} failed (rules version {ruleset.version})")
    if failures:
        raise typer.Exit(1)


@rules_app.command("backtest")
def rules_backtest(
    rules: Annotated[Path, typer.Option("--rules", help="Folder of the proposed rule files.")],
    from_: Annotated[str, typer.Option("--from", help="First as-of date to replay (YYYY-MM-DD).")],
    to: Annotated[str, typer.Option("--to", help="Last as-of date to replay (YYYY-MM-DD).")],
    every: Annotated[int, typer.Option(min=1, help="Days between replayed as-of dates (7: one a week).")] = 7,
    current: Annotated[Optional[Path], typer.Option(help="Folder of the current rule files (default: the configured ones).")] = None,
    extracts: Annotated[Optional[Path], typer.Option(help="Folder of extracts (default: TIDLIG_HOME/extracts).")] = None,
    score: Annotated[bool, typer.Option("--score/--no-score", help="Score with the registered champion model; --no-score replays without scores.")] = True,
    config: ConfigOption = None,
) -> None:
    """Replay proposed rules beside the current ones: persons added and removed, precision, load per team and week."""
    from routing.table import RoutingError, load_routing_table
    from routing.backtest import backtest, load_sources, replay_dates, report
    from rules.engine import RuleError, load_rules
    from sources.readers import ExtractError
    from tidlig import settings

    cfg = _config(config)
    try:
        dates = replay_dates(_parse_date(from_, "--from"), _parse_date(to, "--to"), every)
        proposed = load_rules(rules)
        current_rules = load_rules(current or cfg.rules.folder) if (current or cfg.rules.folder) else load_rules()
        table = load_routing_table(cfg.routing.table) if cfg.routing.table else load_routing_table()
        home = settings.home()
        from tidlig.progress import progress

        with progress("Reading and validating the extracts"):
            sources = load_sources(extracts or settings.extracts_dir(cfg), home, cfg.validate_.max_invalid_share)
    except (ValueError, RuleError, RoutingError, ExtractError) as exc:
        _fail(str(exc))
    scorer = None
    if score:
        from flows.nightly import score as score_task
        from models import registry

        registry.connect(settings.mlflow_tracking_uri(), home / "mlartifacts")
        found = registry.load(cfg.model.name)
        if found is None:
            typer.secho("No champion model is registered: replaying without scores (rules on the score do not fire).", err=True)
        else:
            model, version = found
            typer.echo(f"Scoring with {cfg.model.name}/{version}; dates it was trained on make its precision look better.")
            scorer = lambda table, sources, as_of: score_task.fn(  # noqa: E731
                table, sources["support_measures"], model, f"{cfg.model.name}/{version}", as_of
            ).select("person", "score", "probability", "model_version")
    with progress(f"Replaying {len(dates)} as-of dates", total=len(dates)) as step:
        replayed = backtest(sources, current_rules, proposed, dates, table, scorer=scorer,
                            horizon_days=cfg.model.horizon_days, on_date=lambda as_of: step(f"Replayed {as_of}"))
    typer.echo(report(replayed))


@rules_app.command("publish")
def rules_publish(
    by: ByOption,
    folder: Annotated[Optional[Path], typer.Option(help="Folder of rule files (default: the configured ones).")] = None,
    config: ConfigOption = None,
) -> None:
    """Record in the audit log that you publish this rules version; its embedded tests must pass first."""
    from rules.engine import RuleError, load_rules, run_embedded_tests
    from rules.publish import record_version

    cfg = _config(config)
    try:
        ruleset = load_rules(folder or cfg.rules.folder) if (folder or cfg.rules.folder) else load_rules()
    except RuleError as exc:
        _fail(str(exc))
    if failures := run_embedded_tests(ruleset):
        _fail(f"{len(failures)} embedded test(s) fail, so the rules cannot be published; run `tidlig rules test`. First: {failures[0]}")
    try:
        recorded = record_version(_store().engine, ruleset, by=by)
    except ValueError as exc:
        _fail(str(exc))
    if recorded is None:
        typer.echo(f"Rules version {ruleset.version} was already published; nothing recorded.")
    else:
        typer.echo(f"Rules version {ruleset.version} published by {recorded.published_by} (audit event {recorded.seq}).")


users_app = typer.Typer(help="Staff accounts for the web app.", no_args_is_help=True)
app.add_typer(users_app, name="users")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on; put a TLS proxy in front for anything but 127.0.0.1.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes: one per CPU core left over after the database; one when the database shares two cores with the app.")] = 1,
    insecure_cookies: Annotated[bool, typer.Option("--insecure-cookies", help="Send session cookies over plain HTTP too: only for trying it out locally without TLS.")] = False,
) -> None:
    """Start the caseworkers' and auditors' web app on the store in TIDLIG_DATABASE_URL."""
    import os

    import uvicorn

    if insecure_cookies:
        os.environ["TIDLIG_WEB_INSECURE_COOKIES"] = "1"
    _store()  # migrate once here, before the workers start
    typer.echo(f"Tidlig web app on http://{host}:{port} (stop with Ctrl+C)")
    uvicorn.run("web.app:app_from_environment", factory=True, host=host, port=port, workers=workers, proxy_headers=True, access_log=False)


@app.command()
def stack(
    database_url: Annotated[Optional[str], typer.Option(help="The Tidlig store, a postgresql+psycopg:// URL (default: TIDLIG_DATABASE_URL).")] = None,
    host: Annotated[str, typer.Option(help="Address every service listens on.")] = "127.0.0.1",
    prefect_port: Annotated[int, typer.Option(help="Port of the Prefect server (UI and API).")] = 4200,
    mlflow_port: Annotated[int, typer.Option(help="Port of the MLflow tracking server.")] = 5000,
    web_port: Annotated[int, typer.Option(help="Port of the web app.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Prefect workers on the process pool (each runs flows as they come).")] = 1,
    insecure_cookies: Annotated[bool, typer.Option("--insecure-cookies", help="Let the web app's session cookies travel over plain HTTP: only without a TLS proxy in front, to try it locally.")] = False,
    startup_timeout: Annotated[float, typer.Option(min=10, help="Seconds every service gets to answer before the stack gives up.")] = 180.0,
    config: ConfigOption = None,
) -> None:
    """Run the production setup on this machine: Prefect server, deployments, workers, MLflow server and web app on one PostgreSQL store; Ctrl+C stops all."""
    from tidlig import settings
    from tidlig.settings import ConfigError
    from tidlig.stack import StackError, StackOptions, run

    options = StackOptions(
        database_url=database_url or settings.database_url(), home=settings.home(), host=host, prefect_port=prefect_port,
        mlflow_port=mlflow_port, web_port=web_port, workers=workers, config=config, insecure_cookies=insecure_cookies,
        startup_timeout=startup_timeout,
    )
    try:
        run(options)
    except (StackError, ConfigError) as exc:
        _fail(str(exc))


@users_app.command("add")
def users_add(
    username: Annotated[str, typer.Argument(help="Login name, e.g. mette.h (letters, digits, . _ -).")],
    name: Annotated[str, typer.Option(help="The person's name as colleagues know it.")],
    role: Annotated[str, typer.Option(help="caseworker, teamlead, auditor or admin.")],
    team: Annotated[Optional[str], typer.Option(help="Team id from routing/teams.yaml (caseworkers and team leads only).")] = None,
    by: ByOption = getpass.getuser(),
) -> None:
    """Create a staff account; the password is asked for (or read from stdin), never given as an argument."""
    import sys

    from casework.accounts import AccountError, Accounts
    from web.app import routing_teams

    if sys.stdin.isatty():
        password = typer.prompt("Password (at least 12 characters)", hide_input=True, confirmation_prompt=True)
    else:
        password = sys.stdin.readline().rstrip("\n")
    accounts = Accounts(_store().engine)
    accounts.sync_teams(routing_teams())
    try:
        user = accounts.add_user(username, name, role, team, password, by=by)
    except AccountError as exc:
        _fail(str(exc))
    typer.echo(f"Created {user.role} {user.username}" + (f" in team {user.team}." if user.team else "."))


db_app = typer.Typer(help="The casework database (TIDLIG_DATABASE_URL).", no_args_is_help=True)
app.add_typer(db_app, name="db")


@db_app.command("grant-app-role")
def db_grant_app_role(
    role: Annotated[str, typer.Argument(help="An existing PostgreSQL login role for the web app, e.g. tidlig_web.")],
) -> None:
    """Let a PostgreSQL login role run the web app: read and write the casework tables, but only read and append to the audit log.

    Run it as the tables' owner (TIDLIG_DATABASE_URL), then start the web app with a URL for ROLE. The database itself refuses ROLE any update, delete or truncate of audit rows.
    """
    from casework.store import grant_app_role

    try:
        statements = grant_app_role(_store().engine, role)
    except (LookupError, ValueError) as exc:
        _fail(str(exc))
    typer.echo("\n".join(statements))
    typer.echo(f"Role {role} can now run the web app; it can read and append to the audit log, never change it.")


# The model registry and fairness commands live in their own module (only typer is imported there).
from tidlig.model_commands import fairness_app, models_app  # noqa: E402

app.add_typer(models_app, name="models")
app.add_typer(fairness_app, name="fairness")

from tidlig.source_commands import sources_app  # noqa: E402

app.add_typer(sources_app, name="sources")

features_app = typer.Typer(help="The feature catalogue.", no_args_is_help=True)
app.add_typer(features_app, name="features")


@features_app.command("describe")
def features_describe() -> None:
    """List every feature for auditors: what it counts, from which register, over which window, and why."""
    from features.catalogue import CATALOGUE
    from sources.registry import load_registry

    registry = load_registry()
    for feature in CATALOGUE:
        source = registry[feature.source]
        typer.secho(feature.name, bold=True)
        typer.echo(f"  shown as: {feature.label['da']} / {feature.label['en']}")
        typer.echo(f"  {feature.explain(source.title)}")
        typer.echo(f"  only rows known by the as-of date ({source.known_date} <= as-of); legal basis: {source.legal_basis}")
        typer.echo(f"  why: {feature.why}")


if __name__ == "__main__":
    app()
