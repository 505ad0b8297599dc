"""The file-backed GX context: suites, validation results and Data Docs kept for auditors."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

from sources.registry import Source
from validate.gx import import_gx
from validate.suites import build_suite

if TYPE_CHECKING:
    from great_expectations.checkpoint import Checkpoint
    from great_expectations.core import ExpectationSuiteValidationResult
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
# What a ValidationRun stores for Data Docs: per rule whether it held and how many check rows
# failed. Finding the failing rows costs twice as much per rule, so only failed rules are run again for them.
SUMMARY_FORMAT = {**RESULT_FORMAT, "result_format": "BASIC"}
DOCS_ACTION = "update_data_docs"
# Suite meta key holding a digest of the suite as the registry defines it: an unchanged suite is
# not saved again (saving 15 suites costs seconds a night, and GX compares them expectation by expectation).
FINGERPRINT = "tidlig_fingerprint"


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
    """The source's checkpoint; its suite, validation definition and checkpoint are saved only when new or changed."""
    return _checkpoint(context, source)[0]


def _checkpoint(context: AbstractDataContext, source: Source) -> tuple[Checkpoint, bool]:
    """The source's checkpoint, and whether its suite was saved just now."""
    suite = build_suite(source)
    suite.meta[FINGERPRINT] = _fingerprint(suite)
    stored = _stored_checkpoint(context, source, suite.meta[FINGERPRINT])
    return (stored, False) if stored is not None else (_save_checkpoint(context, source, suite), True)


def _fingerprint(suite: Any) -> str:
    # Taken before the suite is saved, so it holds no store ids: the same registry gives the same digest.
    return hashlib.sha256(json.dumps(suite.to_json_dict(), sort_keys=True, default=str).encode()).hexdigest()


def _stored_checkpoint(context: AbstractDataContext, source: Source, fingerprint: str) -> Checkpoint | None:
    """The stored checkpoint when it still checks the source with the current suite and settings, else None."""
    from great_expectations.exceptions import DataContextError

    try:
        checkpoint = context.checkpoints.get(source.name)
        (definition,) = checkpoint.validation_definitions
        current = (
            definition.name == source.name
            and definition.suite.meta.get(FINGERPRINT) == fingerprint
            and definition.data.data_asset.name == source.name
            and definition.data.name == BATCH
            and definition.data.data_asset.datasource.name == DATA_SOURCE
            and [action.name for action in checkpoint.actions] == [DOCS_ACTION]
            and checkpoint.result_format == RESULT_FORMAT
        )
    except (DataContextError, ValueError, AttributeError):
        return None  # missing or not ours: made again below
    return checkpoint if current else None


def _save_checkpoint(context: AbstractDataContext, source: Source, suite: Any) -> Checkpoint:
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
    suite = context.suites.add_or_update(suite)
    definition = context.validation_definitions.add_or_update(
        gx.ValidationDefinition(name=source.name, data=batch, suite=suite)
    )
    return context.checkpoints.add_or_update(
        gx.Checkpoint(
            name=source.name,
            validation_definitions=[definition],
            # Kept for a checkpoint run on its own (GX tools, one extract); a ValidationRun builds the docs itself.
            actions=[UpdateDataDocsAction(name=DOCS_ACTION)],
            result_format=RESULT_FORMAT,
        )
    )


class ValidationRun:
    """One run's validations: each result is stored as it is made; Data Docs are built once, by build_docs."""

    def __init__(self, context: AbstractDataContext) -> None:
        self.context = context
        # One run time for every source, so Data Docs show a night's extracts together.
        self.run_time = datetime.now(timezone.utc)
        self._pending: list[Any] = []

    def checkpoint(self, source: Source) -> Checkpoint:
        """The source's checkpoint (as checkpoint_for); its suite's page is rendered again only when the suite changed."""
        from great_expectations.data_context.types.resource_identifiers import ExpectationSuiteIdentifier

        checkpoint, saved = _checkpoint(self.context, source)
        suite = ExpectationSuiteIdentifier(name=source.name)
        if suite in self._pending:
            return checkpoint
        if saved or not all(site["site_url"] for site in self.context.get_docs_sites_urls(resource_identifier=suite, only_if_exists=True)):
            self._pending.append(suite)
        return checkpoint

    def validate(
        self, checkpoint: Checkpoint, batch_parameters: dict[str, Any], expectation_parameters: dict[str, Any], run_name: str,
    ) -> ExpectationSuiteValidationResult:
        """Run the checkpoint's validation and store its summary for build_docs; failed rules come back with their rows."""
        from great_expectations.core.run_identifier import RunIdentifier
        from great_expectations.data_context.types.resource_identifiers import (
            ExpectationSuiteIdentifier,
            ValidationResultIdentifier,
        )

        (definition,) = checkpoint.validation_definitions
        run_id = RunIdentifier(run_name=run_name, run_time=self.run_time)
        result = definition.run(
            checkpoint_id=checkpoint.id, batch_parameters=batch_parameters, expectation_parameters=expectation_parameters,
            result_format=SUMMARY_FORMAT, run_id=run_id,
        )
        self._pending.append(ValidationResultIdentifier(ExpectationSuiteIdentifier(name=definition.suite.name), run_id, result.batch_id))
        failed = [i for i, outcome in enumerate(result.results) if not outcome.success]
        if failed:
            # The stored summary stays as it is; the caller gets the failing check rows too.
            batch = definition.batch_definition.get_batch(batch_parameters=batch_parameters)
            detailed = list(result.results)
            for i in failed:
                detailed[i] = batch.validate(
                    definition.suite.expectations[i], result_format=checkpoint.result_format,
                    expectation_parameters=expectation_parameters,
                )
            result.results = detailed
        return result

    def build_docs(self) -> Path:
        """Render this run's results and suites into Data Docs (once for all sources); the index path."""
        if self._pending:
            self.context.build_data_docs(resource_identifiers=self._pending)
            self._pending = []
        return data_docs_index(self.context)


@contextmanager
def validation_run(context: AbstractDataContext) -> Iterator[ValidationRun]:
    """A ValidationRun whose Data Docs are built on leaving, also when a source stopped the run."""
    run = ValidationRun(context)
    try:
        yield run
    finally:
        run.build_docs()
