"""The casework store: runs, source checks, quarantine, flags and decisions, each write audited.

Every method is one transaction, and its audit event is appended in that same transaction, so a
flag or a decision never exists without its event (nor the other way round).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from audit import log as audit_log
from audit.cpr import redact_cpr
from audit.events import (
    CapacityCut,
    DeliveryAccepted,
    FlagCreated,
    FlagDecided,
    FlagViewed,
    RetentionApplied,
    RunFailed,
    RunFinished,
    RunStarted,
    SourceValidated,
    jsonable,
)
from casework.decisions import DECISIONS, LOCAL_ZONE, Conflict, DecisionConflict, DecisionRefused, problems, stored_reason
from routing.flags import BelowCapacity, FlagDraft, Reason, Suppression, TeamCut

SYSTEM = "system"
FLAG_STATUSES = ("open", "accepted", "dismissed", "deferred", "suppressed")
QUARANTINE_KEYS = ("file", "row_number", "column", "expectation", "reason", "value")
MIGRATIONS = Path(__file__).with_name("migrations")

# Named constraints, so that Alembic migrations can refer to them later.
metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("run_id", sa.String(100), primary_key=True),
    sa.Column("as_of", sa.Date, nullable=False),
    sa.Column("flow", sa.String(100), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("finished_at", sa.DateTime(timezone=True)),
    sa.Column("counts", sa.JSON),
    sa.Column("failed_stage", sa.String(100)),
    sa.Column("error", sa.Text),
    # With as_of, the run key: the same key again finds the work done (migration 0005).
    sa.Column("snapshot", sa.String(64)),
    sa.Column("model_version", sa.String(200)),
    sa.Column("rules_version", sa.String(500)),
    sa.Index("ix_runs_as_of_flow", "as_of", "flow"),
)

source_checks = sa.Table(
    "source_checks",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("run_id", sa.ForeignKey("runs.run_id"), nullable=False, index=True),
    sa.Column("source", sa.String(100), nullable=False),
    sa.Column("rows_in", sa.Integer, nullable=False),
    sa.Column("rows_valid", sa.Integer, nullable=False),
    sa.Column("rows_quarantined", sa.Integer, nullable=False),
    sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("rows_in = rows_valid + rows_quarantined", name="rows_accounted"),
)

quarantine = sa.Table(
    "quarantine",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("run_id", sa.ForeignKey("runs.run_id"), nullable=False, index=True),
    sa.Column("source", sa.String(100), nullable=False),
    sa.Column("file", sa.String(500), nullable=False),
    sa.Column("row_number", sa.Integer, nullable=False),
    sa.Column("column", sa.String(200)),  # null when the expectation covers the whole row
    sa.Column("expectation", sa.String(200), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("value", sa.Text),
)

flags = sa.Table(
    "flags",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("as_of", sa.Date, nullable=False),
    sa.Column("person", sa.String(100), nullable=False),
    sa.Column("target", sa.String(20), nullable=False),
    sa.Column("team", sa.String(100), nullable=False),
    sa.Column("priority", sa.Integer, nullable=False),
    sa.Column("rank", sa.Integer, nullable=False),
    sa.Column("queued", sa.Boolean, nullable=False),
    sa.Column("status", sa.String(20), nullable=False, server_default="open"),
    sa.Column("score", sa.Integer),
    sa.Column("probability", sa.Float),
    sa.Column("model_version", sa.String(200)),
    sa.Column("rules_version", sa.String(500), nullable=False),
    sa.Column("reasons", sa.JSON, nullable=False),
    sa.Column("suppressed_by", sa.JSON),  # the suppression rules that held; null for a flag on the list
    sa.Column("signals", sa.JSON),  # the model's top signals behind the score; null when not scored
    # Each member's own score and its calibrated risk (0011): a family flag's score is its highest member's.
    sa.Column("member_scores", sa.JSON),
    # The source rows behind the reasons and signals: person, feature, source, event and known dates (0007).
    sa.Column("evidence", sa.JSON),
    sa.Column("deferred_until", sa.Date),  # set while deferred: from that date the flag is due again
    # Raised by every decision: a decision names the version it was made on, so a second one on a stale view is refused (0009).
    sa.Column("version", sa.Integer, nullable=False, server_default="1"),
    sa.Column("run_id", sa.ForeignKey("runs.run_id"), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("ranking_value", sa.Float),  # where the week's ranking put it (0010); null when suppressed
    sa.UniqueConstraint("as_of", "person"),
    sa.CheckConstraint(f"status IN {FLAG_STATUSES}", name="status"),
    sa.Index("ix_flags_team_as_of", "team", "as_of"),
)

# Raised by the rules but ranked below the team's capacity that week (0010): not a flag, nobody is
# asked to act, kept so that who was left out can be audited and compared with those just above the cut.
below_capacity = sa.Table(
    "below_capacity",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("as_of", sa.Date, nullable=False),
    sa.Column("person", sa.String(100), nullable=False),
    sa.Column("target", sa.String(20), nullable=False),
    sa.Column("team", sa.String(100), nullable=False),
    sa.Column("rank", sa.Integer, nullable=False),
    sa.Column("priority", sa.Integer, nullable=False),
    sa.Column("ranking_value", sa.Float, nullable=False),
    sa.Column("score", sa.Integer),
    sa.Column("probability", sa.Float),
    sa.Column("model_version", sa.String(200)),
    sa.Column("rules_version", sa.String(500), nullable=False),
    sa.Column("rule_ids", sa.JSON, nullable=False),
    sa.Column("members", sa.JSON, nullable=False),
    sa.Column("run_id", sa.ForeignKey("runs.run_id"), nullable=False),
    sa.UniqueConstraint("as_of", "person"),
    sa.Index("ix_below_capacity_team_as_of", "team", "as_of"),
)

# Each team's cut of an as-of date (0010): capacity, flags shown, legal duties, below, cut-off score.
capacity_cuts = sa.Table(
    "capacity_cuts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("as_of", sa.Date, nullable=False),
    sa.Column("team", sa.String(100), nullable=False),
    sa.Column("capacity", sa.Integer, nullable=False),
    sa.Column("candidates", sa.Integer, nullable=False),
    sa.Column("shown", sa.Integer, nullable=False),
    sa.Column("legal_duty", sa.Integer, nullable=False),
    sa.Column("below", sa.Integer, nullable=False),
    sa.Column("cutoff_score", sa.Integer),
    sa.Column("cutoff_value", sa.Float),
    sa.Column("run_id", sa.ForeignKey("runs.run_id"), nullable=False),
    sa.UniqueConstraint("as_of", "team"),
)

decisions = sa.Table(
    "decisions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("flag_id", sa.ForeignKey("flags.id"), nullable=False, index=True),
    sa.Column("decision", sa.String(20), nullable=False),
    sa.Column("reason", sa.Text),
    sa.Column("by", sa.String(200), nullable=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("defer_until", sa.Date),
    sa.CheckConstraint(f"decision IN {tuple(DECISIONS)}", name="decision"),
)


@dataclass(frozen=True)
class Run:
    """One pipeline run and how it ended."""

    run_id: str
    as_of: date
    flow: str
    status: str  # running, failed, or the status finish_run was given
    started_at: datetime
    finished_at: datetime | None
    counts: dict[str, Any] | None
    failed_stage: str | None
    error: str | None
    snapshot: str | None = None  # hash of the extracts' bytes the run read
    model_version: str | None = None
    rules_version: str | None = None


@dataclass(frozen=True)
class SourceCheck:
    """Row accounting for one source in one run."""

    run_id: str
    source: str
    rows_in: int
    rows_valid: int
    rows_quarantined: int
    checked_at: datetime


@dataclass(frozen=True)
class QuarantinedRow:
    """One expectation that one source row failed."""

    run_id: str
    source: str
    file: str
    row_number: int
    column: str | None
    expectation: str
    reason: str
    value: str | None


@dataclass(frozen=True)
class Decision:
    """What a caseworker decided about a flag, and why."""

    id: int
    flag_id: int
    decision: str
    reason: str | None
    by: str
    at: datetime
    defer_until: date | None


@dataclass(frozen=True)
class Flag:
    """A stored flag with its reasons and the decisions made on it so far."""

    id: int
    as_of: date
    person: str
    target: str
    team: str
    priority: int
    rank: int
    queued: bool
    status: str
    score: int | None
    probability: float | None
    model_version: str | None
    rules_version: str
    reasons: tuple[Reason, ...]
    run_id: str
    created_at: datetime
    decisions: tuple[Decision, ...] = ()
    suppressed_by: tuple[Suppression, ...] = ()
    signals: tuple[dict, ...] = ()
    evidence: tuple[dict, ...] = ()  # event_date and known_date as dates
    member_scores: tuple[dict, ...] = ()  # person, target, age_years, score, probability, level_risk
    deferred_until: date | None = None
    version: int = 1  # what a decision on this flag names as the version it was made on
    ranking_value: float | None = None

    def due_again(self, today: date) -> bool:
        """True when the flag was deferred to a date that has come: it is open again."""
        return self.status == "deferred" and self.deferred_until is not None and self.deferred_until <= today


class RunInProgress(RuntimeError):
    """Another live process runs the same flow for the same as-of date; the message names it."""


class Store:
    """Reads and writes casework data; every write also lands in the audit log."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @classmethod
    def from_url(cls, url: str) -> Store:
        """A store on a SQLite or PostgreSQL database URL."""
        return cls(audit_log.make_engine(url))

    def create_schema(self) -> None:
        """Bring the database to the newest schema with the Alembic migrations; safe to call on every start."""
        from alembic import command
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        with self.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                # Two processes starting at once (a flow and the web app) would both migrate; the
                # second waits here and then finds nothing left to do. SQLite's BEGIN IMMEDIATE does the same.
                conn.exec_driver_sql("SELECT pg_advisory_xact_lock(7413)")
            config.attributes["connection"] = conn
            command.upgrade(config, "head")

    def close(self) -> None:
        """Close the store's database connections."""
        self.engine.dispose()

    # Runs

    def start_run(self, run_id: str, as_of: date, flow: str) -> None:
        """Record that a run began; a failed run may be started again under the same id."""
        with self.engine.begin() as conn:
            existing = conn.execute(sa.select(runs).where(runs.c.run_id == run_id)).first()
            values = dict(
                as_of=as_of, flow=flow, status="running", started_at=_now(),
                finished_at=None, counts=None, failed_stage=None, error=None,
                snapshot=None, model_version=None, rules_version=None,
            )
            if existing is None:
                conn.execute(runs.insert().values(run_id=run_id, **values))
            elif existing.status != "failed":
                raise ValueError(
                    f"run {run_id!r} already exists and is {existing.status}; "
                    "give a new run a new run_id (only a failed run can be started again)"
                )
            elif (existing.as_of, existing.flow) != (as_of, flow):
                raise ValueError(
                    f"run {run_id!r} was a {existing.flow!r} run for {existing.as_of}; "
                    f"restarting it as {flow!r} for {as_of} would mix two runs: use a new run_id"
                )
            else:
                conn.execute(runs.update().where(runs.c.run_id == run_id).values(**values))
            audit_log.append(conn, RunStarted(run_id, as_of, flow), actor=SYSTEM)

    @contextmanager
    def lease(self, flow: str, as_of: date) -> Iterator[None]:
        """Hold the one lease of a flow's as-of date for the block, or raise RunInProgress naming the run that holds it.

        The lease is a PostgreSQL advisory lock held by a connection, or on SQLite a lock on a file
        beside the database. The server or the kernel lets it go when its holder ends, however it
        ends (SIGKILL too): so the holder of a free lease can say that a run left running is dead.
        """
        name = f"{flow}-{as_of.isoformat()}"
        taking = self._advisory_lock if self.engine.dialect.name == "postgresql" else self._file_lock
        with taking(name) as held:
            if not held:
                raise RunInProgress(self._in_progress(flow, as_of))
            yield

    @contextmanager
    def _advisory_lock(self, name: str) -> Iterator[bool]:
        key = int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True)
        with self.engine.connect() as conn:
            held = conn.execute(sa.text("SELECT pg_try_advisory_lock(:key)"), {"key": key}).scalar()
            conn.commit()  # a session's lock outlives its transaction; the idle connection holds nothing else
            try:
                yield held
            finally:
                if held:
                    try:
                        conn.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": key})
                        conn.commit()
                    except sa.exc.DBAPIError:
                        conn.invalidate()  # the lock ends with its connection

    @contextmanager
    def _file_lock(self, name: str) -> Iterator[bool]:
        database = self.engine.url.database
        if not database or database == ":memory:":
            yield True  # no other process can open this database
            return
        folder = Path(f"{database}-runs")
        folder.mkdir(exist_ok=True)
        lock = os.open(folder / f"{name}.lock", os.O_RDWR | os.O_CREAT)  # not inherited by child processes
        try:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                held = True
            except BlockingIOError:
                held = False
            yield held
        finally:
            os.close(lock)  # and with it the lock

    def _in_progress(self, flow: str, as_of: date) -> str:
        query = sa.select(runs).where(runs.c.flow == flow, runs.c.as_of == as_of, runs.c.status == "running")
        with self.engine.connect() as conn:
            other = conn.execute(query.order_by(runs.c.started_at.desc())).first()
        which = (
            f"run {other.run_id}, started {_utc(other.started_at).astimezone(LOCAL_ZONE):%Y-%m-%d %H:%M:%S %Z}"
            if other else "it is just starting"
        )
        return (
            f"another {flow} run for {as_of} is in progress ({which}); this one stopped without doing anything. "
            "Let that run finish; starting this date again afterwards does only what that run left undone"
        )

    def finish_run(self, run_id: str, status: str, counts: Mapping[str, Any]) -> None:
        """Record that a running run ended with the given status and counts."""
        if not status or status in ("running", "failed"):
            raise ValueError(
                f"finish_run needs a final status such as 'succeeded', not {status!r}; "
                "use fail_run(run_id, stage, error) for a failed run"
            )
        counts = jsonable(dict(counts))
        with self.engine.begin() as conn:
            run = _required_run(conn, run_id)
            if run.status != "running":
                raise ValueError(f"run {run_id!r} is {run.status}, not running; only a running run can be finished")
            conn.execute(
                runs.update().where(runs.c.run_id == run_id).values(status=status, finished_at=_now(), counts=counts)
            )
            audit_log.append(conn, RunFinished(run_id, run.as_of, status, counts), actor=SYSTEM)
        audit_log.write_checkpoint(self.engine)

    def fail_run(self, run_id: str, stage: str, error: str) -> None:
        """Record that a run stopped at a stage, with the error (CPR-shaped numbers blanked out)."""
        error = redact_cpr(error)
        with self.engine.begin() as conn:
            run = _required_run(conn, run_id)
            conn.execute(
                runs.update()
                .where(runs.c.run_id == run_id)
                .values(status="failed", finished_at=_now(), failed_stage=stage, error=error)
            )
            audit_log.append(conn, RunFailed(run_id, run.as_of, stage, error), actor=SYSTEM)
        audit_log.write_checkpoint(self.engine)

    def set_run_key(self, run_id: str, **key: str | None) -> None:
        """Record a running run's key as it becomes known: snapshot, model_version, rules_version."""
        unknown = set(key) - {"snapshot", "model_version", "rules_version"}
        if unknown:
            raise ValueError(f"unknown run key part(s) {sorted(unknown)}; use snapshot, model_version, rules_version")
        with self.engine.begin() as conn:
            run = _required_run(conn, run_id)
            if run.status != "running":
                raise ValueError(f"run {run_id!r} is {run.status}, not running; its key can no longer change")
            conn.execute(runs.update().where(runs.c.run_id == run_id).values(**key))

    def runs_with_key(
        self, as_of: date, flow: str, *, snapshot: str, rules_version: str, model_version: str | None = None,
    ) -> list[Run]:
        """Runs of the same key, oldest first (any model version when model_version is None)."""
        query = sa.select(runs).where(
            runs.c.as_of == as_of, runs.c.flow == flow, runs.c.snapshot == snapshot, runs.c.rules_version == rules_version,
        )
        if model_version is not None:
            query = query.where(runs.c.model_version == model_version)
        with self.engine.connect() as conn:
            return [_run(row) for row in conn.execute(query.order_by(runs.c.started_at, runs.c.run_id))]

    def get_run(self, run_id: str) -> Run:
        """One run by id."""
        with self.engine.connect() as conn:
            return _run(_required_run(conn, run_id))

    # Validation

    def record_source_check(
        self,
        run_id: str,
        source: str,
        rows_in: int,
        rows_valid: int,
        rows_quarantined: int,
        quarantine_rows: Iterable[Mapping[str, Any]] = (),
        rows_trimmed: int = 0,
    ) -> None:
        """Store a source's row accounting and its quarantined rows; refuse if rows went missing."""
        if min(rows_in, rows_valid, rows_quarantined) < 0:
            raise ValueError(
                f"source {source!r}: row counts cannot be negative ({rows_in=}, {rows_valid=}, {rows_quarantined=})"
            )
        if rows_in != rows_valid + rows_quarantined:
            missing = rows_in - rows_valid - rows_quarantined
            gap = f"{missing} unaccounted for" if missing > 0 else f"{-missing} too many"
            raise ValueError(
                f"source {source!r}: {rows_in} rows in, but {rows_valid} valid + {rows_quarantined} quarantined "
                f"= {rows_valid + rows_quarantined} ({gap}); "
                "every row read must end up valid or quarantined with a reason: fix the validation step"
            )
        entries = [_quarantine_entry(row) for row in quarantine_rows]
        named_rows = len({(entry["file"], entry["row_number"]) for entry in entries})
        if named_rows != rows_quarantined:
            raise ValueError(
                f"source {source!r}: {rows_quarantined} rows counted as quarantined, but quarantine_rows "
                f"name {named_rows} distinct (file, row_number) rows; give every quarantined row "
                "at least one entry with its reason"
            )
        with self.engine.begin() as conn:
            _required_run(conn, run_id)
            conn.execute(
                source_checks.insert().values(
                    run_id=run_id, source=source, rows_in=rows_in, rows_valid=rows_valid,
                    rows_quarantined=rows_quarantined, checked_at=_now(),
                )
            )
            if entries:
                conn.execute(quarantine.insert(), [dict(entry, run_id=run_id, source=source) for entry in entries])
            audit_log.append(
                conn, SourceValidated(run_id, source, rows_in, rows_valid, rows_quarantined, rows_trimmed), actor=SYSTEM
            )

    def accept_delivery(self, run_id: str, source: str, file: str, problems: Sequence[str], *, by: str, reason: str) -> None:
        """Record that a person let the run use an extract that failed its delivery checks, and why."""
        if not by.strip() or not reason.strip():
            raise ValueError("to accept an incomplete or old extract, give your name and a reason: the auditors need both")
        with self.engine.begin() as conn:
            run = _required_run(conn, run_id)
            event = DeliveryAccepted(run_id, run.as_of, source, file, list(problems), by.strip(), reason.strip())
            audit_log.append(conn, event, actor=by.strip())

    def accepted_rows(self) -> dict[str, int]:
        """Each source's rows in the newest completed nightly run that took its delivery without a person's acceptance."""
        query = (
            sa.select(source_checks.c.source, source_checks.c.rows_in, runs.c.counts)
            .join(runs, runs.c.run_id == source_checks.c.run_id)
            .where(runs.c.status == "completed", runs.c.flow == "nightly")
            .order_by(source_checks.c.checked_at.desc(), source_checks.c.id.desc())
        )
        found: dict[str, int] = {}
        with self.engine.connect() as conn:
            for source, rows_in, counts in conn.execute(query):
                # An accepted short delivery is no measure of the next one.
                if source not in found and source not in (counts or {}).get("deliveries_accepted", ()):
                    found[source] = rows_in
        return found

    def list_source_checks(self, run_id: str) -> list[SourceCheck]:
        """The row accounting of every source checked in a run."""
        query = sa.select(*_without(source_checks, "id")).where(source_checks.c.run_id == run_id)
        with self.engine.connect() as conn:
            return [
                SourceCheck(**{**row._mapping, "checked_at": _utc(row.checked_at)})
                for row in conn.execute(query.order_by(source_checks.c.id))
            ]

    def list_quarantine(self, run_id: str, *, source: str | None = None) -> list[QuarantinedRow]:
        """The quarantined rows of a run, optionally of one source."""
        query = sa.select(*_without(quarantine, "id")).where(quarantine.c.run_id == run_id)
        if source is not None:
            query = query.where(quarantine.c.source == source)
        with self.engine.connect() as conn:
            return [QuarantinedRow(**row._mapping) for row in conn.execute(query.order_by(quarantine.c.id))]

    def apply_retention(self, source: str, cutoff: date, rows_deleted: int) -> int:
        """Delete the source's quarantine entries of runs before cutoff and audit both counts; the entries deleted."""
        if rows_deleted < 0:
            raise ValueError(f"source {source!r}: rows_deleted cannot be negative ({rows_deleted})")
        # An entry is kept as long from the run that made it as the source's rows from their event date.
        old_runs = sa.select(runs.c.run_id).where(runs.c.as_of < cutoff)
        with self.engine.begin() as conn:
            deleted = conn.execute(
                quarantine.delete().where(quarantine.c.source == source, quarantine.c.run_id.in_(old_runs))
            ).rowcount
            audit_log.append(conn, RetentionApplied(source, cutoff, rows_deleted, deleted), actor=SYSTEM)
        return deleted

    # Flags

    def save_flags(
        self, run_id: str, drafts: Sequence[FlagDraft], evidence: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
        *, below: Sequence[BelowCapacity] = (), cuts: Sequence[TeamCut] = (),
    ) -> list[int]:
        """Store new flags and return their ids; persons already flagged for that as-of date are skipped.

        `evidence` gives, by the draft's person, the source rows behind the flag (features/evidence.py).
        `below` and `cuts` are the rest of routing's decision for the same as-of date: who was ranked
        below capacity and each team's cut, kept in the same transaction (a rerun adds neither twice).
        """
        evidence = evidence or {}
        repeated = sum(n - 1 for n in Counter((d.as_of, d.person) for d in drafts).values())
        if repeated:
            raise ValueError(
                f"{repeated} drafts repeat a person already drafted for the same as-of date; "
                "routing must give one flag per person with all its reasons"
            )
        if any(not draft.reasons for draft in drafts):
            raise ValueError("a flag draft has no reasons; every flag must say why it was raised")
        created: list[tuple[int, FlagDraft]] = []
        dates = sorted({draft.as_of for draft in drafts})
        # One transaction for the whole batch, in bulk: a run killed midway leaves no flag of it.
        with self.engine.begin() as conn:
            _required_run(conn, run_id)
            flagged = sa.select(flags.c.as_of, flags.c.person).where(flags.c.as_of.in_(dates))
            existing = {tuple(row) for row in conn.execute(flagged)} if dates else set()
            new = [draft for draft in drafts if (draft.as_of, draft.person) not in existing]
            if new:
                # ON CONFLICT DO NOTHING still guards against a concurrent run inserting the same person meanwhile.
                conn.execute(_insert_skipping_existing(conn, flags, ["as_of", "person"]), [_flag_values(d, run_id, evidence.get(d.person)) for d in new])
                ours = sa.select(flags.c.id, flags.c.as_of, flags.c.person).where(flags.c.run_id == run_id, flags.c.as_of.in_(dates))
                ids = {(row.as_of, row.person): row.id for row in conn.execute(ours)}
                created = [(ids[draft.as_of, draft.person], draft) for draft in new if (draft.as_of, draft.person) in ids]
            events = [
                FlagCreated(flag_id, draft.as_of, draft.person, draft.team, [r.rule_id for r in draft.reasons], draft.score)
                for flag_id, draft in created
            ]
            audit_log.append_many(conn, events, actor=SYSTEM)
            _save_cuts(conn, run_id, dates, below, cuts)
        return [flag_id for flag_id, _ in created]

    def below_capacity(self, *, team: str | None = None, as_of: date | None = None) -> list[BelowCapacity]:
        """Who was ranked below capacity, newest as-of date first, then by rank."""
        query = sa.select(below_capacity)
        if team is not None:
            query = query.where(below_capacity.c.team == team)
        if as_of is not None:
            query = query.where(below_capacity.c.as_of == as_of)
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(below_capacity.c.as_of.desc(), below_capacity.c.team, below_capacity.c.rank)).all()
        return [
            BelowCapacity(**{**_without_keys(row._mapping, "id", "run_id"), "rule_ids": tuple(row.rule_ids), "members": tuple(row.members)})
            for row in rows
        ]

    def shown_this_week(self, as_of: date) -> dict[str, int]:
        """Per team, the flags earlier nights of as_of's week (Monday on) put on its list: they used the week's capacity."""
        monday = as_of - timedelta(days=as_of.weekday())
        query = (
            sa.select(capacity_cuts.c.team, sa.func.sum(capacity_cuts.c.shown))
            .where(capacity_cuts.c.as_of >= monday, capacity_cuts.c.as_of < as_of)
            .group_by(capacity_cuts.c.team)
        )
        with self.engine.connect() as conn:
            return {team: int(shown) for team, shown in conn.execute(query)}

    def capacity_cuts(self, *, as_of: date) -> list[TeamCut]:
        """Each team's cut of an as-of date."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(capacity_cuts).where(capacity_cuts.c.as_of == as_of).order_by(capacity_cuts.c.id)).all()
        return [TeamCut(**_without_keys(row._mapping, "id", "run_id", "as_of")) for row in rows]

    def list_flags(
        self,
        *,
        team: str | None = None,
        as_of: date | None = None,
        status: str | None = None,
        include_queued: bool = True,
    ) -> list[Flag]:
        """Flags, newest as-of date first, then the team's capacity list before its queue, by rank."""
        if status is not None and status not in FLAG_STATUSES:
            raise ValueError(f"unknown flag status {status!r}; use one of: {', '.join(FLAG_STATUSES)}")
        conditions = [
            condition
            for condition, wanted in (
                (flags.c.team == team, team is not None),
                (flags.c.as_of == as_of, as_of is not None),
                (flags.c.status == status, status is not None),
                (sa.not_(flags.c.queued), not include_queued),
            )
            if wanted
        ]
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(flags)
                .where(*conditions)
                # The list first, then the queue beyond capacity, then what suppression held back.
                .order_by(flags.c.as_of.desc(), flags.c.status == "suppressed", flags.c.queued, flags.c.rank, flags.c.id)
            ).all()
            matching_ids = sa.select(flags.c.id).where(*conditions)
            decided = _decisions_by_flag(conn, decisions.c.flag_id.in_(matching_ids))
        return [_flag(row, decided.get(row.id, ())) for row in rows]

    def decision_history(self, as_of: date, *, days: int = 365) -> Any:
        """Decisions of the `days` before as_of and flags of those days still open and undecided (decision null),
        one row per person the flag was about (routing's HISTORY_SCHEMA)."""
        import polars as pl

        from routing.suppression import HISTORY_SCHEMA

        # A day's margin on each side: routing compares the caseworker's local dates exactly.
        since = datetime.combine(as_of, datetime.min.time(), timezone.utc) - timedelta(days=days + 1)
        until = datetime.combine(as_of, datetime.min.time(), timezone.utc) + timedelta(days=2)
        columns = (flags.c.id, flags.c.as_of, flags.c.person, flags.c.priority, flags.c.reasons)
        decided = (
            sa.select(decisions.c.decision, decisions.c.at, decisions.c.defer_until, *columns)
            .join(flags, decisions.c.flag_id == flags.c.id)
            .where(decisions.c.at >= since, decisions.c.at < until)
        )
        undecided = sa.select(*columns).where(
            flags.c.status == "open", flags.c.as_of < as_of, flags.c.as_of >= as_of - timedelta(days=days)
        )
        with self.engine.connect() as conn:
            found = [((r.decision, _utc(r.at), r.defer_until), r) for r in conn.execute(decided)]
            found += [((None, None, None), r) for r in conn.execute(undecided)]
        rows = []
        for (decision, at, defer_until), row in found:
            # A decision on a family flag is a decision on every member of the family; an open one is open for each.
            members = dict.fromkeys(
                [row.person, *(m for r in row.reasons for m in ([r["person"]] if r.get("person") else r.get("members", ())))]
            )
            rows += [(person, decision, at, row.priority, defer_until, row.id, row.as_of) for person in members]
        return pl.DataFrame(rows, schema=HISTORY_SCHEMA, orient="row")

    def get_flag(self, flag_id: int, *, viewer: str, purpose: str) -> Flag:
        """One flag with its reasons and decisions; the view itself is written to the audit log."""
        if not viewer or not viewer.strip():
            raise ValueError("get_flag needs the viewer's name: every view of a person's flag is logged")
        if not purpose or not purpose.strip():
            raise ValueError("get_flag needs a purpose, e.g. 'review': every view of a person's flag is logged")
        with self.engine.begin() as conn:
            row = _required_flag(conn, flag_id)
            flag = _flag(row, _decisions_by_flag(conn, decisions.c.flag_id == flag_id).get(flag_id, ()))
            audit_log.append(conn, FlagViewed(flag_id, row.person, purpose.strip()), actor=viewer.strip())
        return flag

    def decide(
        self,
        flag_id: int,
        decision: str,
        *,
        reason: str | None,
        by: str,
        defer_until: date | None = None,
        reason_code: str | None = None,
        version: int | None = None,
    ) -> Decision:
        """Record a caseworker's decision on a flag made on the flag's `version`, and update the flag's status.

        Raises DecisionConflict, changing nothing, when the flag has moved on from that version. Without
        a version the decision is taken as made on the flag as it is now, which only an undecided flag
        (open, or deferred to a date that has come) may be: a decided one needs the version it was seen at.
        """
        reason = reason.strip() if reason and reason.strip() else None
        reason_code = reason_code.strip() if reason_code and reason_code.strip() else None
        defer_until = defer_until.date() if isinstance(defer_until, datetime) else defer_until
        if not by or not by.strip():
            raise ValueError("a decision needs the name of the caseworker who made it (by=...)")
        today = datetime.now(LOCAL_ZONE).date()
        if found := problems(decision, reason_code=reason_code, reason=reason, defer_until=defer_until, today=today):
            raise DecisionRefused(found)
        reason = stored_reason(decision, reason_code, reason)
        at = _now()
        with self.engine.begin() as conn:
            row = _required_flag(conn, flag_id)
            if version is None and _decided(row, today):
                raise DecisionConflict(_conflict(conn, flag_id, None, row.version))
            seen = row.version if version is None else version
            # Compare and set: of two decisions made on the same version, the second finds none to change.
            changed = conn.execute(
                flags.update()
                .where(flags.c.id == flag_id, flags.c.version == seen)
                .values(status=DECISIONS[decision], deferred_until=defer_until, version=seen + 1)
            ).rowcount
            if changed != 1:
                current = conn.execute(sa.select(flags.c.version).where(flags.c.id == flag_id)).scalar_one()
                raise DecisionConflict(_conflict(conn, flag_id, seen, current))
            decision_id = conn.execute(
                decisions.insert()
                .values(flag_id=flag_id, decision=decision, reason=reason, by=by, at=at, defer_until=defer_until)
                .returning(decisions.c.id)
            ).scalar_one()
            event = FlagDecided(flag_id, row.person, decision, reason, defer_until)
            audit_log.append(conn, event, actor=by)
        audit_log.write_checkpoint(self.engine)
        return Decision(decision_id, flag_id, decision, reason, by, at, defer_until)


