"""Staff accounts, teams, sessions, login throttling and case notes, stored next to the flags.

Passwords are kept only as Argon2 hashes; session tokens only as SHA-256 digests, so a copy of
the database gives nobody a way in. Writes that matter to an auditor (a user created, a team's
capacity changed, a note added, a login) append their event in the same transaction.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.engine import Engine

from audit import log as audit_log
from casework.store import metadata as store_metadata
from audit.cpr import looks_like_cpr
from audit.events import CapacityChanged, NoteAdded, UserCreated, UserStatusChanged

ROLES = ("caseworker", "teamlead", "auditor", "admin")
TEAM_ROLES = ("caseworker", "teamlead")
SESSION_LIFETIME = timedelta(hours=8)  # one working day
SESSION_IDLE = timedelta(minutes=30)
# Login throttling slows guessing down without ever locking the real user out. A key that has
# failed `free` times must wait, from its last failure, 1 s, then 2 s, 4 s ... up to `longest`;
# an attempt made while waiting is refused unchecked and uncounted, and after the wait the right
# password works. The (account, address) pair is always throttled. The account across addresses
# (guessing from many machines) and the address across accounts (trying one password on many)
# are throttled only from addresses the account has not signed in from lately: an attacker
# elsewhere can slow the account's strangers, never the user at their usual desk.
FAILURE_WINDOW = timedelta(hours=1)
KNOWN_ADDRESS_FOR = timedelta(days=30)


@dataclass(frozen=True)
class Throttle:
    """How many failures in the window are free, and the longest wait after more."""

    free: int
    longest: timedelta

    def wait_after(self, failures: int) -> timedelta:
        """The wait after this many failures: none while free, then doubling from one second."""
        if failures < self.free:
            return timedelta(0)
        return min(timedelta(seconds=2 ** min(failures - self.free, 30)), self.longest)


PAIR_THROTTLE = Throttle(free=3, longest=timedelta(minutes=15))
ADDRESS_THROTTLE = Throttle(free=20, longest=timedelta(minutes=15))
# Short: it is the one a person signing in from a new place may meet during an attack on them.
ACCOUNT_THROTTLE = Throttle(free=5, longest=timedelta(minutes=1))
MIN_PASSWORD_LENGTH = 12

# Accounts live in the casework store's schema, with its naming convention for constraints.
metadata = sa.MetaData(naming_convention=store_metadata.naming_convention)

teams = sa.Table(
    "teams",
    metadata,
    sa.Column("id", sa.String(100), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("department", sa.String(200), nullable=False),
    sa.Column("weekly_capacity", sa.Integer, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True)),
    sa.Column("updated_by", sa.String(100)),
)

users = sa.Table(
    "users",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("username", sa.String(100), nullable=False, unique=True),
    sa.Column("display_name", sa.String(200), nullable=False),
    sa.Column("role", sa.String(20), nullable=False),
    sa.Column("team", sa.String(100), sa.ForeignKey("teams.id")),
    # Null for accounts that only sign in through the municipality's single sign-on.
    sa.Column("password_hash", sa.String(200)),
    sa.Column("oidc_subject", sa.String(255), unique=True),
    sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

sessions = sa.Table(
    "sessions",
    metadata,
    sa.Column("token_hash", sa.String(64), primary_key=True),
    sa.Column("user_id", sa.ForeignKey("users.id"), nullable=False, index=True),
    sa.Column("csrf_token", sa.String(64), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
)

login_attempts = sa.Table(
    "login_attempts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("username", sa.String(100), nullable=False, index=True),
    sa.Column("client", sa.String(100), nullable=False, index=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("succeeded", sa.Boolean, nullable=False),
)

notes = sa.Table(
    "notes",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("flag_id", sa.ForeignKey("flags.id"), nullable=False, index=True),
    sa.Column("author", sa.String(100), nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
)

rule_snapshots = sa.Table(
    "rule_snapshots",
    metadata,
    sa.Column("version", sa.String(200), primary_key=True),
    sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("files", sa.JSON, nullable=False),  # file name -> the rule file's text
)

_hasher = PasswordHasher()
# Each Argon2 hash takes 64 MiB for a moment: a burst of logins must queue, not exhaust memory.
_hashing_slots = threading.BoundedSemaphore(4)


class AccountError(ValueError):
    """An account could not be created or changed; the message says what to fix."""


@dataclass(frozen=True)
class User:
    """A member of staff who may sign in, with the role that decides what they see."""

    id: int
    username: str
    display_name: str
    role: str
    team: str | None
    active: bool


@dataclass(frozen=True)
class Team:
    """A team that receives flags, and how many it can take up in a week."""

    id: str
    name: str
    department: str
    weekly_capacity: int
    updated_at: datetime | None
    updated_by: str | None


@dataclass(frozen=True)
class Session:
    """A signed-in browser: whose it is and the token its forms must carry."""

    user: User
    csrf_token: str


@dataclass(frozen=True)
class Note:
    """A caseworker's note on a flag."""

    id: int
    flag_id: int
    author: str
    text: str
    at: datetime


