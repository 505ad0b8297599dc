"""Retention: rows past retention_days go, from files and tables and the stored quarantine; counts are told, never contents."""

from __future__ import annotations

from datetime import date

import polars as pl
import pytest
from typer.testing import CliRunner

from sources.registry import load_registry
from sources.retention import apply_retention, cutoff_for, prune_extract

REGISTRY = load_registry()
SOURCE = REGISTRY["school_absence"]  # retention_days 1825
TODAY = date(2026, 11, 1)
CUTOFF = cutoff_for(SOURCE, TODAY)
OLD, EDGE, NEW = "2021-10-31", CUTOFF.isoformat(), "2026-10-01"


def test_the_cutoff_is_retention_days_before_today():
    assert CUTOFF == date(2021, 11, 2)
    assert cutoff_for(REGISTRY["population"], TODAY) == date(2016, 11, 3)


def test_parquet_rows_before_the_cutoff_are_deleted_and_unreadable_dates_kept(tmp_path):
    frame = pl.DataFrame({
        "person_id": ["010190-1234", "020290-2345", "030390-3456", "040490-4567"],
        "event_date": [date.fromisoformat(d) for d in (OLD, EDGE, NEW, OLD)],
        "absence_pct": [1.0, 2.0, 3.0, 4.0], "known_date": [date(2026, 10, 2)] * 4,
    })
    frame.write_parquet(tmp_path / "school_absence.parquet")
    assert prune_extract(tmp_path, SOURCE, CUTOFF) == 2
    assert pl.read_parquet(tmp_path / "school_absence.parquet")["absence_pct"].to_list() == [2.0, 3.0]
    assert prune_extract(tmp_path, SOURCE, CUTOFF) == 0
    assert [p.name for p in tmp_path.iterdir()] == ["school_absence.parquet"], "no temporary file left behind"


def test_a_danish_latin1_csv_keeps_its_separator_encoding_and_other_rows(tmp_path):
    lines = ["person_id;event_date;absence_pct;known_date;bemærkning",
             f"010190-1234;31-10-2021;12,5;03-11-2021;Århus",
             f"020290-2345;{NEW};0;2026-10-02;Ærø",
             "030390-3456;not a date;1;2026-10-02;ø"]
    path = tmp_path / "school_absence.csv"
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode("cp1252"))
    assert prune_extract(tmp_path, SOURCE, CUTOFF) == 1
    assert path.read_bytes().decode("cp1252").split("\r\n")[:3] == [lines[0], lines[2], lines[3]]


@pytest.mark.parametrize(("encoding", "ending"), [("utf-16", "\r\n"), ("utf-8-sig", "\r"), ("cp1252", "\n")])
def test_a_csv_keeps_its_encoding_and_line_endings(tmp_path, encoding, ending):
    lines = ["person_id;event_date;absence_pct;known_date;bemærkning", "010190-1234;31-10-2021;12,5;03-11-2021;Århus",
             f"020290-2345;{NEW};0;2026-10-02;Ærø"]
    path = tmp_path / "school_absence.csv"
    path.write_bytes((ending.join(lines) + ending).encode(encoding))
    assert prune_extract(tmp_path, SOURCE, CUTOFF) == 1
    assert path.read_bytes() == (ending.join([lines[0], lines[2]]) + ending).encode(encoding)


def test_the_registers_count_file_is_kept_in_step(tmp_path):
    lines = ["person_id;event_date;absence_pct;known_date", f"010190-1234;31-10-2021;12,5;03-11-2021", f"020290-2345;{NEW};0;2026-10-02"]
    (tmp_path / "school_absence.csv").write_bytes(("\r\n".join(lines) + "\r\n").encode("utf-8"))
    (tmp_path / "school_absence.count").write_text("2\n", encoding="ascii")
    assert prune_extract(tmp_path, SOURCE, CUTOFF) == 1
    assert (tmp_path / "school_absence.count").read_text(encoding="ascii") == "1\n"


def test_a_missing_file_has_nothing_to_delete(tmp_path):
    assert prune_extract(tmp_path, SOURCE, CUTOFF) == 0