# The web app signs users out by deleting their sessions; every other table it only reads, adds
# to and updates.
APP_ROLE_DELETES = ("sessions",)


def grant_app_role(engine: Engine, role: str) -> list[str]:
    """Give a PostgreSQL login role what the web app needs, and only reading and appending on the audit log.

    Returns the statements run. Refuses a role that owns the tables or is a superuser: no grant
    can hold such a role back.
    """
    from casework import accounts

    if engine.dialect.name != "postgresql":
        raise ValueError(
            f"database roles exist only on PostgreSQL, this store is {engine.dialect.name}; "
            "there the audit log's triggers refuse changes to it"
        )
    with engine.begin() as conn:
        found = conn.execute(
            sa.text("SELECT rolsuper, rolcanlogin FROM pg_roles WHERE rolname = :role"), {"role": role}
        ).first()
        if found is None:
            raise LookupError(f"there is no role {role!r}: create it first (CREATE ROLE {role} LOGIN PASSWORD '...'), then grant again")
        if found.rolsuper:
            raise ValueError(f"role {role!r} is a superuser, so grants cannot hold it back: give the web app a role of its own")
        if not found.rolcanlogin:
            raise ValueError(f"role {role!r} cannot log in: ALTER ROLE {role} LOGIN, then grant again")
        owns = conn.execute(
            sa.text(
                "SELECT pg_has_role(:role, tableowner, 'MEMBER') FROM pg_tables "
                "WHERE schemaname = current_schema() AND tablename = 'audit_events'"
            ),
            {"role": role},
        ).scalar()
        if owns is None:
            raise LookupError("the store has no audit_events table yet: start the app or a run once (it migrates), then grant")
        if owns:
            raise ValueError(
                f"role {role!r} owns the tables (or is a member of their owner), so it could lift any limit: "
                "keep the owner for migrations and the pipeline, and give the web app a role of its own"
            )
        quote = conn.dialect.identifier_preparer.quote
        who, schema = quote(role), quote(conn.execute(sa.text("SELECT current_schema()")).scalar_one())
        tables = [*metadata.tables, *accounts.metadata.tables]
        statements = [f"GRANT USAGE ON SCHEMA {schema} TO {who}"]
        for table, rights in (
            *((name, "SELECT, INSERT, UPDATE" + (", DELETE" if name in APP_ROLE_DELETES else "")) for name in tables),
            ("alembic_version", "SELECT"),  # the app checks at start that the schema is current
            (audit_log.audit_events.name, "SELECT, INSERT"),
            (audit_log.audit_scheme.name, "SELECT"),  # where keyed rows begin: the app must not move it
        ):
            # Anything granted before (an UPDATE on the audit log, say) goes first.
            statements += [f"REVOKE ALL ON {schema}.{quote(table)} FROM {who}", f"GRANT {rights} ON {schema}.{quote(table)} TO {who}"]
        for table, column in conn.execute(
            sa.text(
                "SELECT table_name, column_name FROM information_schema.columns "
                "WHERE table_schema = current_schema() AND table_name = ANY(:tables)"
            ),
            {"tables": [*tables, audit_log.audit_events.name]},
        ):
            sequence = conn.execute(sa.text("SELECT pg_get_serial_sequence(:t, :c)"), {"t": f"{schema}.{quote(table)}", "c": column}).scalar()
            if sequence:
                statements.append(f"GRANT USAGE ON SEQUENCE {sequence} TO {who}")
        for statement in statements:
            conn.exec_driver_sql(statement)
    return statements


