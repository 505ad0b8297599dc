"""Lifting the audit log's append-only guard, as the tables' owner could: what the chain must catch."""

from __future__ import annotations

from contextlib import contextmanager


@contextmanager
def tampering(engine):
    """A transaction with the append-only guard lifted, as the table's owner could do.

    The tests connect as the PostgreSQL superuser, who may disable the trigger; on SQLite anyone
    with the file may drop it. The point of the chain is to catch exactly this.
    """
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only")
        else:
            conn.exec_driver_sql("DROP TRIGGER audit_events_no_update")
            conn.exec_driver_sql("DROP TRIGGER audit_events_no_delete")
        yield conn
