"""The `tidlig` command line. Heavy libraries are imported inside commands so help stays fast."""

from __future__ import annotations

import getpass
import shlex
from datetime import date
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from typer.core import TyperGroup
from typer.exceptions import TyperException

from casework.decisions import REASON_CODES


def _fail(message: str) -> None:
    typer.secho(f"Error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2)


class _Commands(TyperGroup):
    """Whatever goes wrong in a command ends in one message and a non-zero exit, never a traceback."""

    def invoke(self, ctx: Any) -> Any:
        command = _command_path(self, ctx)
        try:
            return super().invoke(ctx)
        except (TyperException, typer.Exit, typer.Abort):  # usage errors, and commands that end as they meant to
            raise
        except Exception as exc:
            _explain_and_exit(exc, command)


def _command_path(group: TyperGroup, ctx: Any) -> str:
    names, command = ["tidlig"], group
    for word in [*getattr(ctx, "_protected_args", ()), *ctx.args]:
        found = command.get_command(ctx, word) if isinstance(command, TyperGroup) else None
        if found is None:
            break
        names.append(word)
        command = found
    return " ".join(names)


def _explain_and_exit(exc: Exception, command: str) -> None:
    import sqlalchemy as sa

    from tidlig import settings

    if isinstance(exc, sa.exc.DBAPIError | sa.exc.ArgumentError | sa.exc.NoSuchModuleError):
        url = settings.database_url()
        try:
            shown = sa.engine.make_url(url).render_as_string(hide_password=True)
        except sa.exc.ArgumentError:
            shown = url
        why = " ".join(line.strip() for line in str(getattr(exc, "orig", None) or exc).splitlines() if line.strip())
        _fail(
            f"{command}: cannot use the database {shown} (TIDLIG_DATABASE_URL): {why}\n"
            "Check that the database server is running and that the URL is right, e.g. "
            "postgresql+psycopg://USER@HOST:5432/DB or sqlite:///PATH"
        )
    if type(exc).__module__.startswith("mlflow."):
        import re

        import mlflow

        def hidden(text: str) -> str:  # a password in the URI stays off the screen
            return re.sub(r"//[^/@\s]*@", "//***@", text)

        _fail(
            f"{command}: MLflow at {hidden(mlflow.get_tracking_uri())} (--tracking-uri or MLFLOW_TRACKING_URI) failed: {hidden(str(exc))}\n"
            "Check that the tracking server is running and that the URI is right."
        )
    if isinstance(exc, OSError) and exc.filename:
        _fail(f"{command}: cannot use {exc.filename}: {exc.strerror}")
    typer.secho(
        f"Error: {command} stopped on an unexpected {type(exc).__name__}: {exc}. This is a fault in Tidlig, "
        "not in what you asked for: please report it with the command you ran.",
        fg=typer.colors.RED,
        err=True,
    )
    raise typer.Exit(1)


app = typer.Typer(
    cls=_Commands, help="Tidlig: early warning for municipal social services. A person decides; Tidlig flags.", no_args_is_help=True
)
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

    from tidlig import logs, settings

    logs.configure(os.environ.get("TIDLIG_LOG_LEVEL", "WARNING").upper())
    # Before anything is written, also by Prefect's temporary server, which inherits the umask.
    settings.home()

ConfigOption = Annotated[Optional[Path], typer.Option("--config", help="Config file (default: the embedded defaults).")]
ByOption = Annotated[str, typer.Option("--by", help="Your name, recorded in the audit log.")]


class Decision(str, Enum):
    accept = "accept"
    dismiss = "dismiss"
    defer = "defer"


# Typer lists the codes in the help and names them when a wrong one is given.
ReasonCode = Enum("ReasonCode", {code: code for code in REASON_CODES}, type=str)
# The options of `flags decide` that each field of a refused decision came from.
DECISION_OPTIONS = {"decision": "DECISION", "reason_code": "--reason-code", "reason_text": "--reason", "defer_until": "--until"}


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


def _run_nightly(as_of: date, extracts: Path | None, config: Path | None, **accepting):
    _prepare_prefect()
    from casework.store import RunInProgress
    from flows.nightly import NightlyParams, nightly
    from tidlig.prefect_api import temporary_api

    try:
        with temporary_api():
            return nightly(NightlyParams(as_of=as_of, extracts=extracts, config=config, **accepting))
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
    accept_incomplete: Annotated[Optional[list[str]], typer.Option(
        "--accept-incomplete", metavar="SOURCE",
        help="Use this source's extract although it fails its delivery checks (too few rows, count file disagrees, too old); "
             "repeat for more sources; needs --by and --reason and is written to the audit log.",
    )] = None,
    by: Annotated[Optional[str], typer.Option("--by", help="Your name, recorded in the audit log with --accept-incomplete.")] = None,
    reason: Annotated[Optional[str], typer.Option("--reason", help="Why the run may use the extract as it is (with --accept-incomplete).")] = None,
) -> None:
    """Run the nightly scoring flow for one as-of date; rerunning the same date adds no duplicates."""
    day = _parse_date(as_of, "--as-of")
    if accept_incomplete:
        from sources.registry import load_registry

        unknown = sorted(set(accept_incomplete) - set(load_registry()))
        if unknown:
            _fail(f"--accept-incomplete: no registered source is called {', '.join(unknown)}; the sources are {', '.join(load_registry())}")
        if not (by or "").strip() or not (reason or "").strip():
            _fail("--accept-incomplete needs --by NAME and --reason TEXT: the audit log records who let the run use the extract and why")
    elif by or reason:
        _fail("--by and --reason go with --accept-incomplete SOURCE; without it there is nothing to accept")
    summary = _run_nightly(day, extracts, config, accept_incomplete=tuple(accept_incomplete or ()), accepted_by=by, accept_reason=reason)
    if summary.same_key_as:
        typer.echo(
            f"Nothing to do: run {summary.same_key_as} already completed {summary.as_of} on the same extracts, "
            f"model {summary.model_version} and rules {summary.rules_version} ({summary.flags_total} flags); "
            f"recorded as run {summary.run_id}, skipped."
        )
        return
    typer.echo(
        f"Run {summary.run_id} for {summary.as_of}: {summary.flags_created} new flags "
        f"({summary.flags_total} in all), {summary.below_capacity} below capacity, {summary.rows_quarantined} rows quarantined, "
        f"{summary.rows_trimmed} with values trimmed of spaces, model {summary.model_version}, rules {summary.rules_version}."
    )
    for warning in summary.warnings:
        typer.secho(f"Warning: {warning}", fg=typer.colors.YELLOW, err=True)


