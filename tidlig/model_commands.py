"""`tidlig models ...` and `tidlig fairness audit`: the registry and the fairness audit from the command line."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

models_app = typer.Typer(help="List, evaluate as deployed, and promote by a person's decision, the registered scoring models.", no_args_is_help=True)
fairness_app = typer.Typer(help="Audit any scores file for group fairness (Aequitas definitions).", no_args_is_help=True)

TrackingOption = Annotated[Optional[str], typer.Option("--tracking-uri", help="MLflow tracking store or server (default: MLFLOW_TRACKING_URI or the local store).")]


def _fail(message: str) -> None:
    typer.secho(f"Error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2)


def _connect(tracking_uri: str | None) -> None:
    import os

    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    import mlflow

    from tidlig import settings

    mlflow.set_tracking_uri(tracking_uri or settings.mlflow_tracking_uri())


@models_app.command("list")
def models_list(
    name: Annotated[Optional[str], typer.Argument(help="Only this registered model.")] = None,
    tracking_uri: TrackingOption = None,
) -> None:
    """Registered versions with their aliases (champion, candidate), fairness gate and mean average precision."""
    from datetime import datetime

    from models import registry

    _connect(tracking_uri)
    rows = registry.versions(name)
    if not rows:
        typer.echo("No registered models.")
    for r in rows:
        created = datetime.fromtimestamp(r["created"] / 1000).strftime("%Y-%m-%d %H:%M")
        typer.echo(f"{r['name']}  v{r['version']:<4} {','.join(r['aliases']) or '-':<20} gate {r['gate']:<8} "
                   f"{r['estimator']:<24} AP {r['average_precision'] or '-':<7} {created}")


def train_candidate(as_of, extracts: Path | None, config: Path | None):
    """Run the training flow: a model trained on the config's training dates, registered as candidate only."""
    from flows.retrain import RetrainParams, train_first
    from tidlig.cli import _prepare_prefect

    _prepare_prefect()
    try:
        return train_first(RetrainParams(as_of=as_of, extracts=extracts, config=config))
    except Exception as exc:
        # The flow recorded the failure in the store; the traceback is in the flow run's log.
        _fail(f"training failed ({type(exc).__name__}): {exc}")


@models_app.command("train")
def models_train(
    extracts: Annotated[Optional[Path], typer.Option(help="Folder of extracts (default: TIDLIG_HOME/extracts or sources.database).")] = None,
    config: Annotated[Optional[Path], typer.Option("--config", help="Config file (default: the embedded defaults).")] = None,
) -> None:
    """Train a model on the config's training dates and register it as candidate; it scores nobody until a person promotes it."""
    summary = train_candidate(None, extracts, config)
    gate = "passed" if summary.gate_passed else "FAILED (promoting it needs --override-gate REASON)"
    typer.echo(
        f"Registered {summary.name} version {summary.version} ({summary.candidate}) as candidate; fairness gate {gate}.\n"
        f"Nothing is scored with it until a person promotes it: tidlig models promote {summary.name} {summary.version} --by NAME --reason TEXT"
    )