class Accounts:
    """Users, teams, sessions and notes on the store's database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # Teams

    def sync_teams(self, team_specs: list[dict[str, Any]]) -> None:
        """Add teams from the routing table that the store does not know yet; known teams keep their capacity."""
        with self.engine.begin() as conn:
            known = set(conn.execute(sa.select(teams.c.id)).scalars())
            new = [spec for spec in team_specs if spec["id"] not in known]
            if new:
                conn.execute(
                    teams.insert(),
                    [
                        dict(id=s["id"], name=s["name"], department=s["department"], weekly_capacity=s["weekly_capacity"])
                        for s in new
                    ],
                )

    def list_teams(self) -> list[Team]:
        """Every team, by name."""
        with self.engine.connect() as conn:
            return [_team(row) for row in conn.execute(sa.select(teams).order_by(teams.c.name))]

    def get_team(self, team_id: str) -> Team:
        """One team by id."""
        with audit_log.reading(self.engine) as conn:
            row = conn.execute(sa.select(teams).where(teams.c.id == team_id)).first()
        if row is None:
            raise LookupError(f"no team with id {team_id!r}; teams come from routing/teams.yaml")
        return _team(row)

    def set_capacity(self, team_id: str, weekly_capacity: int, *, by: str) -> None:
        """Change a team's weekly capacity; the change and who made it go to the audit log."""
        if not 0 <= weekly_capacity <= 1000:
            raise AccountError(f"weekly capacity must be between 0 and 1000 flags, not {weekly_capacity}")
        with self.engine.begin() as conn:
            row = conn.execute(sa.select(teams).where(teams.c.id == team_id)).first()
            if row is None:
                raise LookupError(f"no team with id {team_id!r}")
            conn.execute(
                teams.update()
                .where(teams.c.id == team_id)
                .values(weekly_capacity=weekly_capacity, updated_at=_now(), updated_by=by)
            )
            audit_log.append(conn, CapacityChanged(team_id, row.weekly_capacity, weekly_capacity), actor=by)

    # Users

    def add_user(
        self, username: str, display_name: str, role: str, team: str | None, password: str | None, *, by: str
    ) -> User:
        """Create an account; caseworkers and team leads need a team, the others must not have one."""
        username = username.strip().lower()
        display_name = display_name.strip()
        _check_new_user(username, display_name, role, team, password)
        with self.engine.begin() as conn:
            if team is not None and conn.execute(sa.select(teams.c.id).where(teams.c.id == team)).first() is None:
                known = ", ".join(conn.execute(sa.select(teams.c.id).order_by(teams.c.id)).scalars())
                raise AccountError(f"unknown team {team!r}; use one of: {known}")
            if conn.execute(sa.select(users.c.id).where(users.c.username == username)).first() is not None:
                raise AccountError(f"the username {username!r} is taken; choose another")
            user_id = conn.execute(
                users.insert()
                .values(
                    username=username,
                    display_name=display_name,
                    role=role,
                    team=team,
                    password_hash=_hasher.hash(password) if password else None,
                    active=True,
                    created_at=_now(),
                )
                .returning(users.c.id)
            ).scalar_one()
            audit_log.append(conn, UserCreated(username, role, team), actor=by)
        return User(user_id, username, display_name, role, team, True)

    def list_users(self) -> list[User]:
        """Every account, by username."""
        with audit_log.reading(self.engine) as conn:
            return [_user(row) for row in conn.execute(sa.select(users).order_by(users.c.username))]

    def get_user(self, username: str) -> User | None:
        """An account by username, or None."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(users).where(users.c.username == username.strip().lower())).first()
        return _user(row) if row else None

    def set_active(self, username: str, active: bool, *, by: str) -> None:
        """Lock or unlock an account; a locked account's sessions end at once."""
        with self.engine.begin() as conn:
            row = conn.execute(sa.select(users).where(users.c.username == username)).first()
            if row is None:
                raise LookupError(f"no user named {username!r}")
            conn.execute(users.update().where(users.c.id == row.id).values(active=active))
            if not active:
                conn.execute(sessions.delete().where(sessions.c.user_id == row.id))
            audit_log.append(conn, UserStatusChanged(username, active), actor=by)

    # Login and sessions

    def login_wait(self, username: str, client: str) -> timedelta:
        """How long this account must wait before trying from this address; zero when it may try now."""
        username, client, now = username.strip().lower()[:100], client[:100], _now()
        since = now - FAILURE_WINDOW
        failed = sa.and_(login_attempts.c.at >= since, sa.not_(login_attempts.c.succeeded))
        pair = sa.and_(login_attempts.c.username == username, login_attempts.c.client == client)
        with self.engine.connect() as conn:
            last_success = conn.execute(
                sa.select(sa.func.max(login_attempts.c.at)).where(pair, login_attempts.c.succeeded)
            ).scalar_one()
            last_success = _utc(last_success) if last_success is not None else None
            # A success from this address starts its count afresh.
            pair_failed = sa.and_(failed, pair, login_attempts.c.at > last_success) if last_success else sa.and_(failed, pair)
            keys = [(PAIR_THROTTLE, pair_failed)]
            if last_success is None or last_success < now - KNOWN_ADDRESS_FOR:
                keys += [
                    (ACCOUNT_THROTTLE, sa.and_(failed, login_attempts.c.username == username)),
                    (ADDRESS_THROTTLE, sa.and_(failed, login_attempts.c.client == client)),
                ]
            wait = timedelta(0)
            for throttle, condition in keys:
                failures, last = conn.execute(
                    sa.select(sa.func.count(), sa.func.max(login_attempts.c.at)).where(condition)
                ).one()
                if failures:
                    wait = max(wait, _utc(last) + throttle.wait_after(failures) - now)
        return wait

    def authenticate(self, username: str, password: str, client: str) -> User | None:
        """The active user whose password this is, or None; every attempt is counted for throttling."""
        username = username.strip().lower()[:100]
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(users).where(users.c.username == username)).first()
        user = None
        with _hashing_slots:
            if row is not None and row.active and row.password_hash:
                try:
                    _hasher.verify(row.password_hash, password)
                    user = _user(row)
                except (VerificationError, InvalidHashError):
                    pass
            else:
                # Hash anyway, so the response time does not tell which usernames exist.
                _hasher.hash(password or "-")
        with self.engine.begin() as conn:
            conn.execute(
                login_attempts.insert().values(username=username, client=client[:100], at=_now(), succeeded=user is not None)
            )
            if user is not None and _hasher.check_needs_rehash(row.password_hash):
                conn.execute(users.update().where(users.c.id == user.id).values(password_hash=_hasher.hash(password)))
        return user

    def start_session(self, user: User) -> str:
        """A new session for the user; returns the token for the cookie (only its digest is stored)."""
        token = secrets.token_urlsafe(32)
        now = _now()
        with self.engine.begin() as conn:
            conn.execute(
                sessions.insert().values(
                    token_hash=_digest(token), user_id=user.id, csrf_token=secrets.token_urlsafe(32),
                    created_at=now, last_seen_at=now,
                )
            )
            # Old sessions are swept here rather than by a scheduler: logins are frequent enough.
            conn.execute(sessions.delete().where(sessions.c.created_at < now - SESSION_LIFETIME))
        return token

    def session(self, token: str) -> Session | None:
        """The live session for a cookie token, or None when it is unknown, expired, idle or its user is locked."""
        now = _now()
        with audit_log.reading(self.engine) as conn:
            row = conn.execute(
                sa.select(sessions, users)
                .join(users, users.c.id == sessions.c.user_id)
                .where(sessions.c.token_hash == _digest(token))
            ).first()
        if row is None or not row.active:
            return None
        if _utc(row.created_at) < now - SESSION_LIFETIME or _utc(row.last_seen_at) < now - SESSION_IDLE:
            self.end_session(token)
            return None
        # Touch at most once a minute: one write per page view would serialise every reader on SQLite.
        if _utc(row.last_seen_at) < now - timedelta(minutes=1):
            with self.engine.begin() as conn:
                conn.execute(sessions.update().where(sessions.c.token_hash == _digest(token)).values(last_seen_at=now))
        return Session(_user(row), row.csrf_token)

    def end_session(self, token: str) -> None:
        """Log out: the token stops working at once."""
        with self.engine.begin() as conn:
            conn.execute(sessions.delete().where(sessions.c.token_hash == _digest(token)))

    # Notes

    def add_note(self, flag_id: int, person: str, text: str, *, by: str) -> Note:
        """Add a caseworker's note to a flag; the note's existence (not its text) goes to the audit log."""
        text = text.strip()
        if not text:
            raise AccountError("the note is empty; write what the next caseworker needs to know")
        if len(text) > 4000:
            raise AccountError(f"the note is {len(text)} characters; keep it under 4,000 and put documents in the case system")
        if looks_like_cpr(text):
            raise AccountError("the note seems to contain a CPR number; describe the person without it")
        at = _now()
        with self.engine.begin() as conn:
            note_id = conn.execute(
                notes.insert().values(flag_id=flag_id, author=by, text=text, at=at).returning(notes.c.id)
            ).scalar_one()
            audit_log.append(conn, NoteAdded(flag_id, person, note_id), actor=by)
        return Note(note_id, flag_id, by, text, at)

    def list_notes(self, flag_ids: list[int]) -> list[Note]:
        """Notes on the given flags, oldest first."""
        if not flag_ids:
            return []
        with audit_log.reading(self.engine) as conn:
            rows = conn.execute(sa.select(notes).where(notes.c.flag_id.in_(flag_ids)).order_by(notes.c.at, notes.c.id))
            return [Note(r.id, r.flag_id, r.author, r.text, _utc(r.at)) for r in rows]

    # Rule versions

    def record_rules(self, version: str, folder: Path) -> bool:
        """Keep the text of the rule files under their version, once; True when the version was new."""
        files = {path.name: path.read_text(encoding="utf-8") for path in sorted(folder.glob("*.yaml"))}
        with self.engine.begin() as conn:
            if conn.execute(sa.select(rule_snapshots.c.version).where(rule_snapshots.c.version == version)).first():
                return False
            conn.execute(rule_snapshots.insert().values(version=version, recorded_at=_now(), files=files))
        return True

    def rule_versions(self) -> list[tuple[str, datetime, dict[str, str]]]:
        """Every recorded rules version with its files, newest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(rule_snapshots).order_by(rule_snapshots.c.recorded_at.desc()))
            return [(r.version, _utc(r.recorded_at), dict(r.files)) for r in rows]


def _check_new_user(username: str, display_name: str, role: str, team: str | None, password: str | None) -> None:
    if not username or len(username) > 100 or not all(c.isalnum() or c in "._-" for c in username):
        raise AccountError(f"username {username!r}: use 1-100 letters, digits, '.', '_' or '-'")
    if looks_like_cpr(username) or looks_like_cpr(display_name):
        raise AccountError("a username or name must not contain a CPR number")
    if not display_name:
        raise AccountError("give the person's name as colleagues know it")
    if role not in ROLES:
        raise AccountError(f"unknown role {role!r}; use one of: {', '.join(ROLES)}")
    if role in TEAM_ROLES and not team:
        raise AccountError(f"a {role} belongs to a team: give the team id")
    if role not in TEAM_ROLES and team:
        raise AccountError(f"an {role} does not belong to a team: leave the team out")
    if password is not None and len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(f"the password is too short: use at least {MIN_PASSWORD_LENGTH} characters")


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _user(row: sa.Row) -> User:
    return User(row.id, row.username, row.display_name, row.role, row.team, bool(row.active))


def _team(row: sa.Row) -> Team:
    return Team(
        row.id, row.name, row.department, row.weekly_capacity, row.updated_at and _utc(row.updated_at), row.updated_by
    )


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _utc(at: datetime) -> datetime:
    # SQLite hands timestamps back without a zone; they were written in UTC.
    return at.replace(tzinfo=timezone.utc) if at.tzinfo is None else at.astimezone(timezone.utc)