@app.command()
def demo(
    persons: Annotated[Optional[int], typer.Option(min=200, help="Residents of the synthetic municipality (default from config).")] = None,
    by: Annotated[str, typer.Option("--by", help="The demo user's name: the person who promotes the demo's model, recorded in the audit log.")] = "demo",
    config: ConfigOption = None,
) -> None:
    """Make a synthetic municipality, train a model and promote it in the demo user's name, run the nightly flow and print each team's flag list."""
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
    from tidlig.model_commands import models_promote, train_candidate

    typer.echo("Training a model on the synthetic registers ...")
    trained = train_candidate(cfg.features.as_of, folder, config)
    # Which model scores citizens is a person's decision, also in the demo: the demo user decides, by the same command.
    models_promote(
        trained.name, trained.version, by=by, reason="tidlig demo: a model trained on a synthetic municipality",
        override_gate=None if trained.gate_passed else "tidlig demo: synthetic residents only, never real citizens",
        alias="champion", tracking_uri=None,
    )
    typer.echo(f"Running the nightly flow through Prefect for as-of {cfg.features.as_of} ...")
    summary = _run_nightly(cfg.features.as_of, folder, config)
    first = _print_team_lists(summary.as_of)
    typer.echo(
        f"\n{summary.flags_total} flags ({summary.flags_created} new), {summary.below_capacity} below capacity, from model {summary.model_version} "
        f"and rules {summary.rules_version}; {summary.rows_quarantined} source rows quarantined.\n"
        "Where to look next (each line runs as printed, from this folder):"
    )
    tidlig, team = _installed("tidlig"), first.team if first else "familie-nord"
    steps = [
        (f"{tidlig} flags list --team {team}", "a team's list"),
        (f"{tidlig} users add mette.h --name 'Mette Hansen' --role caseworker --team {team}", "a caseworker on that team; asks for her password"),
        *([(f"{tidlig} flags show {first.id}", "why this person was flagged (the view is logged)"),
           (f"{tidlig} flags decide {first.id} accept --by mette.h",
            "decide on it: accept, or dismiss with --reason-code CODE --reason TEXT, or defer with --until YYYY-MM-DD")] if first else []),
        (f"{tidlig} audit verify --checkpoints", "check the audit log's hash chain and its checkpoints"),
        (f"{tidlig} serve --insecure-cookies", "the web app on http://127.0.0.1:8000, as mette.h (plain HTTP: local trial only)"),
        (f"{_installed('mlflow')} ui --backend-store-uri {settings.mlflow_tracking_uri()}", "the models on http://127.0.0.1:5000"),
    ]
    typer.echo("\n".join(f"  # {what}\n  {command}" for command, what in steps))
    typer.echo(f"Data Docs (open in a browser): {summary.data_docs.as_uri()}")


