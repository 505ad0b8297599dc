"""`tidlig sources ...`: commands for data stewards. Only typer is imported at module level."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

sources_app = typer.Typer(help="Check source extracts against the registry and their data contracts.", no_args_is_help=True)


@sources_app.command("check")
def check(
    folder: Annotated[Path, typer.Argument(help="Folder of extracts, one file per registered source.")],
    max_invalid_share: Annotated[float, typer.Option(min=0, max=1, help="Share of broken rows above which an extract counts as broken.")] = 0.2,
    top: Annotated[int, typer.Option(min=0, help="How many of the most frequent quarantine reasons to show per source.")] = 3,
    as_of: Annotated[Optional[str], typer.Option("--as-of", help="As-of date YYYY-MM-DD the delivery checks judge age against (default: today in Copenhagen).")] = None,
) -> None:
    """Validate every extract before a run: rows in, valid, quarantined and trimmed, top reasons, whole-file errors, delivery checks; exit 1 if any is broken."""
    from datetime import date, datetime
    from zoneinfo import ZoneInfo

    import polars as pl

    from casework.store import Store
    from sources.readers import read_extract
    from sources.registry import load_registry
    from tidlig import settings
    from tidlig.progress import progress
    from validate.context import gx_context, validation_run
    from validate.contract import Refused, references_from, refusal_or_validation, validate_extract
    from validate.delivery import delivery_problems

    try:
        day = date.fromisoformat(as_of) if as_of else datetime.now(ZoneInfo("Europe/Copenhagen")).date()
    except ValueError:
        typer.secho(f"Error: --as-of must be a date as YYYY-MM-DD, got {as_of!r}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None
    context = gx_context(settings.home())
    store = Store.from_url(settings.database_url())
    store.create_schema()
    last_rows = store.accepted_rows()
    registered: dict[str, pl.Series] = {}
    broken = []
    typer.echo(f"{'source':22} {'rows in':>11} {'valid':>11} {'quarantined':>11} {'trimmed':>9}  (quarantined: copies/superseded)")
    registry = load_registry()
    with progress("Checking extracts", total=len(registry)) as step, validation_run(context) as run:
        for name, source in registry.items():
            step(f"Checking {name}")  # counts the source being checked: 1/15 while the first runs
            outcome = refusal_or_validation(source, lambda: validate_extract(
                read_extract(folder, source), source, context=context, max_invalid_share=max_invalid_share,
                registered=registered, run=run, refuse=False,
            ))
            validation, problem = (outcome.validation, outcome.message) if isinstance(outcome, Refused) else (outcome, None)
            if validation is None:
                typer.secho(f"{name:22} BROKEN: {problem}", fg=typer.colors.RED)
                broken.append(name)
                continue
            registered |= references_from(validation, registry)
            resolved = validation.rows_quarantined - validation.rows_broken
            typer.echo(f"{name:22} {validation.rows_in:>11,} {validation.rows_valid:>11,} {validation.rows_quarantined:>11,} "
                       f"{validation.rows_trimmed:>9,}  ({resolved:,})")
            reasons = (
                validation.quarantine.with_columns(pl.col("reason").str.replace_all(r"rows? [0-9]+(?:, [0-9]+)*(?: … \([0-9]+ in all\))?", "row …"))
                .group_by("column", "reason").agg(pl.col("row_number").n_unique().alias("rows"))
                .sort("rows", "reason", descending=[True, False]).head(top)
            )
            for row in reasons.iter_rows(named=True):
                typer.echo(f"    {row['rows']:>9,} × {row['reason']}")
            if validation.ignored_columns:
                typer.secho(f"    warning: {validation.file}: column(s) {', '.join(validation.ignored_columns)} are not in the "
                            f"registry and are not read; ask {source.owner} to leave them out, or register them.", fg=typer.colors.YELLOW)
            if problem is None:
                late = delivery_problems(validation, source, as_of=day, last_rows=last_rows.get(name))
                problem = "; ".join(p.message for p in late) + f" (as of {day.isoformat()})" if late else None
            if problem:
                typer.secho(f"{name:22} BROKEN: {problem}", fg=typer.colors.RED)
                broken.append(name)
    typer.echo(f"Data Docs: {run.build_docs().as_uri()}")
    if broken:
        typer.secho(f"{len(broken)} extract(s) broken: {', '.join(broken)}. Fix them before the nightly run.", fg=typer.colors.RED, err=True)
        raise typer.Exit(1)
    typer.echo("Every extract can be loaded; quarantined rows are listed with their reasons.")


@sources_app.command("retention")
def retention(
    today: Annotated[Optional[str], typer.Option(help="The day to count retention from, YYYY-MM-DD (default: today in Copenhagen).")] = None,
    extracts: Annotated[Optional[Path], typer.Option(help="Folder of extracts (default: the configured folder or database).")] = None,
    config: Annotated[Optional[Path], typer.Option("--config", help="Config file (default: the embedded defaults).")] = None,
) -> None:
    """Delete extract rows and stored quarantine entries past each source's retention_days, and Prefect's stored results; prints and audits counts only."""
    from datetime import date, datetime
    from zoneinfo import ZoneInfo

    from casework.store import Store
    from sources.readers import ExtractError
    from sources.registry import load_registry
    from sources.retention import apply_retention
    from tidlig import settings

    def fail(message: str) -> None:
        typer.secho(f"Error: {message}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2)

    try:
        day = date.fromisoformat(today) if today else datetime.now(ZoneInfo("Europe/Copenhagen")).date()
    except ValueError:
        fail(f"--today must be a date as YYYY-MM-DD, got {today!r}")
    try:
        loaded = settings.load_config(config)
    except settings.ConfigError as exc:
        fail(str(exc))
    store = Store.from_url(settings.database_url())
    store.create_schema()
    try:
        done = apply_retention(extracts or settings.extracts_location(loaded), load_registry().values(), day, store.apply_retention)
    except ExtractError as exc:
        typer.secho(f"Error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from None
    typer.echo(f"{'source':22} {'kept from':>10} {'rows deleted':>13} {'quarantine entries deleted':>27}")
    for item in done:
        typer.echo(f"{item.source:22} {item.cutoff.isoformat():>10} {item.rows_deleted:>13,} {item.quarantine_rows_deleted:>27,}")
    from flows.retention import forget_stored_results

    results = forget_stored_results(store, day)
    typer.echo(f"Prefect's stored results from before yesterday: {results:,} files deleted.")
    typer.echo("Each source's counts are in the audit log (retention.applied), the results' count too (retention.results_deleted).")
