"""Alembic migrations build the same store the code describes, triggers included, and adopt older stores."""

from __future__ import annotations

from datetime import date

import sqlalchemy as sa

from audit import log as audit_log
from casework import accounts
from casework.store import Store, metadata


def _described(table: sa.Table) -> dict:
    return {
        "columns": {(c.name, c.nullable, getattr(c.type, "length", None)) for c in table.columns},
        "indexes": {i.name for i in table.indexes},
        "checks": {c.name for c in table.constraints if isinstance(c, sa.CheckConstraint)},
    }


def _inspected(engine, name: str) -> dict:
    inspector = sa.inspect(engine)
    return {
        # Lengths too: a column the code widened must be widened by a migration as well.
        "columns": {(c["name"], c["nullable"], getattr(c["type"], "length", None)) for c in inspector.get_columns(name)},
        "indexes": {i["name"] for i in inspector.get_indexes(name)},
        "checks": {c["name"] for c in inspector.get_check_constraints(name)},
    }


def _head() -> str:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from casework.store import MIGRATIONS

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return ScriptDirectory.from_config(config).get_current_head()


def test_migrations_build_every_table_the_code_describes(database_url):
    store = Store.from_url(database_url)
    store.create_schema()
    store.create_schema()  # a second start finds nothing to do

    for table in [*metadata.tables.values(), *audit_log.metadata.tables.values(), *accounts.metadata.tables.values()]:
        wanted, found = _described(table), _inspected(store.engine, table.name)
        assert wanted["columns"] == found["columns"], table.name
        assert wanted["indexes"] <= found["indexes"], table.name
        assert wanted["checks"] <= found["checks"], table.name
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar_one() == _head()
        if conn.dialect.name == "postgresql":
            triggers = conn.exec_driver_sql("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal").scalars().all()
            assert "audit_events_append_only" in triggers
        else:
            triggers = conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'trigger'").scalars().all()
            assert set(triggers) == {"audit_events_no_update", "audit_events_no_delete"}
    store.close()


def test_a_store_made_before_migrations_is_adopted_with_its_data(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = audit_log.make_engine(url)
    audit_log.create_schema(engine)
    metadata.create_all(engine)  # how stores were made before Alembic
    with engine.begin() as conn:
        # Columns added by later migrations were not there yet.
        conn.exec_driver_sql("ALTER TABLE flags DROP COLUMN suppressed_by")
    old = Store(engine)
    old.start_run("run-old", date(2026, 10, 1), "nightly")

    Store.from_url(url).create_schema()

    again = Store.from_url(url)
    assert again.get_run("run-old").status == "running"
    assert audit_log.verify(again.engine).ok
    assert "users" in sa.inspect(again.engine).get_table_names()


def test_flags_decided_before_0007_and_0009_keep_their_deferral_and_count_their_decisions_as_versions(tmp_path):
    from alembic import command
    from alembic.config import Config

    from casework.store import MIGRATIONS

    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = audit_log.make_engine(url)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0006")
        conn.exec_driver_sql("INSERT INTO runs (run_id, as_of, flow, status, started_at) VALUES ('r', '2026-11-01', 'nightly', 'completed', '2026-11-01 02:00:00')")
        for flag_id, status in ((1, "deferred"), (2, "accepted"), (3, "open")):
            conn.exec_driver_sql(
                "INSERT INTO flags (id, as_of, person, target, team, priority, rank, queued, status, rules_version, reasons, run_id, created_at) "
                f"VALUES ({flag_id}, '2026-11-01', 'p{flag_id}', 'child', 't', 1, {flag_id}, 0, '{status}', 'v', '[]', 'r', '2026-11-01 02:00:00')"
            )
        for decision_id, flag_id, decision, until in ((1, 1, "defer", "'2026-12-01'"), (2, 1, "defer", "'2027-01-15'"), (3, 2, "defer", "'2026-12-01'"), (4, 2, "accept", "NULL")):
            conn.exec_driver_sql(
                "INSERT INTO decisions (id, flag_id, decision, reason, by, at, defer_until) "
                f"VALUES ({decision_id}, {flag_id}, '{decision}', 'x', 'mette', '2026-11-0{decision_id} 10:00:00', {until})"
            )

    Store(engine).create_schema()

    with engine.connect() as conn:
        found = {row[0]: tuple(row[1:]) for row in conn.exec_driver_sql("SELECT id, deferred_until, version FROM flags ORDER BY id")}
    assert found == {1: ("2027-01-15", 3), 2: (None, 3), 3: (None, 1)}