def _installed(name: str) -> str:
    """How to call a command of this installation from here: its path in the virtual environment, as `make demo` has no PATH to change."""
    import sys

    script = Path(sys.executable).parent / name
    if not script.is_file():
        return name
    try:
        return shlex.quote(str(script.relative_to(Path.cwd())))
    except ValueError:
        return shlex.quote(str(script))


def _print_team_lists(as_of: date):
    """Print each team's list; the first open flag printed (or None), for the next steps to name."""
    store = _store()
    flags = store.list_flags(as_of=as_of)
    first = None
    for cut in store.capacity_cuts(as_of=as_of):
        team_flags = [f for f in flags if f.team == cut.team]
        suppressed = sum(f.status == "suppressed" for f in team_flags)
        line = f"cut-off score {cut.cutoff_score}" if cut.cutoff_score is not None else "no cut-off: all fit"
        typer.secho(
            f"\n{cut.team}: {cut.shown} flags this week (capacity {cut.capacity}; {cut.legal_duty} by legal duty), "
            f"{cut.below} below capacity ({line}), {suppressed} suppressed (kept with the reason)",
            bold=True,
        )
        for f in team_flags:
            if not f.queued and f.status != "suppressed":
                typer.echo(_flag_line(f))
                if first is None and f.status == "open":
                    first = f
    return first


def _team_ids(store) -> list[str]:
    """The teams flags are routed to: those of the routing table and any the store already knows."""
    from casework.accounts import Accounts
    from web.app import routing_teams

    accounts = Accounts(store.engine)
    accounts.sync_teams(routing_teams(_config(None).routing.table))
    return sorted(team.id for team in accounts.list_teams())


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
    from casework.store import FLAG_STATUSES

    day = _parse_date(as_of, "--as-of") if as_of else None
    if status is not None and status not in FLAG_STATUSES:
        _fail(f"--status {status!r} is no flag state; use one of: {', '.join(FLAG_STATUSES)}")
    store = _store()
    if team is not None and team not in (teams := _team_ids(store)):
        _fail(f"--team {team!r}: there is no such team; teams are: {', '.join(teams)}")
    flags = store.list_flags(team=team, as_of=day, status=status)
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
    typer.echo(f"Version: {f.version} (decide on what you see here with: tidlig flags decide {f.id} ... --version {f.version})")
    if f.score is not None:
        highest = "Highest score in the family" if f.target == "family" else "Score"
        typer.echo(f"{highest}: {f.score} of 20 (probability {f.probability:.1%}), model {f.model_version}")
    for m in f.member_scores:
        typer.echo(_member_line(m, family=f.target == "family"))
    typer.echo(f"Rules version: {f.rules_version}\nReasons:")
    for r in f.reasons:
        about = f" (about {r.person})" if r.person and (r.person != f.person or f.target == "family") else ""
        typer.echo(f"  - {r.text_da} / {r.text_en}{about}  [{r.rule_id}: {r.values}]")
        if r.legal_duty:
            typer.echo(f"    legal duty, on the list whatever the team's capacity: {r.legal_duty}")
    if f.signals:
        typer.echo("What raised the score:")
        for signal in f.signals:
            person = signal.get("person")
            about = f" (about {person})" if person and (person != f.person or f.target == "family") else ""
            typer.echo(f"  - {signal['text_da']} / {signal['text_en']}{about}")
    for d in f.decisions:
        typer.echo(f"Decision: {d.decision} by {d.by} at {d.at:%Y-%m-%d %H:%M}: {d.reason or ''}")


