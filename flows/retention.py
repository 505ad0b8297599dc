"""The retention flow: delete what is past each source's retention, audited per source with counts only."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NONE
from pydantic import BaseModel, ConfigDict

from audit.events import StoredResultsDeleted
from audit.log import append
from casework.store import SYSTEM, Store
from flows.nightly import _transient, today_in_copenhagen
from sources.registry import Source, load_registry
from sources.retention import Retained, cutoff_for, log_retained, prune_extract
from tidlig import logs, settings


class RetentionParams(BaseModel):
    """What a retention run needs: the day it runs as of (default today), and optionally other extracts or config."""

    model_config = ConfigDict(frozen=True)

    today: date | None = None
    extracts: Path | None = None
    config: Path | None = None


@task(cache_policy=NONE, retries=2, retry_delay_seconds=5, retry_condition_fn=_transient)
def prune_source(location: Path | str, source: Source, cutoff: date) -> int:
    """Delete one source's extract rows with an event date before the cutoff."""
    return prune_extract(location, source, cutoff)


@task(cache_policy=NONE, retries=2, retry_delay_seconds=5, retry_condition_fn=_transient)
def forget_quarantine(store: Store, source: Source, cutoff: date, rows_deleted: int) -> int:
    """Delete the source's stored quarantine entries of runs before the cutoff and audit both counts."""
    return store.apply_retention(source.name, cutoff, rows_deleted)


# Tidlig asks Prefect to store no results; what is found there was written by an older version or
# another setup, and may hold register rows. A day's grace leaves a run still going its own results.
RESULTS_KEPT_DAYS = 1


def forget_stored_results(store: Store, today: date) -> int:
    """Delete the files in Prefect's local result storage last written before yesterday; audited as a count."""
    from prefect.settings import get_current_settings

    folder = Path(get_current_settings().results.local_storage_path).expanduser()
    cutoff = today - timedelta(days=RESULTS_KEPT_DAYS)
    deleted = 0
    for path in sorted(folder.rglob("*")) if folder.is_dir() else ():
        if path.is_file() and date.fromtimestamp(path.stat().st_mtime) < cutoff:
            path.unlink()
            deleted += 1
    with store.engine.begin() as conn:
        append(conn, StoredResultsDeleted(cutoff, deleted), actor=SYSTEM)
    return deleted


@task(cache_policy=NONE, retries=2, retry_delay_seconds=5, retry_condition_fn=_transient)
def forget_results(store: Store, today: date) -> int:
    """Delete Prefect's stored results from before yesterday and audit the count."""
    return forget_stored_results(store, today)


@flow(name="retention", log_prints=True)
def retention(params: RetentionParams) -> list[Retained]:
    """Apply every source's retention_days to its extract and its stored quarantine (one audit event per source); delete Prefect's stored results."""
    today = params.today or today_in_copenhagen()
    logs.redact_prefect_logs()
    config = settings.load_config(params.config)
    location = params.extracts or settings.extracts_location(config)
    store = Store.from_url(settings.database_url())
    store.create_schema()
    done = []
    for source in load_registry().values():
        cutoff = cutoff_for(source, today)
        rows = prune_source(location, source, cutoff)
        done.append(Retained(source.name, cutoff, rows, forget_quarantine(store, source, cutoff, rows)))
        log_retained(done[-1])
    results = forget_results(store, today)
    get_run_logger().info("event=retention.done sources=%d rows_deleted=%d quarantine_rows_deleted=%d stored_results_deleted=%d",
                          len(done), sum(r.rows_deleted for r in done), sum(r.quarantine_rows_deleted for r in done), results)
    return done