def _decided(row: sa.Row, today: date) -> bool:
    # A deferral whose date has come is open again: deciding it needs no look at an earlier version.
    due_again = row.status == "deferred" and row.deferred_until is not None and row.deferred_until <= today
    return row.status in ("accepted", "dismissed", "deferred") and not due_again


def _conflict(conn: Connection, flag_id: int, seen: int | None, current: int) -> Conflict:
    latest = conn.execute(
        sa.select(decisions).where(decisions.c.flag_id == flag_id).order_by(decisions.c.id.desc()).limit(1)
    ).first()
    if latest is None:
        return Conflict(flag_id, seen, current, None, None, None)
    return Conflict(flag_id, seen, current, latest.decision, latest.by, _utc(latest.at))


def _quarantine_entry(row: Mapping[str, Any]) -> dict[str, Any]:
    unknown = set(row) - set(QUARANTINE_KEYS)
    missing = {"file", "row_number", "expectation", "reason"} - set(row)
    if unknown or missing:
        raise ValueError(
            f"a quarantine row has {'unknown keys ' + str(sorted(unknown)) if unknown else ''}"
            f"{' and ' if unknown and missing else ''}{'missing keys ' + str(sorted(missing)) if missing else ''}; "
            f"use exactly: {', '.join(QUARANTINE_KEYS)} (column and value may be None)"
        )
    entry = {key: row.get(key) for key in QUARANTINE_KEYS}
    entry["row_number"] = int(entry["row_number"])
    entry["value"] = None if entry["value"] is None else str(entry["value"])
    # Validation leaves personal columns' values out; a CPR number typed into another column is caught here.
    return {key: redact_cpr(value) if isinstance(value, str) else value for key, value in entry.items()}