def _member_line(member: dict, *, family: bool) -> str:
    """A person the flag is about: own score, what it means in words, and age as context."""
    from models.explain import risk_in_words

    who = f"  {member['person']} ({member.get('target') or '?'}): " if family else "  "
    age = f"age {member['age_years']}" if member.get("age_years") is not None else "age unknown"
    if member.get("score") is None:
        return f"{who}{age}; not scored"
    words = [risk_in_words(member.get("level_risk"), language) for language in ("da", "en")]
    meaning = f": {words[0]} / {words[1]}" if all(words) else ""
    return f"{who}{age}; own score {member['score']} of 20{meaning}"


@flags_app.command("decide")
def flags_decide(
    flag_id: Annotated[int, typer.Argument(help="The flag's number.")],
    decision: Annotated[Decision, typer.Argument(help="accept opens an early-intervention contact; dismiss or defer need a reason.")],
    by: Annotated[str, typer.Option("--by", help="Your staff account's username (tidlig users add), recorded in the audit log.")],
    reason: Annotated[Optional[str], typer.Option(help="Why: required for dismiss and defer.")] = None,
    reason_code: Annotated[Optional[ReasonCode], typer.Option("--reason-code", help="For dismiss: why, as auditors count it.")] = None,
    until: Annotated[Optional[str], typer.Option(help="For defer: the date (YYYY-MM-DD) to look again.")] = None,
    version: Annotated[Optional[int], typer.Option("--version", help="The flag's version your decision is made on, as `flags show` printed it. Without it only an undecided flag can be decided; to change a decision, give the version you saw it at.")] = None,
) -> None:
    """Record a caseworker's decision on a flag; it goes to the audit log. A decision on a flag someone decided meanwhile is refused."""
    from casework.decisions import DecisionConflict, DecisionRefused

    defer_until = _parse_date(until, "--until") if until else None
    store = _store()
    _check_decider(store, by, flag_id)
    try:
        store.decide(
            flag_id, decision.value, reason=reason, reason_code=reason_code.value if reason_code else None,
            by=by, defer_until=defer_until, version=version,
        )
    except DecisionRefused as refused:
        _fail("; ".join(f"{DECISION_OPTIONS[problem.field]}: {problem.message}" for problem in refused.problems))
    except DecisionConflict as conflict:
        _fail(
            f"{conflict}. Read it with `tidlig flags show {flag_id}`; to change that decision, "
            f"decide again with --version {conflict.conflict.current_version}"
        )
    except (LookupError, ValueError) as exc:
        _fail(str(exc))
    typer.echo(f"Flag #{flag_id}: {decision.value} recorded by {by}.")


def _check_decider(store, username: str, flag_id: int) -> None:
    """Only an active caseworker or team lead of the flag's team decides on it, as in the web app."""
    from casework.accounts import TEAM_ROLES, Accounts
    from web.queries import flag_scope

    scope = flag_scope(store.engine, flag_id)
    if scope is None:
        _fail(f"there is no flag #{flag_id}; find its number with `tidlig flags list`")
    user = Accounts(store.engine).get_user(username)
    if user is None:
        _fail(
            f"--by {username!r} is not a staff account; decisions are made by named staff. Add the account with "
            f"`tidlig users add USERNAME --name 'FULL NAME' --role caseworker --team {scope.team}`, then give its username"
        )
    if not user.active:
        _fail(f"--by {username!r}: the account is locked; an admin can unlock it on the web app's users page")
    if user.role not in TEAM_ROLES:
        _fail(f"--by {username!r} is a {user.role}; only caseworkers and team leads decide on flags")
    if user.team != scope.team:
        _fail(f"--by {username!r} is in team {user.team}, but flag #{flag_id} belongs to team {scope.team}; its own team decides on it")
    if scope.queued and user.role != "teamlead":
        _fail(f"flag #{flag_id} waits in team {scope.team}'s queue beyond capacity; only the team lead decides on it")


