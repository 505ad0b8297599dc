"""The append-only, hash-chained audit log: append inside the caller's transaction, verify, read.

Each row's hash is the HMAC-SHA256 (hex), under the audit key, of the canonical JSON of
``[seq, at, actor, kind, payload, prev_hash]``: keys sorted, no spaces, UTF-8, ``at`` in UTC as
``YYYY-MM-DDTHH:MM:SS.ffffff+00:00``. The first row's prev_hash is 64 zeros. An auditor can
re-check the chain with a SQL client, the key file and any HMAC tool.

The key is why a database login alone cannot forge: the web app's role may insert rows, and the
owner may rewrite them, but neither can compute a hash that verifies. (An append function run as
the owner would keep the web role from writing rows directly, but not from calling it with any
content, nor the owner from rewriting; and SQLite has no roles.) Rows written before the key
came (scheme ``sha256``: the plain SHA-256 of the same JSON) stay verifiable; audit_scheme.keyed_from
says where they end, and every row from there on must be keyed.

A checkpoint (seq, hash, time) is appended to a file outside the database after each run and
decision, so a log cut short or rewritten no longer matches what was seen before.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import logging
import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from audit.cpr import looks_like_cpr
from audit.events import Event

logger = logging.getLogger(__name__)

GENESIS_HASH = "0" * 64
KEYED = "hmac-sha256"
LEGACY = "sha256"  # rows written before the audit key; only below audit_scheme.keyed_from
KEY_ENV = "TIDLIG_AUDIT_KEY"
DIR_ENV = "TIDLIG_AUDIT_DIR"
KEY_FILE = "chain.key"
CHECKPOINT_FILE = "checkpoints.jsonl"

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
    sa.Column("scheme", sa.String(20), nullable=False, server_default=LEGACY),
)

# One row: the first seq that must be keyed. The web app's role may only read it (grant-app-role).
audit_scheme = sa.Table("audit_scheme", metadata, sa.Column("keyed_from", sa.Integer, primary_key=True, autoincrement=False))
sa.event.listen(audit_scheme, "after_create", sa.DDL("INSERT INTO audit_scheme (keyed_from) VALUES (1)"))

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


def entry_hash(
    seq: int, at: datetime, actor: str, kind: str, payload: dict[str, Any], prev_hash: str, *, key: bytes | None
) -> str:
    """The hex digest that links a row to the chain: HMAC-SHA256 under key, or plain SHA-256 for rows from before the key (key=None)."""
    material = canonical_json([seq, _utc_iso(at), actor, kind, payload, prev_hash]).encode("utf-8")
    if key is None:
        return hashlib.sha256(material).hexdigest()
    return hmac.new(key, material, hashlib.sha256).hexdigest()


class AuditKeyError(LookupError):
    """The audit key is missing or unreadable; the message says where it was looked for."""


def audit_dir() -> Path:
    """The folder of the audit key and the checkpoints (TIDLIG_AUDIT_DIR, default TIDLIG_HOME/audit)."""
    if configured := os.environ.get(DIR_ENV):
        return Path(configured).resolve()
    # audit sits below the settings package, so it reads TIDLIG_HOME (default ./.tidlig) itself.
    return Path(os.environ.get("TIDLIG_HOME", ".tidlig")).resolve() / "audit"


def load_key(*, create: bool = False) -> bytes:
    """The audit key: TIDLIG_AUDIT_KEY (hex), else the key file in audit_dir(), made once when create is set."""
    if hex_key := os.environ.get(KEY_ENV):
        return _key_from_hex(hex_key)
    return _key_file(audit_dir() / KEY_FILE, create)


@functools.cache
def _key_from_hex(hex_key: str) -> bytes:
    try:
        return bytes.fromhex(hex_key)
    except ValueError:
        raise AuditKeyError(
            f"{KEY_ENV} must be a hex string (e.g. from `python -c 'import secrets; print(secrets.token_hex(32))'`)"
        ) from None


@functools.cache
def _key_file(path: Path, create: bool) -> bytes:
    # Read once per process: every page view appends, and the key does not change under a running app.
    if not path.exists():
        if not create:
            raise AuditKeyError(
                f"no audit key at {path} (nor {KEY_ENV}): rows written under a key can only be verified with it; "
                f"point {DIR_ENV} (or TIDLIG_HOME) at the folder the log was written with"
            )
        _create_key_file(path)
    try:
        return bytes.fromhex(path.read_text().strip())
    except ValueError:
        raise AuditKeyError(f"the audit key file {path} does not hold a hex key; restore it from the backup") from None


def _create_key_file(path: Path) -> None:
    # Two processes starting at once must end with one key: write aside, then link, which fails if it exists.
    path.parent.mkdir(parents=True, exist_ok=True)
    draft = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(secrets.token_hex(32))
    try:
        os.link(draft, path)
    except FileExistsError:
        pass
    finally:
        draft.unlink()


def append(conn: Connection, event: Event, *, actor: str) -> int:
    """Append an event inside the caller's open transaction and return its seq.

    The row commits or rolls back with the caller's other writes. Write to other tables before
    appending: the lock taken here is held until commit, so doing it last keeps it short and
    avoids deadlocks. On SQLite, use an engine from make_engine so concurrent appenders queue.
    """
    return append_many(conn, [event], actor=actor)[0]


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
    key = load_key(create=True)
    last = _lock_and_read_head(conn)
    seq, prev_hash = last if last else (0, GENESIS_HASH)
    rows = []
    for event, payload in zip(events, payloads):
        seq += 1
        at = datetime.now(timezone.utc)
        digest = entry_hash(seq, at, actor, event.kind, payload, prev_hash, key=key)
        rows.append(dict(seq=seq, at=at, actor=actor, kind=event.kind, payload=canonical_json(payload),
                         prev_hash=prev_hash, hash=digest, scheme=KEYED))
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


def verify(engine: Engine, *, checkpoints: Path | None = None) -> Verification:
    """Walk the chain in seq order and report the first row that was edited, removed, moved or forged.

    An empty or missing log is not intact: a store in use has events. With checkpoints (the file
    write_checkpoint appends to), the chain must also reach every checkpoint with the same hash.
    Raises AuditKeyError when keyed rows exist and the key is not at hand.
    """
    try:
        anchors = _anchors(checkpoints) if checkpoints is not None else {}
    except CheckpointError as exc:
        return Verification(ok=False, checked=0, problem=str(exc))
    if not sa.inspect(engine).has_table(audit_events.name):
        return Verification(ok=False, checked=0, problem=(
            "the store has no audit log (no audit_events table): check that TIDLIG_DATABASE_URL names the store "
            "Tidlig runs on; a store is given its log by its first run or start of the web app"
        ))
    checked, expected_seq, prev_hash = 0, 1, GENESIS_HASH
    with engine.connect() as conn:
        highest = conn.execute(sa.select(sa.func.max(audit_events.c.seq))).scalar_one() or 0
        # A missing row means every row must be keyed: deleting it hides nothing.
        keyed_from = conn.execute(sa.select(sa.func.max(audit_scheme.c.keyed_from))).scalar_one() or 1
        chain = _Chain(highest, keyed_from)
        query = sa.select(audit_events).order_by(audit_events.c.seq)
        # Streamed, so a long log is not held in memory; closed explicitly when we stop early.
        with conn.execution_options(yield_per=1000).execute(query) as rows:
            for row in rows:
                broken = chain.first_break(row, expected_seq, prev_hash) or _off_checkpoint(row, anchors)
                if broken:
                    seq, problem = broken
                    verified = checked - (expected_seq - seq) if seq < expected_seq else checked
                    return Verification(ok=False, checked=max(verified, 0), first_broken_seq=seq, problem=problem)
                checked, expected_seq, prev_hash = checked + 1, row.seq + 1, row.hash
    if checkpoints is not None:
        problem = _short_of_checkpoints(checkpoints, anchors, checked, keyed_from)
        if problem:
            return Verification(ok=False, checked=checked, first_broken_seq=checked + 1, problem=problem)
    if checked == 0:
        return Verification(ok=False, checked=0, first_broken_seq=1, problem=(
            "the audit log is empty, but a store in use records every run, login and decision: either its rows "
            "were deleted, or TIDLIG_DATABASE_URL (or TIDLIG_HOME) names a store that was never used"
        ))
    return Verification(ok=True, checked=checked)


class _Chain:
    """The per-row checks of one walk, with what they need: the highest seq, where keying starts, the key."""

    def __init__(self, highest: int, keyed_from: int) -> None:
        self.highest, self.keyed_from = highest, keyed_from

    @functools.cached_property
    def key(self) -> bytes:
        return load_key()

    def first_break(self, row: sa.Row, expected_seq: int, prev_hash: str) -> tuple[int, str] | None:
        if row.seq > expected_seq:
            missing = f"row {expected_seq}" if row.seq == expected_seq + 1 else f"rows {expected_seq}-{row.seq - 1}"
            return expected_seq, f"{missing} missing: row {row.seq} follows row {expected_seq - 1}; rows were deleted"
        if row.seq < expected_seq:
            return row.seq, f"row {row.seq} has an impossible seq (expected {expected_seq}); the table was altered"
        try:
            payload = loads_event_payload(row.payload)
        except ValueError as exc:
            return row.seq, f"row {row.seq} was edited: its payload {exc}"
        if row.scheme not in (KEYED, LEGACY):
            return row.seq, f"row {row.seq} names the hash scheme {row.scheme!r}, which Tidlig never writes; the table was altered"
        if row.scheme == LEGACY and row.seq >= self.keyed_from:
            return row.seq, (
                f"row {row.seq} was written without the audit key (scheme {LEGACY}) although every row from "
                f"{self.keyed_from} on is keyed: it was added or rewritten outside Tidlig"
            )
        key = self.key if row.scheme == KEYED else None
        if entry_hash(row.seq, row.at, row.actor, row.kind, payload, row.prev_hash, key=key) != row.hash:
            moved_from = self._original_seq(row, payload, key)
            if moved_from is not None:
                return row.seq, f"row {row.seq} holds the entry written as row {moved_from}: rows were moved"
            wrong_key = (
                f"; if every row from {row.seq} on fails, this is not the key the log was written with: "
                f"check {DIR_ENV} and {KEY_ENV}" if row.seq == self.keyed_from and key else ""
            )
            return row.seq, (
                f"row {row.seq} was edited or forged: its hash does not match its contents under the audit key "
                f"(a row added or rewritten without the key cannot match){wrong_key}"
            )
        if row.prev_hash != prev_hash:
            # This row is intact and names the previous row's original hash: the previous row is the fake.
            previous = row.seq - 1
            return previous, f"row {previous} was replaced and its hash recomputed: row {row.seq} no longer links to it"
        return None

    def _original_seq(self, row: sa.Row, payload: dict[str, Any], key: bytes | None) -> int | None:
        # Only reached once, at the first break: cheap enough to try every seq the table could hold.
        for seq in range(1, max(self.highest, row.seq) + 2):
            if seq != row.seq and entry_hash(seq, row.at, row.actor, row.kind, payload, row.prev_hash, key=key) == row.hash:
                return seq
        return None


def loads_event_payload(text: str) -> dict[str, Any]:
    """An event's payload from its stored JSON; ValueError when it is not one JSON object or repeats a key.

    A repeated key would let a SQL client show one value while the hash covers another.
    """
    try:
        payload = json.loads(text, object_pairs_hook=_refuse_repeated_keys)
    except ValueError as exc:
        raise ValueError(str(exc) if isinstance(exc, _RepeatedKey) else "is no longer valid JSON") from None
    if not isinstance(payload, dict):
        raise ValueError("is not a JSON object")
    return payload


class _RepeatedKey(ValueError):
    pass


def _refuse_repeated_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise _RepeatedKey(f"repeats the key {key!r}")
        seen[key] = value
    return seen


# Checkpoints: the chain's head, written after each run and decision to a file the database cannot reach.


@dataclass(frozen=True)
class Checkpoint:
    """The chain's head as it was seen at a moment, kept outside the database."""

    seq: int
    hash: str
    at: datetime
    keyed_from: int