def _flag_values(draft: FlagDraft, run_id: str, evidence: Sequence[Mapping[str, Any]] | None) -> dict[str, Any]:
    return dict(
        as_of=draft.as_of,
        person=draft.person,
        target=draft.target,
        team=draft.team,
        priority=draft.priority,
        rank=draft.rank,
        queued=draft.queued,
        status="suppressed" if draft.suppressed_by else "open",
        score=draft.score,
        probability=draft.probability,
        model_version=draft.model_version,
        rules_version=draft.rules_version,
        reasons=jsonable(list(draft.reasons)),
        suppressed_by=jsonable(list(draft.suppressed_by)) if draft.suppressed_by else None,
        signals=jsonable(list(draft.signals)) if draft.signals else None,
        member_scores=jsonable(list(draft.member_scores)) if draft.member_scores else None,
        evidence=[_evidence_row(row) for row in evidence] if evidence else None,
        ranking_value=draft.ranking_value,
        run_id=run_id,
        created_at=_now(),
    )


EVIDENCE_KEYS = ("person", "feature", "source", "event_date", "known_date")


def _evidence_row(row: Mapping[str, Any]) -> dict[str, Any]:
    # Exactly these keys: a register row's other contents never travel with the flag.
    if set(row) != set(EVIDENCE_KEYS):
        raise ValueError(f"an evidence row has keys {sorted(row)}; use exactly: {', '.join(EVIDENCE_KEYS)}")
    return jsonable({key: row[key] for key in EVIDENCE_KEYS})


