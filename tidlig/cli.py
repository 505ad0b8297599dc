"""The `tidlig` command line. Heavy libraries are imported inside commands so help stays fast."""

from __future__ import annotations

import getpass
from datetime import date, datetime
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
    from flows.nightly import NightlyParams, nightly
    from sources.readers import ExtractError

    try:
        return nightly(NightlyParams(as_of=as_of, extracts=extracts, config=config))
    except ExtractError as exc:
        _fail(str(exc))


@app.command()
def synth(
    out: Annotated[Path, typer.Option(help="Folder to write extracts/ and ground_truth.parquet into.")],
    persons: Annotated[int, typer.Option(min=1, help="Number of residents.")] = 3000,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives the same municipality.")] = 7,
    config: ConfigOption = None,
) -> None:
    """Generate a synthetic municipality: register extracts plus a hidden ground-truth file."""
    from sources.synth import SynthSpec, generate

    cfg = _config(config)
    folder = generate(SynthSpec(persons=persons, seed=seed, start=cfg.synth.start, end=cfg.synth.end)).write(out)
    typer.echo(f"Wrote extracts to {folder} and the ground truth (for evaluation only) to {out / 'ground_truth.parquet'}")


@run_app.command("nightly")
def run_nightly(
    as_of: Annotated[str, typer.Option("--as-of", help="As-of date YYYY-MM-DD: only what was known by then is used.")],
    extracts: Annotated[Optional[Path], typer.Option(help="Folder of extracts (default: TIDLIG_HOME/extracts).")] = None,
    config: ConfigOption = None,
) -> None:
    """Run the nightly scoring flow for one as-of date; rerunning the same date adds no duplicates."""
    summary = _run_nightly(_parse_date(as_of, "--as-of"), extracts, config)
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
        f"  mlflow ui --backend-store-uri {settings.mlflow_tracking_uri()}\n"
        f"  Data Docs: {summary.data_docs.as_uri()}"
    )


def _print_team_lists(as_of: date) -> None:
    store = _store()
    flags = store.list_flags(as_of=as_of)
    for team in sorted({f.team for f in flags}):
        team_flags = [f for f in flags if f.team == team]
        waiting = sum(f.queued for f in team_flags)
        typer.secho(f"\n{team}: {len(team_flags) - waiting} flags this week, {waiting} waiting beyond capacity", bold=True)
        for f in team_flags:
            if not f.queued:
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
    cases = sum(len(r.tests) for r in ruleset.rules)
    typer.echo(f"{cases - len(failures)} passed, {len(failures)} failed (rules version {ruleset.version})")
    if failures:
        raise typer.Exit(1)


if __name__ == "__main__":
    app()