@models_app.command("promote")
def models_promote(
    name: Annotated[str, typer.Argument(help="Registered model name.")],
    version: Annotated[str, typer.Argument(help="The version to make champion.")],
    by: Annotated[str, typer.Option("--by", help="Your name: the person who decides, recorded in the audit log.")],
    reason: Annotated[str, typer.Option("--reason", help="Why this version should score citizens; recorded in the audit log.")],
    override_gate: Annotated[Optional[str], typer.Option("--override-gate", help="Promote despite a failed fairness gate, for this reason (audited).")] = None,
    alias: Annotated[str, typer.Option(help="The alias to move.")] = "champion",
    tracking_uri: TrackingOption = None,
) -> None:
    """Make a version the champion; refused when its fairness gate failed, unless overridden with a reason."""
    from casework.store import Store
    from models import registry
    from tidlig import settings

    _connect(tracking_uri)
    store = Store.from_url(settings.database_url())
    store.create_schema()
    try:
        done = registry.promote(name, version, by=by, reason=reason, engine=store.engine, override=override_gate, alias=alias)
    except registry.PromotionRefused as exc:
        typer.secho(f"Refused (recorded in the audit log): {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1)
    except (LookupError, ValueError) as exc:
        _fail(str(exc))
    note = " despite a failed fairness gate (override recorded)" if done.overridden else ""
    typer.echo(f"{name} version {version} is now {alias}{note}; before: {done.previous or 'none'}. Recorded in the audit log.")


@models_app.command("evaluate")
def models_evaluate(
    version: Annotated[Optional[str], typer.Option("--version", help="The registered version to evaluate (default: the champion).")] = None,
    from_: Annotated[Optional[str], typer.Option("--from", help="First as-of date to replay (YYYY-MM-DD); default: 12 weeks before --to.")] = None,
    to: Annotated[Optional[str], typer.Option("--to", help="Last as-of date (YYYY-MM-DD); default: the latest whose year of outcomes is known.")] = None,
    every: Annotated[int, typer.Option(min=1, help="Days between replayed as-of dates (7: one a week).")] = 7,
    extracts: Annotated[Optional[Path], typer.Option(help="Folder of extracts (default: TIDLIG_HOME/extracts).")] = None,
    boot: Annotated[int, typer.Option("--boot", min=100, help="Bootstrap resamples for the intervals.")] = 1000,
    out: Annotated[Optional[Path], typer.Option("--out", help="Also write the tables (CSV), plots (PNG) and report (Markdown) into this folder.")] = None,
    config: Annotated[Optional[Path], typer.Option("--config", help="Config file (default: the embedded defaults).")] = None,
    tracking_uri: TrackingOption = None,
) -> None:
    """Replay the nightly decision over weekly as-of dates and measure the lists teams see: precision and recall at
    capacity per team beside the model's top-k and the points rule, paired differences, calibration in the top 5%,
    and the fairness of the list by sex, age band, district and origin group."""
    from datetime import date, timedelta

    from casework.accounts import Accounts
    from casework.store import Store
    from flows.nightly import teams_at_capacity
    from models import card, plots, registry
    from routing.backtest import load_sources, replay_dates
    from routing.deployed import MIN_DATES, evaluate_deployed, evaluation_dates
    from routing.table import RoutingError
    from rules.engine import RuleError, load_rules
    from sources.readers import ExtractError
    from tidlig import settings
    from tidlig.progress import progress
    from tidlig.settings import ConfigError, load_config

    def day(text: str, option: str) -> date:
        try:
            return date.fromisoformat(text)
        except ValueError:
            _fail(f"{option} must be a date as YYYY-MM-DD, got {text!r}")

    try:
        cfg = load_config(config)
    except ConfigError as exc:
        _fail(str(exc))
    home = settings.home()
    _connect(tracking_uri)
    registry.connect(tracking_uri or settings.mlflow_tracking_uri(), home / "mlartifacts")
    chosen = version or registry.alias_version(cfg.model.name, registry.CHAMPION)
    if chosen is None:
        _fail(f"{cfg.model.name} has no champion; give --version (see `tidlig models list`)")
    try:
        model = registry.load_version(cfg.model.name, chosen)
    except LookupError as exc:
        _fail(str(exc))
    store = Store.from_url(settings.database_url())
    store.create_schema()
    capacities = {team.id: team.weekly_capacity for team in Accounts(store.engine).list_teams()}
    try:
        ruleset = load_rules(cfg.rules.folder)
        table = teams_at_capacity(cfg.routing.table, capacities)
        with progress("Reading and validating the extracts"):
            sources = load_sources(extracts or settings.extracts_dir(cfg), home, cfg.validate_.max_invalid_share)
        if from_ is None and to is None:
            dates = evaluation_dates(sources, cfg.model.horizon_days, count=MIN_DATES, every_days=every)
        else:
            end = day(to, "--to") if to else evaluation_dates(sources, cfg.model.horizon_days, count=1)[-1]
            start = day(from_, "--from") if from_ else end - timedelta(days=every * (MIN_DATES - 1))
            dates = replay_dates(start, end, every)
        with progress(f"Replaying {len(dates)} as-of dates", total=len(dates)) as step:
            evaluation = evaluate_deployed(sources, dates, model=model, model_version=f"{cfg.model.name}/{chosen}", ruleset=ruleset,
                                           table=table, policy=cfg.ranking.policy(), horizon_days=cfg.model.horizon_days, n_boot=boot,
                                           on_date=lambda as_of: step(f"Replayed {as_of}"))
    except (ValueError, RuleError, RoutingError, ExtractError) as exc:
        _fail(str(exc))
    report = card.deployed_card(evaluation)
    typer.echo(report)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "deployed_evaluation.md").write_text(report, encoding="utf-8")
        for name in ("at_capacity", "differences", "curve", "fairness"):
            getattr(evaluation, name).write_csv(out / f"deployed_{name}.csv")
        plots.save_deployed(evaluation, out)
        typer.echo(f"Wrote the report, tables and plots to {out}")