def _save_cuts(conn: Connection, run_id: str, dates: list[date], below: Sequence[BelowCapacity], cuts: Sequence[TeamCut]) -> None:
    """Routing's cut for the run's as-of date and who fell below it; a rerun of the date keeps the first run's."""
    if not cuts and not below:
        return
    as_of = {b.as_of for b in below} | set(dates)
    if len(as_of) != 1:
        raise ValueError(f"a routing decision is for one as-of date; got flags and below-capacity records for {sorted(as_of)}")
    [as_of] = as_of
    if conn.execute(sa.select(capacity_cuts.c.id).where(capacity_cuts.c.as_of == as_of).limit(1)).first() is not None:
        return  # the first run of this date decided its cut; its flags were kept the same way
    if below:
        conn.execute(
            _insert_skipping_existing(conn, below_capacity, ["as_of", "person"]),
            [dict(jsonable(b.__dict__), as_of=b.as_of, run_id=run_id) for b in below],
        )
    conn.execute(capacity_cuts.insert(), [dict(c.__dict__, as_of=as_of, run_id=run_id) for c in cuts])
    audit_log.append_many(
        conn,
        [CapacityCut(run_id, as_of, c.team, c.capacity, c.shown, c.legal_duty, c.below, c.cutoff_score) for c in cuts],
        actor=SYSTEM,
    )


