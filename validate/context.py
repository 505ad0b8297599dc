"""The file-backed GX context: suites, validation results and Data Docs kept for auditors."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlparse

from sources.registry import Source
from validate.gx import import_gx
from validate.suites import build_suite

if TYPE_CHECKING:
    from great_expectations.checkpoint import Checkpoint
    from great_expectations.data_context import AbstractDataContext

DATA_SOURCE = "tidlig_extracts"
BATCH = "whole_extract"
ROW_ID = "check_row"  # GX sees the check table (validate/checks.py), not the extract rows
RESULT_FORMAT = {
    "result_format": "COMPLETE",
    "unexpected_index_column_names": [ROW_ID],
    # Keep only check-row numbers in stored results: the values may be personal data, and Data Docs
    # are read by auditors who must not see them.
    "exclude_unexpected_values": True,
    "return_unexpected_index_query": False,
}


def gx_context(home: Path) -> AbstractDataContext:
    """A file-mode GX context under home / "gx", quiet and without progress bars."""
    gx = import_gx()
    from great_expectations.data_context.types.base import ProgressBarsConfig

    Path(home).mkdir(parents=True, exist_ok=True)
    context = gx.get_context(mode="file", project_root_dir=Path(home))
    bars = context.variables.progress_bars  # a dict once read back from the YAML
    if bars is None or any(key not in bars or bars[key] for key in ("globally", "metric_calculations")):
        context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
        context.variables.save()
    return context


def data_docs_index(context: AbstractDataContext) -> Path:
    """Path of the local Data Docs index.html."""
    url = context.get_docs_sites_urls(only_if_exists=False)[0]["site_url"]
    return Path(unquote(urlparse(url).path))


def checkpoint_for(context: AbstractDataContext, source: Source) -> Checkpoint:
    """Create or refresh the source's suite, validation definition and checkpoint (safe to repeat)."""
    gx = import_gx()
    from great_expectations.checkpoint import UpdateDataDocsAction

    if DATA_SOURCE in context.data_sources.all():
        data_source = context.data_sources.get(DATA_SOURCE)
    else:
        data_source = context.data_sources.add_pandas(DATA_SOURCE)
    if source.name in data_source.get_asset_names():
        asset = data_source.get_asset(source.name)
    else:
        asset = data_source.add_dataframe_asset(source.name)
    if any(batch.name == BATCH for batch in asset.batch_definitions):
        batch = asset.get_batch_definition(BATCH)
    else:
        batch = asset.add_batch_definition_whole_dataframe(BATCH)
    suite = context.suites.add_or_update(build_suite(source))
    definition = context.validation_definitions.add_or_update(
        gx.ValidationDefinition(name=source.name, data=batch, suite=suite)
    )
    return context.checkpoints.add_or_update(
        gx.Checkpoint(
            name=source.name,
            validation_definitions=[definition],
            actions=[UpdateDataDocsAction(name="update_data_docs")],
            result_format=RESULT_FORMAT,
        )
    )