def test_apply_retention_reports_counts_per_source_and_logs_no_contents(tmp_path, caplog):
    pl.DataFrame({"person_id": ["010190-1234"], "event_date": [OLD], "absence_pct": ["1"], "known_date": [NEW]}).write_csv(tmp_path / "school_absence.csv")
    recorded = []
    caplog.set_level("INFO", logger="sources.retention")
    done = apply_retention(tmp_path, [SOURCE, REGISTRY["evictions"]], TODAY, lambda *args: recorded.append(args) or 7)
    assert [(r.source, r.rows_deleted, r.quarantine_rows_deleted) for r in done] == [("school_absence", 1, 7), ("evictions", 0, 7)]
    assert recorded == [("school_absence", CUTOFF, 1), ("evictions", cutoff_for(REGISTRY["evictions"], TODAY), 0)]
    assert "rows_deleted=1" in caplog.text and "010190-1234" not in caplog.text


@pytest.mark.postgres
def test_table_rows_before_the_cutoff_are_deleted_typed_or_text(postgres_url):
    import sqlalchemy as sa

    engine = sa.create_engine(postgres_url)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE IF EXISTS school_absence"))
        conn.execute(sa.text("CREATE TABLE school_absence (person_id text, event_date text, absence_pct text, known_date text)"))
        conn.execute(sa.text(f"INSERT INTO school_absence VALUES ('a', '31-10-2021', '1', ''), ('b', '{EDGE}', '2', ''), ('c', 'bad', '3', '')"))
    assert prune_extract(postgres_url, SOURCE, CUTOFF) == 1
    with engine.begin() as conn:
        assert sorted(conn.execute(sa.text("SELECT person_id FROM school_absence")).scalars()) == ["b", "c"]
        conn.execute(sa.text("ALTER TABLE school_absence ALTER COLUMN event_date TYPE date USING CASE WHEN event_date ~ '^[0-9]{4}' THEN event_date::date END"))
        conn.execute(sa.text(f"INSERT INTO school_absence VALUES ('d', '{OLD}', '4', '')"))
    assert prune_extract(postgres_url, SOURCE, CUTOFF) == 1
    assert prune_extract(postgres_url, REGISTRY["evictions"], CUTOFF) == 0, "no table: nothing to delete"
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE school_absence"))
    engine.dispose()


def test_the_command_deletes_audits_each_source_and_keeps_recent_quarantine(tmp_path, tidlig_home):
    from audit.log import read, verify
    from casework.store import Store
    from tidlig import settings
    from tidlig.cli import app

    store = Store.from_url(settings.database_url())
    store.create_schema()
    for run_id, as_of in (("old", date(2020, 1, 1)), ("new", date(2026, 10, 31))):
        store.start_run(run_id, as_of, "nightly")
        store.record_source_check(run_id, "school_absence", rows_in=1, rows_valid=0, rows_quarantined=1, quarantine_rows=[
            {"file": "school_absence.csv", "row_number": 1, "column": "absence_pct", "expectation": "x", "reason": "absence_pct is above the maximum 100", "value": "140"},
        ])
    folder = tmp_path / "extracts"
    folder.mkdir()
    pl.DataFrame({"person_id": ["010190-1234", "020290-2345"], "event_date": [OLD, NEW], "absence_pct": ["1", "2"], "known_date": [NEW, NEW]}).write_csv(folder / "school_absence.csv")

    result = CliRunner().invoke(app, ["sources", "retention", "--today", TODAY.isoformat(), "--extracts", str(folder)])
    assert result.exit_code == 0, result.output
    assert "010190-1234" not in result.output
    [line] = [line for line in result.output.splitlines() if line.startswith("school_absence")]
    assert line.split()[1:] == [CUTOFF.isoformat(), "1", "1"]
    assert [q.run_id for q in store.list_quarantine("new")] == ["new"] and store.list_quarantine("old") == []
    events = [e for e in read(store.engine) if e.kind == "retention.applied"]
    assert len(events) == len(REGISTRY)
    [absence] = [e.payload for e in events if e.payload["source"] == "school_absence"]
    assert absence == {"source": "school_absence", "cutoff": CUTOFF.isoformat(), "rows_deleted": 1, "quarantine_rows_deleted": 1}
    assert verify(store.engine).ok

    bad = CliRunner().invoke(app, ["sources", "retention", "--today", "1/11/2026"])
    assert bad.exit_code == 2 and "YYYY-MM-DD" in bad.output
