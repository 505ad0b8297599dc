"""On PostgreSQL the web app's own role reads and appends to the audit log, and can change no row of it."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
import sqlalchemy as sa
from argon2 import PasswordHasher

import casework.accounts
from audit.log import read, verify
from casework.accounts import Accounts
from casework.store import Store, grant_app_role
from routing.flags import FlagDraft, Reason

AS_OF = date(2026, 11, 1)
# Roles exist only on PostgreSQL: these tests take only that side of the store fixture.
on_postgresql = pytest.mark.parametrize("database_url", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True)


def _draft() -> FlagDraft:
    reason = Reason("child-notifications", "Gentagne underretninger", "Repeated notifications",
                    "3 underretninger det seneste år", "3 notifications in the past year", 2, {"notifications_365d": 3})
    return FlagDraft(as_of=AS_OF, person="a0a0a0a0a0a00001", target="child", team="familie-nord", priority=2, rank=1,
                     queued=False, score=12, probability=0.2, model_version="m/1", rules_version="r", reasons=(reason,))


@on_postgresql
def test_the_app_role_runs_the_app_but_cannot_change_the_audit_log(app_role, monkeypatch):
    owner, role, url = app_role
    owner.start_run("run-1", AS_OF, "nightly")
    [flag_id] = owner.save_flags("run-1", [_draft()])
    monkeypatch.setattr(casework.accounts, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))

    statements = grant_app_role(owner.engine, role)
    assert any("audit_events" in s and s.startswith("GRANT SELECT, INSERT ON") for s in statements)

    app = Store.from_url(url)
    app.create_schema()  # the app's start: the schema is current, nothing to migrate
    accounts = Accounts(app.engine)
    accounts.sync_teams([{"id": "familie-nord", "name": "Familie Nord", "department": "Familie", "weekly_capacity": 5}])
    user = accounts.add_user("mette", "Mette Holm", "caseworker", "familie-nord", "korrekt-hest-batteri", by="admin")
    token = accounts.start_session(accounts.authenticate("mette", "korrekt-hest-batteri", "127.0.0.1"))
    app.get_flag(flag_id, viewer=user.username, purpose="vurdering")
    accounts.add_note(flag_id, "a0a0a0a0a0a00001", "Ringet til skolen.", by="mette")
    app.decide(flag_id, "defer", reason="venter på skolen", by="mette", defer_until=date.today() + timedelta(days=7))
    accounts.end_session(token)
    assert [e.kind for e in read(app.engine)][-3:] == ["flag.viewed", "flag.note_added", "flag.decided"]

    for statement in ("UPDATE audit_events SET actor = 'x'", "DELETE FROM audit_events", "TRUNCATE audit_events"):
        with pytest.raises(sa.exc.ProgrammingError, match="permission denied for table audit_events"):
            with app.engine.begin() as conn:
                conn.exec_driver_sql(statement)
    app.close()
    assert verify(owner.engine).ok


@on_postgresql
def test_a_role_that_could_lift_the_limits_is_refused(app_role):
    owner, role, _ = app_role
    with pytest.raises(LookupError, match="no role 'nobody_here'.*CREATE ROLE"):
        grant_app_role(owner.engine, "nobody_here")
    superuser = owner.engine.url.username
    with pytest.raises(ValueError, match="superuser"):
        grant_app_role(owner.engine, superuser)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_sqlite_has_no_roles_and_says_so(database_url):
    store = Store.from_url(database_url)
    with pytest.raises(ValueError, match="only on PostgreSQL"):
        grant_app_role(store.engine, "tidlig_web")
