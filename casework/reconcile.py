"""Casework rows against the audit log: a flag, decision or account changed in the database directly has no event.

Every write the store and the accounts make appends its event in the same transaction, so each
decision row has its flag.decided event, each flag its flag.created event and a status its
latest decision says, each account its user.created event and the active state its latest
user.status_changed says. A row that disagrees was written around Tidlig.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from audit.events import FlagCreated, FlagDecided, UserCreated, UserStatusChanged
from audit.log import Entry, read, reading
from casework.accounts import users
from casework.store import DECISIONS, decisions, flags

UNDECIDED_STATUSES = ("open", "suppressed")  # what save_flags writes; only a decision changes it


def rows_without_events(engine: Engine) -> list[str]:
    """What in the flags, decisions and users tables the audit log does not account for, one line each."""
    events = _events_by_kind(engine)
    with reading(engine) as conn:
        flag_rows = conn.execute(sa.select(flags.c.id, flags.c.as_of, flags.c.person, flags.c.team, flags.c.status,
                                           flags.c.deferred_until).order_by(flags.c.id)).all()
        decision_rows = conn.execute(sa.select(decisions).order_by(decisions.c.flag_id, decisions.c.id)).all()
        user_rows = conn.execute(sa.select(users.c.username, users.c.role, users.c.team, users.c.active)
                                 .order_by(users.c.username)).all()
    return [
        *_flags_against_log(flag_rows, events[FlagCreated.kind], events[FlagDecided.kind]),
        *_decisions_against_log(decision_rows, events[FlagDecided.kind]),
        *_users_against_log(user_rows, events[UserCreated.kind], events[UserStatusChanged.kind]),
    ]


def _events_by_kind(engine: Engine) -> dict[str, list[Entry]]:
    kinds = (FlagCreated.kind, FlagDecided.kind, UserCreated.kind, UserStatusChanged.kind)
    return {kind: read(engine, kind=kind) for kind in kinds}


def _by(entries: list[Entry], field: str) -> dict[object, list[Entry]]:
    grouped: dict[object, list[Entry]] = defaultdict(list)
    for entry in entries:
        grouped[entry.payload.get(field)].append(entry)
    return grouped


def _flags_against_log(rows: list[sa.Row], created: list[Entry], decided: list[Entry]) -> list[str]:
    created_by_flag = {entry.payload.get("flag_id"): entry for entry in created}
    decided_by_flag = _by(decided, "flag_id")
    problems = []
    for row in rows:
        event = created_by_flag.get(row.id)
        written = (row.as_of.isoformat(), row.person, row.team)
        if event is None or (event.payload.get("as_of"), event.payload.get("person"), event.payload.get("team")) != written:
            what = "has no flag.created event" if event is None else f"differs from its flag.created event {event.seq}"
            problems.append(f"flag {row.id} {what} (as-of date, person or team): it was added or changed outside Tidlig")
            continue
        latest = decided_by_flag[row.id][-1] if decided_by_flag.get(row.id) else None
        if latest is None:
            if row.status not in UNDECIDED_STATUSES:
                problems.append(f"flag {row.id} is {row.status}, but the audit log holds no decision on it: its status was changed outside Tidlig")
            continue
        status = DECISIONS.get(latest.payload.get("decision"))
        until = latest.payload.get("defer_until")
        if (row.status, _iso(row.deferred_until)) != (status, until):
            problems.append(
                f"flag {row.id} is {row.status}{_until(row.deferred_until)}, but its latest decision in the audit log "
                f"(event {latest.seq}) makes it {status}{_until(until)}: its status was changed outside Tidlig"
            )
    return problems


def _decisions_against_log(rows: list[sa.Row], decided: list[Entry]) -> list[str]:
    decided_by_flag = _by(decided, "flag_id")
    rows_by_flag: dict[int, list[sa.Row]] = defaultdict(list)
    for row in rows:
        rows_by_flag[row.flag_id].append(row)
    problems = []
    # A flag's decisions and its flag.decided events pair up in the order they were written.
    for flag_id in sorted(rows_by_flag.keys() | {key for key in decided_by_flag if isinstance(key, int)}):
        flag_rows, events = rows_by_flag.get(flag_id, []), decided_by_flag.get(flag_id, [])
        for row, event in zip(flag_rows, events):
            logged = (event.payload.get("decision"), event.payload.get("reason"), event.payload.get("defer_until"), event.actor)
            if (row.decision, row.reason, _iso(row.defer_until), row.by) != logged:
                problems.append(
                    f"decision {row.id} on flag {flag_id} ({row.decision} by {row.by}) differs from its flag.decided "
                    f"event {event.seq} ({logged[0]} by {event.actor}): it was changed outside Tidlig"
                )
        for row in flag_rows[len(events):]:
            problems.append(f"decision {row.id} on flag {flag_id} ({row.decision} by {row.by}) has no flag.decided event: it was added outside Tidlig")
        for event in events[len(flag_rows):]:
            problems.append(f"flag.decided event {event.seq} on flag {flag_id} has no decision row: the decision was deleted outside Tidlig")
    return problems


def _users_against_log(rows: list[sa.Row], created: list[Entry], status_changes: list[Entry]) -> list[str]:
    created_by_name = {entry.payload.get("username"): entry for entry in created}
    latest_status = {entry.payload.get("username"): entry for entry in status_changes}
    problems = []
    for row in rows:
        event = created_by_name.get(row.username)
        if event is None:
            problems.append(f"user {row.username} ({row.role}) has no user.created event: the account was added outside Tidlig")
            continue
        if (event.payload.get("role"), event.payload.get("team")) != (row.role, row.team):
            problems.append(
                f"user {row.username} is {row.role} in team {row.team or '-'}, but was created as "
                f"{event.payload.get('role')} in team {event.payload.get('team') or '-'} (event {event.seq}) and no "
                "event changed it: the role or team was changed outside Tidlig"
            )
        change = latest_status.get(row.username)
        active = change.payload.get("active") if change else True
        if bool(row.active) != active:
            state = "active" if row.active else "locked"
            problems.append(f"user {row.username} is {state}, but the audit log says otherwise: the account was {'unlocked' if row.active else 'locked'} outside Tidlig")
    return problems


def _iso(value: date | None) -> str | None:
    return value.isoformat() if value else None


def _until(value: date | str | None) -> str:
    return f" until {value}" if value else ""
