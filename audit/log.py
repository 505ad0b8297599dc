"""The append-only, hash-chained audit log: append inside the caller's transaction, verify, read.

Each row's hash is the SHA-256 (hex) of the canonical JSON of
``[seq, at, actor, kind, payload, prev_hash]``: keys sorted, no spaces, UTF-8, ``at`` in UTC as
``YYYY-MM-DDTHH:MM:SS.ffffff+00:00``. The first row's prev_hash is 64 zeros. An auditor can
re-check the chain with nothing but a SQL client and sha256.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from audit.cpr import looks_like_cpr
from audit.events import Event

GENESIS_HASH = "0" * 64

metadata = sa.MetaData()

audit_events = sa.Table(
    "audit_events",
    metadata,
    # Assigned by append under a lock, not by the database: the number is part of the hash.
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("kind", sa.String(100), nullable=False, index=True),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
)

# The guard catches mistakes and casual edits; an owner can still disable it, which is why the
# chain exists. A statement-level trigger is the only kind PostgreSQL allows for TRUNCATE.
_POSTGRES_GUARDS = [
    """CREATE OR REPLACE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION USING MESSAGE = 'audit_events is append-only: ' || TG_OP || ' is refused';
    END $$""",
    """CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only()""",
]
_SQLITE_GUARDS = [
    f"""CREATE TRIGGER audit_events_no_{operation.lower()} BEFORE {operation} ON audit_events
    BEGIN SELECT RAISE(ABORT, 'audit_events is append-only: {operation} is refused'); END"""
    for operation in ("UPDATE", "DELETE")
]
for _dialect, _guards in (("postgresql", _POSTGRES_GUARDS), ("sqlite", _SQLITE_GUARDS)):
    for _guard in _guards:
        sa.event.listen(audit_events, "after_create", sa.DDL(_guard).execute_if(dialect=_dialect))


@dataclass(frozen=True)
class Entry:
    """One row of the audit log as an auditor reads it."""

    seq: int
    at: datetime
    actor: str
    kind: str
    payload: dict[str, Any]
    prev_hash: str
    hash: str


@dataclass(frozen=True)
class Verification:
    """The outcome of walking the chain: ok, or the first row that breaks it and why."""

    ok: bool
    checked: int  # rows that verified, in seq order, before the first break
    first_broken_seq: int | None = None  # every row before this one verified
    problem: str | None = None


def make_engine(url: str) -> Engine:
    """An engine on which concurrent audit writers wait for each other instead of failing."""
    engine = sa.create_engine(url, pool_pre_ping=True, connect_args=_connect_args(url))
    if engine.dialect.name == "sqlite":
        _serialise_sqlite_writers(engine)
    return engine


def _connect_args(url: str) -> dict[str, Any]:
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return {}
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    return {"timeout": 30}


def _serialise_sqlite_writers(engine: Engine) -> None:
    # pysqlite opens a transaction only at the first write, so two appenders can read the same
    # last hash and one of them then fails. BEGIN IMMEDIATE takes the write lock before the read.
    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        dbapi_connection.execute("PRAGMA foreign_keys = ON")

    @sa.event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        # A read (see reading) writes nothing: in write-ahead-log mode its deferred transaction
        # reads a snapshot without queueing behind every page view's audit append.
        connection.exec_driver_sql("BEGIN" if connection.get_execution_options().get("reading") else "BEGIN IMMEDIATE")


def reading(engine: Engine) -> Connection:
    """A connection for reads only, which waits for no writer and holds nothing open for long.

    PostgreSQL: autocommit, so there is no transaction to open and roll back (each statement sees
    what was committed when it started, as under READ COMMITTED anyway): two round trips fewer.
    SQLite: a deferred transaction instead of make_engine's BEGIN IMMEDIATE.
    """
    if engine.dialect.name == "sqlite":
        return engine.connect().execution_options(reading=True)
    return engine.connect().execution_options(isolation_level="AUTOCOMMIT")


def create_schema(engine: Engine) -> None:
    """Create the audit table (and its append-only guard) if it is missing."""
    metadata.create_all(engine)


def canonical_json(value: Any) -> str:
    """The one JSON spelling of a value that hashes are computed over."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def entry_hash(seq: int, at: datetime, actor: str, kind: str, payload: dict[str, Any], prev_hash: str) -> str:
    """The SHA-256 hex digest that links a row to the chain."""
    material = canonical_json([seq, _utc_iso(at), actor, kind, payload, prev_hash])
    return hashlib.sha256(material.encode("utf-8")).hexdigest()


