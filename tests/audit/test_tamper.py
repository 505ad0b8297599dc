"""Every way of altering the log or the casework behind it that a database login allows is found by audit verify."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from audit.events import RunStarted
from audit.log import (
    GENESIS_HASH,
    append,
    audit_events,
    audit_scheme,
    canonical_json,
    checkpoint_file,
    entry_hash,
    read,
    read_checkpoints,
    verify,
    write_checkpoint,
)
from casework.accounts import Accounts, users
from casework.reconcile import rows_without_events
from casework.store import Store, decisions, flags, grant_app_role
from routing.flags import FlagDraft, Reason
from tidlig.cli import app
from tests.audit.tampering import tampering

AS_OF = date(2026, 11, 1)
on_postgresql = pytest.mark.parametrize("database_url", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True)


@pytest.fixture
def store(database_url):
    store = Store.from_url(database_url)
    store.create_schema()
    yield store
    store.close()


def append_runs(engine, count, *, start=0):
    for number in range(start, start + count):
        with engine.begin() as conn:
            append(conn, RunStarted(f"run-{number}", AS_OF, "nightly"), actor="system")


def unkeyed_row(seq, prev_hash, payload, *, scheme="sha256"):
    """A row as someone without the key would write it: the documented format, hashed with plain SHA-256."""
    at = datetime.now(timezone.utc)
    digest = entry_hash(seq, at, "system", "run.started", payload, prev_hash, key=None)
    return dict(seq=seq, at=at, actor="system", kind="run.started", payload=canonical_json(payload),
                prev_hash=prev_hash, hash=digest, scheme=scheme)


def test_deleted_tail_rows_are_found_against_the_checkpoint(store):
    append_runs(store.engine, 10)
    write_checkpoint(store.engine)
    with tampering(store.engine) as conn:
        conn.execute(audit_events.delete().where(audit_events.c.seq > 7))

    assert verify(store.engine).ok  # what is left is a sound chain: only the anchor can tell
    result = verify(store.engine, checkpoints=checkpoint_file())

    assert (result.ok, result.checked, result.first_broken_seq) == (False, 7, 8)
    assert "the log ends at event 7" in result.problem and "events 8-10 were deleted" in result.problem


def test_deleting_every_row_is_found(store):
    append_runs(store.engine, 3)
    write_checkpoint(store.engine)
    with tampering(store.engine) as conn:
        conn.execute(audit_events.delete())

    plain, anchored = verify(store.engine), verify(store.engine, checkpoints=checkpoint_file())

    assert not plain.ok and "the audit log is empty" in plain.problem
    assert not anchored.ok and "events 1-3 were deleted" in anchored.problem


def test_a_rewrite_without_the_key_is_found(store):
    append_runs(store.engine, 5)
    write_checkpoint(store.engine)
    with tampering(store.engine) as conn:
        # Rows 2-5 rewritten with hashes recomputed from the documented format: all anyone lacking the key can do.
        conn.execute(audit_events.delete().where(audit_events.c.seq >= 2))
        prev_hash = conn.execute(sa.select(audit_events.c.hash).where(audit_events.c.seq == 1)).scalar_one()
        for seq in range(2, 6):
            row = unkeyed_row(seq, prev_hash, {"as_of": "2026-11-01", "flow": "nightly", "run_id": f"other-{seq}"})
            conn.execute(audit_events.insert().values(**row))
            prev_hash = row["hash"]

    result = verify(store.engine)

    assert (result.ok, result.first_broken_seq, result.checked) == (False, 2, 1)
    assert "row 2 was written without the audit key" in result.problem


def test_a_rewrite_that_also_moves_where_keying_starts_is_found_against_the_checkpoints(store):
    append_runs(store.engine, 4)
    write_checkpoint(store.engine)
    with tampering(store.engine) as conn:
        conn.execute(audit_events.delete())
        conn.execute(audit_scheme.update().values(keyed_from=5))  # as if every row predated the key
        prev_hash = GENESIS_HASH
        for seq in range(1, 5):
            row = unkeyed_row(seq, prev_hash, {"as_of": "2026-11-01", "flow": "nightly", "run_id": f"other-{seq}"})
            conn.execute(audit_events.insert().values(**row))
            prev_hash = row["hash"]

    assert verify(store.engine).ok  # a chain of plain SHA-256 rows: only the anchor can tell
    result = verify(store.engine, checkpoints=checkpoint_file())

    assert (result.ok, result.first_broken_seq) == (False, 4)
    assert "row 4 is not the event the checkpoint" in result.problem and "rewritten" in result.problem


def test_a_repeated_json_key_is_refused(store):
    append_runs(store.engine, 3)
    with tampering(store.engine) as conn:
        # Parsed leniently this is the original payload (the last value wins), so the hash still matches,
        # while a SQL client's reader sees the first value.
        doubled = '{"as_of":"2026-11-01","flow":"nightly","run_id":"run-forged","run_id":"run-1"}'
        conn.execute(audit_events.update().where(audit_events.c.seq == 2).values(payload=doubled))

    result = verify(store.engine)

    assert (result.ok, result.first_broken_seq) == (False, 2)
    assert "repeats the key 'run_id'" in result.problem
    with pytest.raises(ValueError, match="audit event 2: its payload repeats the key 'run_id'"):
        read(store.engine)


def test_checkpoints_are_written_after_runs_and_decisions_outside_the_database(store):
    flag_id = _flag(store)
    store.decide(flag_id, "dismiss", reason="kendt i forvejen", by="mette", reason_code="known_case")
    store.finish_run("run-1", "completed", {"flags": 1})

    written = read_checkpoints(checkpoint_file())
    entries = read(store.engine)

    assert [(c.seq, c.hash) for c in written] == [(e.seq, e.hash) for e in entries if e.kind in ("flag.decided", "run.finished")]
    assert all(c.keyed_from == 1 for c in written)
    assert verify(store.engine, checkpoints=checkpoint_file()).ok


@pytest.mark.parametrize("line", ['{"seq": 3}', "not json", '{"seq":1,"seq":2,"hash":"x","at":"2026-01-01T00:00:00+00:00","keyed_from":1}'])
def test_a_damaged_checkpoint_file_is_named_with_its_line(store, line):
    append_runs(store.engine, 1)
    write_checkpoint(store.engine)
    with checkpoint_file().open("a") as file:
        file.write(line + "\n")

    result = verify(store.engine, checkpoints=checkpoint_file())

    assert not result.ok
    assert f"{checkpoint_file()}, line 2 is not a checkpoint" in result.problem


def test_a_decision_changed_in_the_database_has_no_event(store):
    flag_id = _flag(store)
    store.decide(flag_id, "dismiss", reason="kendt i forvejen", by="mette", reason_code="known_case")
    with store.engine.begin() as conn:
        conn.execute(decisions.update().values(decision="accept", reason=None))
        conn.execute(flags.update().where(flags.c.id == flag_id).values(status="accepted"))

    problems = rows_without_events(store.engine)

    assert verify(store.engine).ok  # the chain itself was not touched
    assert any(f"flag {flag_id} is accepted, but its latest decision in the audit log" in p and "dismissed" in p for p in problems)
    assert any(f"on flag {flag_id} (accept by mette) differs from its flag.decided event" in p for p in problems)


def test_flags_decisions_and_users_written_around_tidlig_are_reported(store):
    flag_id = _flag(store)
    with store.engine.begin() as conn:
        conn.execute(decisions.insert().values(flag_id=flag_id, decision="accept", by="mette", at=datetime.now(timezone.utc)))
        conn.execute(flags.update().where(flags.c.id == flag_id).values(status="accepted"))
        conn.execute(users.insert().values(username="ghost", display_name="Ghost", role="admin", active=True,
                                           created_at=datetime.now(timezone.utc)))

    problems = rows_without_events(store.engine)

    assert any(f"decision 1 on flag {flag_id} (accept by mette) has no flag.decided event" in p for p in problems)
    assert any("user ghost (admin) has no user.created event" in p for p in problems)


def test_an_account_s_role_or_lock_changed_in_the_database_is_reported(store, monkeypatch):
    import casework.accounts
    from argon2 import PasswordHasher

    monkeypatch.setattr(casework.accounts, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    accounts = Accounts(store.engine)
    accounts.sync_teams([{"id": "familie-nord", "name": "Familie Nord", "department": "Familie", "weekly_capacity": 5}])
    accounts.add_user("mette", "Mette Holm", "caseworker", "familie-nord", "korrekt-hest-batteri", by="admin")
    accounts.add_user("ole", "Ole Berg", "auditor", None, "korrekt-hest-batteri", by="admin")
    accounts.set_active("ole", False, by="admin")
    assert rows_without_events(store.engine) == []
    with store.engine.begin() as conn:
        conn.execute(users.update().where(users.c.username == "mette").values(role="admin", team=None))
        conn.execute(users.update().where(users.c.username == "ole").values(active=True))

    problems = rows_without_events(store.engine)

    assert any("user mette is admin in team -, but was created as caseworker in team familie-nord" in p for p in problems)
    assert any("user ole is active, but the audit log says otherwise" in p for p in problems)


def test_work_done_through_tidlig_is_accounted_for(store):
    flag_id = _flag(store)
    store.decide(flag_id, "defer", reason="venter på skolen", by="mette", defer_until=date.today() + timedelta(days=7))
    store.decide(flag_id, "accept", reason=None, by="mette", version=2)

    assert rows_without_events(store.engine) == []


# The web app's PostgreSQL role (tidlig db grant-app-role).


@pytest.fixture
def web_role(app_role):
    """The store's owner, and an engine logged in as the web app's role after `tidlig db grant-app-role`."""
    owner, role, url = app_role
    grant_app_role(owner.engine, role)
    web = sa.create_engine(url)
    yield owner, web
    web.dispose()


@on_postgresql
@pytest.mark.parametrize("scheme", ["sha256", "hmac-sha256"])
def test_a_forged_append_by_the_web_role_is_found(web_role, scheme):
    owner, web = web_role
    append_runs(owner.engine, 3)
    with web.begin() as conn:
        head = conn.execute(sa.select(audit_events).order_by(audit_events.c.seq.desc()).limit(1)).one()
        forged = unkeyed_row(head.seq + 1, head.hash, {"as_of": "2026-11-01", "flow": "nightly", "run_id": "forged"}, scheme=scheme)
        conn.execute(audit_events.insert().values(**forged))

    result = verify(owner.engine)

    assert (result.ok, result.first_broken_seq, result.checked) == (False, 4, 3)
    assert ("row 4 was written without the audit key" if scheme == "sha256" else "row 4 was edited or forged") in result.problem


@on_postgresql
def test_the_web_role_cannot_move_where_keying_starts(web_role):
    owner, web = web_role
    for statement in ("UPDATE audit_scheme SET keyed_from = 100", "DELETE FROM audit_scheme", "INSERT INTO audit_scheme VALUES (100)"):
        with pytest.raises(sa.exc.ProgrammingError, match="permission denied for table audit_scheme"):
            with web.begin() as conn:
                conn.exec_driver_sql(statement)


@on_postgresql
def test_a_decision_the_web_role_changes_directly_is_found(web_role):
    owner, web = web_role
    flag_id = _flag(owner)
    owner.decide(flag_id, "dismiss", reason="kendt i forvejen", by="mette", reason_code="known_case")
    with web.begin() as conn:
        conn.execute(decisions.update().values(decision="accept", reason=None, by="mette"))
        conn.execute(flags.update().values(status="accepted"))

    assert any("differs from its flag.decided event" in p for p in rows_without_events(owner.engine))


# The command line: a store that is not there, or not used, is never reported intact.


def test_verify_refuses_an_empty_home(tidlig_home):
    tidlig_home.mkdir()

    result = CliRunner().invoke(app, ["audit", "verify"])

    assert result.exit_code == 2, result.output
    assert f"TIDLIG_HOME {tidlig_home} is empty" in result.output and "expected tidlig.db" in result.output
    assert list(tidlig_home.iterdir()) == []  # the check made no store


def test_verify_refuses_a_missing_store(tidlig_home):
    tidlig_home.mkdir()
    (tidlig_home / "extracts").mkdir()

    result = CliRunner().invoke(app, ["audit", "verify"])

    assert result.exit_code == 2, result.output
    assert f"there is no store at {tidlig_home / 'tidlig.db'}" in result.output
    assert not (tidlig_home / "tidlig.db").exists()


@on_postgresql
def test_verify_refuses_a_database_without_a_store(database_url, tidlig_home, monkeypatch):
    monkeypatch.setenv("TIDLIG_DATABASE_URL", database_url)

    result = CliRunner().invoke(app, ["audit", "verify"])

    assert result.exit_code == 2, result.output
    assert "holds no Tidlig store (expected the audit_events table)" in result.output
    with sa.create_engine(database_url).connect() as conn:
        assert not sa.inspect(conn).has_table("audit_events")


def test_verify_reports_an_emptied_log_and_rows_without_events(tidlig_home):
    store = Store.from_url(f"sqlite:///{tidlig_home / 'tidlig.db'}")
    store.create_schema()
    flag_id = _flag(store)
    store.decide(flag_id, "dismiss", reason="kendt i forvejen", by="mette", reason_code="known_case")
    runner = CliRunner()
    assert runner.invoke(app, ["audit", "verify", "--checkpoints"]).exit_code == 0
    with store.engine.begin() as conn:
        conn.execute(decisions.update().values(decision="accept", reason=None))
    changed = runner.invoke(app, ["audit", "verify"])
    with tampering(store.engine) as conn:
        conn.execute(audit_events.delete())
    emptied = runner.invoke(app, ["audit", "verify", "--checkpoints"])
    store.close()

    assert changed.exit_code == 1 and "Not in the audit log: decision 1 on flag" in changed.output
    assert emptied.exit_code == 1
    assert "Audit log BROKEN at event 1: the log ends at event 0" in emptied.output and "were deleted" in emptied.output


def _flag(store: Store) -> int:
    reason = Reason("child-notifications", "Gentagne underretninger", "Repeated notifications",
                    "3 underretninger det seneste år", "3 notifications in the past year", 2, {"notifications_365d": 3})
    draft = FlagDraft(as_of=AS_OF, person="a0a0a0a0a0a00001", target="child", team="familie-nord", priority=2, rank=1,
                      queued=False, score=12, probability=0.2, model_version="m/1", rules_version="r", reasons=(reason,))
    store.start_run("run-1", AS_OF, "nightly")
    [flag_id] = store.save_flags("run-1", [draft])
    return flag_id



# A log written before the audit key keeps verifying; from the upgrade on, every row must be keyed.


def test_a_log_from_before_the_key_still_verifies_and_cannot_be_extended_without_it(database_url):
    from alembic import command
    from alembic.config import Config

    from audit.log import make_engine
    from casework.store import MIGRATIONS

    engine = make_engine(database_url)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0007")
        prev_hash = GENESIS_HASH
        for seq in (1, 2, 3):  # as the code before the key wrote them: plain SHA-256, no scheme column
            row = unkeyed_row(seq, prev_hash, {"as_of": "2026-11-01", "flow": "nightly", "run_id": f"old-{seq}"})
            del row["scheme"]
            conn.execute(sa.table("audit_events", *map(sa.column, row)).insert().values(**row))
            prev_hash = row["hash"]

    Store(engine).create_schema()
    append_runs(engine, 2, start=10)

    with engine.connect() as conn:
        schemes = conn.execute(sa.select(audit_events.c.scheme).order_by(audit_events.c.seq)).scalars().all()
        keyed_from = conn.execute(sa.select(audit_scheme.c.keyed_from)).scalar_one()
    assert (schemes, keyed_from) == (["sha256"] * 3 + ["hmac-sha256"] * 2, 4)
    assert verify(engine).checked == 5 and verify(engine).ok

    with engine.begin() as conn:
        head = conn.execute(sa.select(audit_events).order_by(audit_events.c.seq.desc()).limit(1)).one()
        conn.execute(audit_events.insert().values(**unkeyed_row(6, head.hash, {"as_of": "2026-11-01", "flow": "nightly", "run_id": "late"})))
    result = verify(engine)
    engine.dispose()

    assert (result.ok, result.first_broken_seq) == (False, 6)
    assert "every row from 4 on is keyed" in result.problem
