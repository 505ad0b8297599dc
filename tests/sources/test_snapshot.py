"""The run key's data snapshot of extract tables: the same rows give the same hash, any change another."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from sources.registry import load_registry
from sources.snapshot import snapshot

pytestmark = pytest.mark.postgres
SOURCES = [load_registry()["school_absence"]]


def _load(engine, rows: str) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE IF EXISTS school_absence"))
        conn.execute(sa.text("CREATE TABLE school_absence (person_id text, event_date date, absence_pct numeric, known_date date)"))
        conn.execute(sa.text(f"INSERT INTO school_absence VALUES {rows}"))


def test_same_rows_in_any_order_give_the_same_snapshot_and_any_change_another(extracts_db):
    url, engine = extracts_db
    absent = snapshot(url, SOURCES)
    a = "('010190-1234', '2024-01-01', 12.5, '2024-01-03')"
    b = "('020290-2345', '2024-01-08', 40, '2024-01-09')"
    _load(engine, f"{a}, {b}")
    first = snapshot(url, SOURCES)
    assert first != absent and first == snapshot(url, SOURCES)
    _load(engine, f"{b}, {a}")
    assert snapshot(url, SOURCES) == first, "a table has no order: reloading the same rows is the same data"
    _load(engine, f"{a}, {b}, {b}")
    assert snapshot(url, SOURCES) != first, "a duplicated row is a change"
    _load(engine, f"{a}, ('020290-2345', '2024-01-08', 41, '2024-01-09')")
    assert snapshot(url, SOURCES) != first, "one changed value is a change"


def test_an_unreachable_server_is_an_io_error_worth_a_retry():
    with pytest.raises(OSError, match="cannot read the extract tables for the run's data snapshot"):
        snapshot("postgresql+psycopg://nobody@127.0.0.1:9/none?connect_timeout=2", SOURCES)
