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
) -> None:
    """Validate every extract before a run: rows in, valid and quarantined, top reasons, whole-file errors; exit 1 if any is broken."""
    import polars as pl

    from sources.readers import ExtractError, read_extract
    from sources.registry import load_registry
    from tidlig import settings
    from validate.context import data_docs_index, gx_context
    from validate.contract import InvalidShareError, validate_extract

    context = gx_context(settings.home())
    registered: dict[str, pl.Series] | None = None
    broken = []
    typer.echo(f"{'source':22} {'rows in':>11} {'valid':>11} {'quarantined':>11}  (of which copies/superseded)")
    for name, source in load_registry().items():
        try:
            validation = validate_extract(read_extract(folder, source), source, context=context,
                                          max_invalid_share=max_invalid_share, registered=registered)
        except InvalidShareError as exc:
            validation, problem = exc.validation, str(exc)
        except ExtractError as exc:
            typer.secho(f"{name:22} BROKEN: {exc}", fg=typer.colors.RED)
            broken.append(name)
            continue
        else:
            problem = None
        if name == "population":
            registered = {"population.person_id": validation.valid["person_id"]}
        resolved = validation.rows_quarantined - validation.rows_broken
        typer.echo(f"{name:22} {validation.rows_in:>11,} {validation.rows_valid:>11,} {validation.rows_quarantined:>11,}  ({resolved:,})")
        reasons = (
            validation.quarantine.with_columns(pl.col("reason").str.replace_all(r"rows? [0-9]+(?:, [0-9]+)*(?: … \([0-9]+ in all\))?", "row …"))
            .group_by("column", "reason").agg(pl.col("row_number").n_unique().alias("rows"))
            .sort("rows", "reason", descending=[True, False]).head(top)
        )
        for row in reasons.iter_rows(named=True):
            typer.echo(f"    {row['rows']:>9,} × {row['reason']}")
        if problem:
            typer.secho(f"{name:22} BROKEN: {problem}", fg=typer.colors.RED)
            broken.append(name)
    typer.echo(f"Data Docs: {data_docs_index(context).as_uri()}")
    if broken:
        typer.secho(f"{len(broken)} extract(s) broken: {', '.join(broken)}. Fix them before the nightly run.", fg=typer.colors.RED, err=True)
        raise typer.Exit(1)
    typer.echo("Every extract can be loaded; quarantined rows are listed with their reasons.")
