"""The weekly data-quality flow: validate every extract, keep the accounting and Data Docs, report."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

from prefect import flow
from prefect.states import Failed
from prefect.task_runners import ThreadPoolTaskRunner
from pydantic import BaseModel, ConfigDict

from casework.store import Store
from flows.nightly import SIDE_BY_SIDE, ingest, today_in_copenhagen
from tidlig import logs, settings
from validate.context import data_docs_index, gx_context
from validate.contract import DeliveryRefused


class QualityParams(BaseModel):
    """Which extracts to check (default: the configured folder) and with which config."""

    model_config = ConfigDict(frozen=True)

    extracts: Path | None = None
    config: Path | None = None


@dataclass(frozen=True)
class QualityReport:
    """Per source: rows in, valid and quarantined; and where the Data Docs are."""

    run_id: str
    as_of: date
    sources: tuple[tuple[str, int, int, int], ...]
    data_docs: Path


@flow(name="data-quality", log_prints=True, task_runner=ThreadPoolTaskRunner(max_workers=SIDE_BY_SIDE))
def data_quality(params: QualityParams) -> QualityReport:
    """Validate every registered extract without scoring anyone, so data stewards see problems early."""
    from prefect.runtime import flow_run

    as_of = today_in_copenhagen()
    config = settings.load_config(params.config)
    home = settings.home()
    logs.redact_prefect_logs()
    store = Store.from_url(settings.database_url())
    store.create_schema()
    run_id = str(flow_run.id or f"local-quality-{as_of}")
    store.start_run(run_id, as_of, "data-quality")
    context = gx_context(home)
    try:
        ingest(store, run_id, params.extracts or settings.extracts_location(config), context, config.validate_.max_invalid_share, home)
    except DeliveryRefused as refused:
        # The message names each refused file and what to do; a traceback would only bury it.
        store.fail_run(run_id, "read+validate", str(refused))
        return Failed(message=str(refused), data=refused)
    except Exception as exc:
        store.fail_run(run_id, type(exc).__name__, str(exc))
        raise
    checks = tuple((c.source, c.rows_in, c.rows_valid, c.rows_quarantined) for c in store.list_source_checks(run_id))
    for source, rows_in, valid, quarantined in checks:
        print(f"{source}: {rows_in} rows in, {valid} valid, {quarantined} quarantined")
    store.finish_run(run_id, "completed", {"rows_in": sum(c[1] for c in checks), "rows_quarantined": sum(c[3] for c in checks)})
    return QualityReport(run_id=run_id, as_of=as_of, sources=checks, data_docs=data_docs_index(context))