class CheckpointError(ValueError):
    """The checkpoint file cannot be read; the message names the file and line."""


def checkpoint_file() -> Path:
    """The append-only file of checkpoints (checkpoints.jsonl in TIDLIG_AUDIT_DIR)."""
    return audit_dir() / CHECKPOINT_FILE


def write_checkpoint(engine: Engine) -> Checkpoint | None:
    """Append the chain's committed head to the checkpoint file; None while the log is empty.

    Call it after the transaction that appended has committed: a head that was rolled back
    would be a checkpoint no chain can meet.
    """
    keyed_from = sa.select(sa.func.max(audit_scheme.c.keyed_from)).scalar_subquery()
    head = sa.select(audit_events.c.seq, audit_events.c.hash, keyed_from.label("keyed_from"))
    with reading(engine) as conn:
        row = conn.execute(head.order_by(audit_events.c.seq.desc()).limit(1)).first()
    if row is None:
        return None
    checkpoint = Checkpoint(row.seq, row.hash, datetime.now(timezone.utc), row.keyed_from or 1)
    line = canonical_json({"seq": checkpoint.seq, "hash": checkpoint.hash, "at": _utc_iso(checkpoint.at),
                           "keyed_from": checkpoint.keyed_from}) + "\n"
    path = checkpoint_file()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # One write to a file opened for appending: concurrent writers' lines do not interleave.
        descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            os.write(descriptor, line.encode("utf-8"))
        finally:
            os.close(descriptor)
    except OSError as exc:
        # The write it anchors has committed; failing now would tell the caseworker it had not.
        logger.error("audit checkpoint not written", extra={"path": str(path), "error": exc.strerror,
                                                            "hint": f"make {DIR_ENV} writable for this process"})
        return None
    return checkpoint