def _without_keys(mapping: Mapping[str, Any], *names: str) -> dict[str, Any]:
    return {key: value for key, value in mapping.items() if key not in names}


def _insert_skipping_existing(conn: Connection, table: sa.Table, unique: list[str]) -> Any:
    dialects = {"postgresql": postgresql, "sqlite": sqlite}
    if conn.dialect.name not in dialects:
        raise NotImplementedError(f"the casework store runs on SQLite or PostgreSQL, not {conn.dialect.name}")
    # ON CONFLICT DO NOTHING also keeps two concurrent reruns from flagging a person twice.
    return dialects[conn.dialect.name].insert(table).on_conflict_do_nothing(index_elements=unique)


def _required_run(conn: Connection, run_id: str) -> sa.Row:
    row = conn.execute(sa.select(runs).where(runs.c.run_id == run_id)).first()
    if row is None:
        raise LookupError(f"no run with id {run_id!r}; call start_run first")
    return row


def _required_flag(conn: Connection, flag_id: int) -> sa.Row:
    row = conn.execute(sa.select(flags).where(flags.c.id == flag_id)).first()
    if row is None:
        raise LookupError(f"no flag with id {flag_id}; check the id against list_flags")
    return row


def _decisions_by_flag(conn: Connection, condition: Any) -> dict[int, tuple[Decision, ...]]:
    grouped: dict[int, list[Decision]] = {}
    for row in conn.execute(sa.select(decisions).where(condition).order_by(decisions.c.at, decisions.c.id)):
        grouped.setdefault(row.flag_id, []).append(
            Decision(row.id, row.flag_id, row.decision, row.reason, row.by, _utc(row.at), row.defer_until)
        )
    return {flag_id: tuple(items) for flag_id, items in grouped.items()}