def append(conn: Connection, event: Event, *, actor: str) -> int:
    """Append an event inside the caller's open transaction and return its seq.

    The row commits or rolls back with the caller's other writes. Write to other tables before
    appending: the lock taken here is held until commit, so doing it last keeps it short and
    avoids deadlocks. On SQLite, use an engine from make_engine so concurrent appenders queue.
    """
    if not actor or not actor.strip():
        raise ValueError("an audit event needs an actor: the person's name, or 'system' for the pipeline")
    if looks_like_cpr(actor):
        raise ValueError("the actor looks like a CPR number; record the person's name or pseudonym")
    payload = event.payload()
    last = _lock_and_read_head(conn)
    seq, prev_hash = (last[0] + 1, last[1]) if last else (1, GENESIS_HASH)
    at = datetime.now(timezone.utc)
    conn.execute(
        audit_events.insert().values(
            seq=seq,
            at=at,
            actor=actor,
            kind=event.kind,
            payload=canonical_json(payload),
            prev_hash=prev_hash,
            hash=entry_hash(seq, at, actor, event.kind, payload, prev_hash),
        )
    )
    return seq


def append_many(conn: Connection, events: Sequence[Event], *, actor: str) -> list[int]:
    """Append events in order inside the caller's open transaction, chained as append would, in one batch.

    For the nightly run's thousands of flag events: one lock and one read of the chain's end
    instead of one per event.
    """
    if not events:
        return []
    if not actor or not actor.strip():
        raise ValueError("an audit event needs an actor: the person's name, or 'system' for the pipeline")
    if looks_like_cpr(actor):
        raise ValueError("the actor looks like a CPR number; record the person's name or pseudonym")
    payloads = [event.payload() for event in events]
    last = _lock_and_read_head(conn)
    seq, prev_hash = last if last else (0, GENESIS_HASH)
    rows = []
    for event, payload in zip(events, payloads):
        seq += 1
        at = datetime.now(timezone.utc)
        digest = entry_hash(seq, at, actor, event.kind, payload, prev_hash)
        rows.append(dict(seq=seq, at=at, actor=actor, kind=event.kind, payload=canonical_json(payload),
                         prev_hash=prev_hash, hash=digest))
        prev_hash = digest
    conn.execute(audit_events.insert(), rows)
    return [row["seq"] for row in rows]


_APPEND_LOCK = 7414


def _lock_and_read_head(conn: Connection) -> tuple[int, str] | None:
    """Lock the log against other appenders until commit, then read the chain's last (seq, hash)."""
    # Two writers reading the same last hash would fork the chain. SQLite: make_engine's BEGIN
    # IMMEDIATE already holds the database's write lock.
    if conn.dialect.name != "postgresql":
        row = conn.execute(
            sa.select(audit_events.c.seq, audit_events.c.hash).order_by(audit_events.c.seq.desc()).limit(1)
        ).first()
        return (row.seq, row.hash) if row else None
    # PostgreSQL: the lock blocks other appenders (not readers) until commit. An advisory lock, as
    # any role may take one; LOCK TABLE ... EXCLUSIVE needs UPDATE or DELETE on the table, which
    # the app's role must not have (`tidlig db grant-app-role`). Lock and read go in
    # one round trip, so the lock is held only for the insert and the commit after it; each
    # statement of a simple query takes its own snapshot under READ COMMITTED, so the read sees
    # every row committed before the lock was granted.
    table = conn.dialect.identifier_preparer.format_table(audit_events)
    lock = f"SELECT pg_advisory_xact_lock({_APPEND_LOCK})"
    if not conn.in_transaction():
        conn.begin()  # the raw cursor below would start one SQLAlchemy does not know to commit
    cursor = conn.connection.dbapi_connection.cursor()
    try:
        cursor.execute(f"{lock}; SELECT seq, hash FROM {table} ORDER BY seq DESC LIMIT 1")
        cursor.nextset()
        row = cursor.fetchone()
    finally:
        cursor.close()
    return (row[0], row[1]) if row else None