def read_checkpoints(path: Path) -> list[Checkpoint]:
    """Every checkpoint in the file, in the order written; CheckpointError names a line that is not one."""
    checkpoints = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise CheckpointError(
            f"there is no checkpoint file at {path}: one is written after every run and every decision. Point "
            f"{DIR_ENV} (or TIDLIG_HOME) at the folder the store was used with, or leave out --checkpoints "
            "for a store that has had no run or decision yet"
        ) from None
    for number, line in enumerate(lines, start=1):
        try:
            fields = loads_event_payload(line)
            checkpoint = Checkpoint(int(fields["seq"]), str(fields["hash"]), datetime.fromisoformat(fields["at"]),
                                    int(fields["keyed_from"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise CheckpointError(
                f"checkpoint file {path}, line {number} is not a checkpoint ({exc}); Tidlig only appends whole lines "
                "of seq, hash, at and keyed_from: restore the file from its copy"
            ) from None
        checkpoints.append(checkpoint)
    return checkpoints


def _anchors(path: Path) -> dict[int, Checkpoint]:
    checkpoints = read_checkpoints(path)
    if not checkpoints:
        raise CheckpointError(
            f"the checkpoint file {path} is empty, but one line is written after every run and decision: "
            "restore it from its copy"
        )
    # The latest checkpoint of each seq: all of them must agree, and the check below finds any that do not.
    anchors: dict[int, Checkpoint] = {}
    for checkpoint in checkpoints:
        earlier = anchors.setdefault(checkpoint.seq, checkpoint)
        if earlier.hash != checkpoint.hash:
            raise CheckpointError(
                f"the checkpoint file {path} holds two hashes for event {checkpoint.seq} "
                f"({_when(earlier)} and {_when(checkpoint)}): the log was rewritten between them"
            )
    return anchors


def _off_checkpoint(row: sa.Row, anchors: dict[int, Checkpoint]) -> tuple[int, str] | None:
    anchor = anchors.get(row.seq)
    if anchor is None or anchor.hash == row.hash:
        return None
    return row.seq, (
        f"row {row.seq} is not the event the checkpoint of {_when(anchor)} recorded (hash {anchor.hash[:12]}…, "
        f"now {row.hash[:12]}…): the log was rewritten up to here and its hashes recomputed "
        f"(unless {DIR_ENV} holds another store's checkpoints)"
    )


def _short_of_checkpoints(path: Path, anchors: dict[int, Checkpoint], checked: int, keyed_from: int) -> str | None:
    last = max(anchors.values(), key=lambda checkpoint: checkpoint.seq)
    if last.seq > checked:
        gone = f"event {last.seq}" if last.seq == checked + 1 else f"events {checked + 1}-{last.seq}"
        return (
            f"the log ends at event {checked}, but the checkpoint of {_when(last)} in {path} recorded event "
            f"{last.seq}: {gone} were deleted"
        )
    if any(checkpoint.keyed_from != keyed_from for checkpoint in anchors.values()):
        return (
            f"the store says rows are keyed from event {keyed_from}, but the checkpoints in {path} say from "
            f"event {last.keyed_from}: audit_scheme was changed to pass rows off as written before the key"
        )
    return None


def _when(checkpoint: Checkpoint) -> str:
    return f"{checkpoint.at:%Y-%m-%d %H:%M:%S} UTC"


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
        return [_entry(row) for row in conn.execute(query)]


def _entry(row: sa.Row) -> Entry:
    try:
        payload = loads_event_payload(row.payload)
    except ValueError as exc:
        raise ValueError(f"audit event {row.seq}: its payload {exc}; `tidlig audit verify` shows what else changed") from None
    return Entry(row.seq, _utc(row.at), row.actor, row.kind, payload, row.prev_hash, row.hash)


def _utc(at: datetime) -> datetime:
    # SQLite hands timestamps back without a zone; they were written in UTC.
    return at.replace(tzinfo=timezone.utc) if at.tzinfo is None else at.astimezone(timezone.utc)


def _utc_iso(at: datetime) -> str:
    return _utc(at).isoformat(timespec="microseconds")