@fairness_app.command("audit")
def fairness_audit(
    scores: Annotated[Path, typer.Option("--scores", exists=True, dir_okay=False, help="CSV (or Parquet) file with one row per person.")],
    score_col: Annotated[str, typer.Option("--score-col", help="Column with the score or probability.")],
    label_col: Annotated[str, typer.Option("--label-col", help="Column with the outcome, 0 or 1.")],
    group_col: Annotated[list[str], typer.Option("--group-col", help="Column defining groups; repeat for several.")],
    reference_group: Annotated[list[str], typer.Option("--reference-group", help="Reference group: one per --group-col in order, or COL=GROUP, or 'largest'.")],
    threshold: Annotated[Optional[float], typer.Option("--threshold", help="Score at or above which a row counts as predicted positive.")] = None,
    top_k: Annotated[Optional[int], typer.Option("--top-k", min=0, help="The K highest scores count as predicted positive.")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", help="Write OUT.csv and OUT.json (default: beside the scores file).")] = None,
) -> None:
    """Per group: size, prevalence, predicted positives, confusion counts, rates and their disparities to the reference."""
    import polars as pl

    from models.fairness import FairnessError, audit, format_table

    try:
        frame = pl.read_parquet(scores) if scores.suffix == ".parquet" else pl.read_csv(scores, infer_schema_length=10000)
    except Exception as exc:  # a broken file can fail in many ways; all mean the same to the user
        _fail(f"cannot read {scores}: {exc}")
    if len(reference_group) == 1 and "=" not in reference_group[0]:
        references: dict[str, str] | str = reference_group[0]
    elif all("=" in r for r in reference_group):
        references = dict(r.split("=", 1) for r in reference_group)
    elif len(reference_group) == len(group_col):
        references = dict(zip(group_col, reference_group))
    else:
        _fail(f"give one --reference-group per --group-col ({len(group_col)}), or COL=GROUP pairs; got {reference_group}")
    try:
        # Values read from CSV may be numbers; groups are compared as text.
        frame = frame.with_columns(pl.col(c).cast(pl.String) for c in group_col if c in frame.columns)
        result = audit(frame, score_col=score_col, label_col=label_col, group_cols=group_col,
                       reference_groups=references, threshold=threshold, top_k=top_k)
    except FairnessError as exc:
        _fail(str(exc))
    typer.echo(format_table(result))
    stem = out or scores.with_name(scores.stem + "_fairness")
    result.write_csv(stem.with_suffix(".csv"))
    stem.with_suffix(".json").write_text(result.write_json(), encoding="utf-8")
    typer.echo(f"\nWrote {stem.with_suffix('.csv')} and {stem.with_suffix('.json')}")
