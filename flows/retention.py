"""The retention flow: delete what is past each source's retention, audited per source with counts only."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NONE
from pydantic import BaseModel, ConfigDict

from casework.store import Store
from flows.nightly import _transient, today_in_copenhagen
from sources.registry import Source, load_registry
from sources.retention import Retained, cutoff_for, log_retained, prune_extract
from tidlig import settings


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


@flow(name="retention", log_prints=True)
def retention(params: RetentionParams) -> list[Retained]:
    """Apply every source's retention_days to its extract and its stored quarantine; one audit event per source."""
    today = params.today or today_in_copenhagen()
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
    get_run_logger().info("event=retention.done sources=%d rows_deleted=%d quarantine_rows_deleted=%d", len(done),
                          sum(r.rows_deleted for r in done), sum(r.quarantine_rows_deleted for r in done))
    return done