@audit_app.command("verify")
def audit_verify(
    checkpoints: Annotated[bool, typer.Option(
        "--checkpoints", help="Also hold the chain to the checkpoints in TIDLIG_AUDIT_DIR: fails when it is shorter or differs at a checkpoint.",
    )] = False,
) -> None:
    """Walk the hash chain and check flags, decisions and users against it; exit 1 and say what was altered."""
    from audit.log import AuditKeyError, checkpoint_file, verify
    from casework.reconcile import rows_without_events

    store = _existing_store()
    try:
        result = verify(store.engine, checkpoints=checkpoint_file() if checkpoints else None)
    except AuditKeyError as exc:
        _fail(str(exc))
    if not result.ok:
        where = f" at event {result.first_broken_seq}" if result.first_broken_seq else ""
        typer.secho(f"Audit log BROKEN{where}: {result.problem}", fg=typer.colors.RED, err=True)
        # The casework is checked against a log that holds; against this one every row would look suspect.
        raise typer.Exit(1)
    typer.echo(f"Audit log intact: {result.checked} events, hash chain verified"
               + (", every checkpoint met." if checkpoints else "."))
    unaccounted = rows_without_events(store.engine)
    for problem in unaccounted:
        typer.secho(f"Not in the audit log: {problem}", fg=typer.colors.RED, err=True)
    if unaccounted:
        raise typer.Exit(1)
    typer.echo("Every flag, decision and account in the store has its event.")


def _existing_store():
    """The store to check, migrated but never made: a check of a store that is not there must not create one."""
    import sqlalchemy as sa

    from audit.log import audit_events
    from casework.store import Store
    from tidlig import settings

    url = sa.engine.make_url(settings.database_url())
    where = url.render_as_string(hide_password=True)
    if url.get_backend_name() == "sqlite" and not Path(url.database or "").is_file():
        home = settings.home()
        if not home.is_dir() or not any(home.iterdir()):
            _fail(f"TIDLIG_HOME {home} is {'empty' if home.is_dir() else 'missing'}, so there is no store to check "
                  "(expected tidlig.db there): set TIDLIG_HOME to the folder the runs and the web app use, "
                  "or TIDLIG_DATABASE_URL to the PostgreSQL store")
        _fail(f"there is no store at {url.database} (expected the SQLite store with the audit log): "
              "set TIDLIG_HOME or TIDLIG_DATABASE_URL to the store the runs and the web app use")
    store = Store.from_url(settings.database_url())
    # A store that cannot be reached is named by the command line's own error handler.
    if not sa.inspect(store.engine).has_table(audit_events.name):
        _fail(f"the database at {where} holds no Tidlig store (expected the audit_events table): "
              "set TIDLIG_DATABASE_URL to the store the runs and the web app use")
    store.create_schema()  # an older store gets the columns verify reads; nothing else changes
    return store


@rules_app.command("test")
def rules_test(folder: Annotated[Optional[Path], typer.Option(help="Folder of rule files (default: the shipped rules).")] = None) -> None:
    """Run every test case embedded in the rule files."""
    from rules.engine import RuleError, load_rules, run_embedded_tests

    try:
        ruleset = load_rules(folder)
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
        current_rules = load_rules(current or cfg.rules.folder)
        table = load_routing_table(cfg.routing.table)
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
        replayed = backtest(sources, current_rules, proposed, dates, table, policy=cfg.ranking.policy(), scorer=scorer,
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
        ruleset = load_rules(folder or cfg.rules.folder)
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

    from web.app import trusted_proxies

    if insecure_cookies:
        os.environ["TIDLIG_WEB_INSECURE_COOKIES"] = "1"
    try:
        trusted_proxies(os.environ.get("TIDLIG_TRUSTED_PROXIES", ""))
    except ValueError as exc:
        _fail(str(exc))
    _store()  # migrate once here, before the workers start
    typer.echo(f"Tidlig web app on http://{host}:{port} (stop with Ctrl+C)")
    # The app reads forwarded headers itself, from TIDLIG_TRUSTED_PROXIES only; uvicorn's own
    # reading would trust any local process.
    uvicorn.run("web.app:app_from_environment", factory=True, host=host, port=port, workers=workers, proxy_headers=False, access_log=False)


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
    accounts.sync_teams(routing_teams(_config(None).routing.table))
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
        typer.echo(f"  only rows known before the as-of date ({source.known_date} < as-of); legal basis: {source.legal_basis}")
        typer.echo(f"  why: {feature.why}")


if __name__ == "__main__":
    app()