def verify(engine: Engine) -> Verification:
    """Walk the chain in seq order and report the first row that was edited, removed or moved."""
    checked, expected_seq, prev_hash = 0, 1, GENESIS_HASH
    with engine.connect() as conn:
        highest = conn.execute(sa.select(sa.func.max(audit_events.c.seq))).scalar_one() or 0
        query = sa.select(audit_events).order_by(audit_events.c.seq)
        # Streamed, so a long log is not held in memory; closed explicitly when we stop early.
        with conn.execution_options(yield_per=1000).execute(query) as rows:
            for row in rows:
                broken = _first_break(row, expected_seq, prev_hash, highest)
                if broken:
                    seq, problem = broken
                    verified = checked - (expected_seq - seq) if seq < expected_seq else checked
                    return Verification(ok=False, checked=max(verified, 0), first_broken_seq=seq, problem=problem)
                checked, expected_seq, prev_hash = checked + 1, row.seq + 1, row.hash
    return Verification(ok=True, checked=checked)


def _first_break(row: sa.Row, expected_seq: int, prev_hash: str, highest: int) -> tuple[int, str] | None:
    if row.seq > expected_seq:
        missing = f"row {expected_seq}" if row.seq == expected_seq + 1 else f"rows {expected_seq}-{row.seq - 1}"
        return expected_seq, f"{missing} missing: row {row.seq} follows row {expected_seq - 1}; rows were deleted"
    if row.seq < expected_seq:
        return row.seq, f"row {row.seq} has an impossible seq (expected {expected_seq}); the table was altered"
    try:
        payload = json.loads(row.payload)
    except ValueError:
        return row.seq, f"row {row.seq} was edited: its payload is no longer valid JSON"
    if entry_hash(row.seq, row.at, row.actor, row.kind, payload, row.prev_hash) != row.hash:
        moved_from = _original_seq(row, payload, highest)
        if moved_from is not None:
            return row.seq, f"row {row.seq} holds the entry written as row {moved_from}: rows were moved"
        return row.seq, f"row {row.seq} was edited: its hash no longer matches its contents"
    if row.prev_hash != prev_hash:
        # This row is intact and names the previous row's original hash: the previous row is the fake.
        previous = row.seq - 1
        return previous, f"row {previous} was replaced and its hash recomputed: row {row.seq} no longer links to it"
    return None


def _original_seq(row: sa.Row, payload: dict[str, Any], highest: int) -> int | None:
    # Only reached once, at the first break: cheap enough to try every seq the table could hold.
    for seq in range(1, max(highest, row.seq) + 2):
        if seq != row.seq and entry_hash(seq, row.at, row.actor, row.kind, payload, row.prev_hash) == row.hash:
            return seq
    return None


def read(
    engine: Engine, *, kind: str | None = None, limit: int | None = None, newest_first: bool = False
) -> list[Entry]:
    """Audit events in seq order (or newest first), optionally of one kind and at most `limit`."""
    query = sa.select(audit_events)
    if kind is not None:
        query = query.where(audit_events.c.kind == kind)
    query = query.order_by(audit_events.c.seq.desc() if newest_first else audit_events.c.seq)
    if limit is not None:
        query = query.limit(limit)
    with engine.connect() as conn:
        return [
            Entry(
                seq=row.seq,
                at=_utc(row.at),
                actor=row.actor,
                kind=row.kind,
                payload=json.loads(row.payload),
                prev_hash=row.prev_hash,
                hash=row.hash,
            )
            for row in conn.execute(query)
        ]


def _utc(at: datetime) -> datetime:
    # SQLite hands timestamps back without a zone; they were written in UTC.
    return at.replace(tzinfo=timezone.utc) if at.tzinfo is None else at.astimezone(timezone.utc)


def _utc_iso(at: datetime) -> str:
    return _utc(at).isoformat(timespec="microseconds")
