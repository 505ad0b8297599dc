"""Rules versions in the audit log: who published a version, or which run met it first.

A version is the hash of every rule file, so an edit nobody published still gets a new version
and is still recorded, by the first run that uses it, with published_by left empty. The owner
in a rule file is the office that answers for the rule, not the person who edited it, so it is
never passed off as the author: only `tidlig rules publish --by NAME` names a person.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from audit import log as audit_log
from audit.events import RulesChanged
from rules.engine import RuleSet

SYSTEM = "system"


@dataclass(frozen=True)
class Recorded:
    """A rules version as the audit log holds it."""

    version: str
    published_by: str | None
    run_id: str | None
    at: datetime
    seq: int


def history(engine: Engine) -> list[Recorded]:
    """Every rules version recorded in the audit log, oldest first."""
    with engine.connect() as conn:
        return _recorded(conn)


def record_version(engine: Engine, ruleset: RuleSet, *, by: str | None = None, run_id: str | None = None) -> Recorded | None:
    """Record the rules version unless it already is (published, when `by` is given); None when nothing was new.

    A run records a version it is the first to use; a person publishing names themself, also for
    a version a run has already met, so the log shows who stands behind it.
    """
    if by is not None and not by.strip():
        raise ValueError("publishing rules needs the publisher's name (--by NAME); it goes to the audit log")
    by = by.strip() if by else None
    files = [{"name": f.name, "version": f.version, "owner": f.owner, "sha256": f.sha256} for f in ruleset.files]
    with engine.begin() as conn:
        # Read in the appending transaction: on SQLite it holds the write lock, so two runs record a version once.
        seen = _recorded(conn)
        same = [r for r in seen if r.version == ruleset.version]
        if same and (by is None or any(r.published_by for r in same)):
            return None
        previous = next((r.version for r in reversed(seen) if r.version != ruleset.version), None)
        event = RulesChanged(ruleset.version, previous, files, by, None if by else run_id)
        seq = audit_log.append(conn, event, actor=by or SYSTEM)
    return next(r for r in history(engine) if r.seq == seq)


def _recorded(conn: Connection) -> list[Recorded]:
    table = audit_log.audit_events
    query = sa.select(table.c.seq, table.c.at, table.c.payload).where(table.c.kind == RulesChanged.kind)
    found = []
    for row in conn.execute(query.order_by(table.c.seq)):
        payload = json.loads(row.payload)
        at = row.at.replace(tzinfo=timezone.utc) if row.at.tzinfo is None else row.at
        found.append(Recorded(payload["version"], payload["published_by"], payload["run_id"], at, row.seq))
    return found