def _flag(row: sa.Row, flag_decisions: tuple[Decision, ...]) -> Flag:
    values = dict(row._mapping)
    values["reasons"] = tuple(Reason(**reason) for reason in values["reasons"])
    values["suppressed_by"] = tuple(Suppression(**item) for item in values.get("suppressed_by") or ())
    values["signals"] = tuple(values.get("signals") or ())
    values["member_scores"] = tuple(values.get("member_scores") or ())
    values["evidence"] = tuple(
        {**row, "event_date": date.fromisoformat(row["event_date"]), "known_date": date.fromisoformat(row["known_date"])}
        for row in values.get("evidence") or ()
    )
    values["created_at"] = _utc(values["created_at"])
    return Flag(**values, decisions=flag_decisions)


def _run(row: sa.Row) -> Run:
    values = dict(row._mapping)
    values["started_at"] = _utc(values["started_at"])
    values["finished_at"] = values["finished_at"] and _utc(values["finished_at"])
    return Run(**values)


def _without(table: sa.Table, *names: str) -> list[sa.Column]:
    return [column for column in table.columns if column.name not in names]


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _utc(at: datetime) -> datetime:
    # SQLite hands timestamps back without a zone; they were written in UTC.
    return at.replace(tzinfo=timezone.utc) if at.tzinfo is None else at.astimezone(timezone.utc)
