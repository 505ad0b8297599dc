"""The retention flow through Prefect: each source pruned and audited, counts only."""

from __future__ import annotations

from datetime import date

import polars as pl
import pytest

pytestmark = pytest.mark.prefect


def test_retention_flow_prunes_extracts_and_audits_every_source(tmp_path, tidlig_home, prefect_api):
    from audit.log import read
    from casework.store import Store
    from flows.retention import RetentionParams, retention
    from sources.registry import load_registry
    from tidlig import settings

    folder = tmp_path / "extracts"
    folder.mkdir()
    pl.DataFrame({"person_id": ["010190-1234", "020290-2345"], "event_date": [date(2015, 1, 1), date(2026, 1, 1)],
                  "absence_pct": [1.0, 2.0], "known_date": [date(2026, 1, 2)] * 2}).write_parquet(folder / "school_absence.parquet")

    done = retention(RetentionParams(today=date(2026, 11, 1), extracts=folder))

    assert {r.source: r.rows_deleted for r in done}["school_absence"] == 1
    assert sum(r.rows_deleted for r in done) == 1
    assert pl.read_parquet(folder / "school_absence.parquet")["person_id"].to_list() == ["020290-2345"]
    events = [e.payload for e in read(Store.from_url(settings.database_url()).engine) if e.kind == "retention.applied"]
    assert sorted(e["source"] for e in events) == sorted(load_registry())


def test_retention_deletes_prefect_stored_results_from_before_yesterday_and_audits_the_count(tmp_path, tidlig_home, prefect_api):
    import os

    from prefect.settings import get_current_settings

    from audit.log import read
    from casework.store import Store
    from flows.retention import RetentionParams, retention
    from tidlig import settings

    storage = get_current_settings().results.local_storage_path.expanduser()
    storage.mkdir(parents=True, exist_ok=True)
    old, recent = storage / "a-failed-task-of-last-week", storage / "a-result-of-today"
    old.write_bytes(b"pickled rows")
    recent.write_bytes(b"pickled rows")
    week_ago = (date.today().toordinal() - date(1970, 1, 1).toordinal() - 7) * 86400
    os.utime(old, (week_ago, week_ago))
    (tmp_path / "extracts").mkdir()

    retention(RetentionParams(today=date.today(), extracts=tmp_path / "extracts"))

    assert not old.exists() and recent.exists()
    [event] = [e.payload for e in read(Store.from_url(settings.database_url()).engine) if e.kind == "retention.results_deleted"]
    assert event["files_deleted"] >= 1
    recent.unlink()
