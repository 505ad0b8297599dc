"""The audit log: appends chain, verify finds the first tampered row, concurrent writers don't fork."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from datetime import date

import pytest
import sqlalchemy as sa

from audit.events import FlagViewed, RunFailed, RunStarted
from audit.log import (
    GENESIS_HASH,
    append,
    audit_events,
    create_schema,
    entry_hash,
    load_key,
    make_engine,
    read,
    reading,
    verify,
)
from tests.audit.tampering import tampering


@pytest.fixture
def engine(database_url):
    engine = make_engine(database_url)
    create_schema(engine)
    yield engine
    engine.dispose()


def append_runs(engine, count, *, start=0):
    for number in range(start, start + count):
        with engine.begin() as conn:
            append(conn, RunStarted(f"run-{number}", date(2026, 1, 1), "nightly"), actor="system")


def test_an_empty_log_is_not_reported_intact(engine):
    result = verify(engine)

    assert (result.ok, result.checked) == (False, 0)
    assert "the audit log is empty" in result.problem and "TIDLIG_DATABASE_URL" in result.problem


def test_chain_verifies_after_many_appends(engine):
    append_runs(engine, 40)
    with engine.begin() as conn:  # several events in one transaction chain too
        for number in range(10):
            append(conn, FlagViewed(number, f"P{number:05d}", "review"), actor="Mette")

    result = verify(engine)

    assert (result.ok, result.checked, result.first_broken_seq, result.problem) == (True, 50, None, None)
    entries = read(engine)
    assert [entry.seq for entry in entries] == list(range(1, 51))
    assert entries[0].prev_hash == GENESIS_HASH
    assert all(later.prev_hash == earlier.hash for earlier, later in zip(entries, entries[1:]))


def test_an_auditor_can_recompute_a_hash_from_the_documented_format(engine, audit_dir):
    append_runs(engine, 1)
    with engine.connect() as conn:
        row = conn.execute(sa.select(audit_events)).one()
    at = read(engine)[0].at.isoformat(timespec="microseconds")
    material = [row.seq, at, row.actor, row.kind, json.loads(row.payload), row.prev_hash]
    canonical = json.dumps(material, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    key = bytes.fromhex((audit_dir / "chain.key").read_text())

    assert row.scheme == "hmac-sha256"
    assert hmac.new(key, canonical.encode(), hashlib.sha256).hexdigest() == row.hash
    assert hashlib.sha256(canonical.encode()).hexdigest() != row.hash
    assert at.endswith("+00:00")


def test_append_belongs_to_the_callers_transaction(engine):
    with pytest.raises(RuntimeError):
        with engine.begin() as conn:
            append(conn, RunStarted("run-x", date(2026, 1, 1), "nightly"), actor="system")
            raise RuntimeError("the flag write failed")
    append_runs(engine, 1)

    assert [entry.seq for entry in read(engine)] == [1]
    assert verify(engine).ok


def test_edited_payload_is_found(engine):
    append_runs(engine, 10)
    with tampering(engine) as conn:
        edited = json.dumps({"as_of": "2026-01-01", "flow": "nightly", "run_id": "run-covered-up"})
        conn.execute(audit_events.update().where(audit_events.c.seq == 7).values(payload=edited))

    result = verify(engine)

    assert not result.ok
    assert result.first_broken_seq == 7
    assert result.checked == 6
    assert "row 7 was edited" in result.problem


def test_forged_row_with_recomputed_hash_is_found_by_the_next_link(engine):
    append_runs(engine, 5)
    forged = {"as_of": "2026-01-01", "flow": "nightly", "run_id": "run-forged"}
    with tampering(engine) as conn:
        row = conn.execute(sa.select(audit_events).where(audit_events.c.seq == 3)).one()
        new_hash = entry_hash(3, row.at, row.actor, row.kind, forged, row.prev_hash, key=load_key())
        conn.execute(
            audit_events.update().where(audit_events.c.seq == 3).values(payload=json.dumps(forged), hash=new_hash)
        )

    result = verify(engine)

    assert (result.first_broken_seq, result.checked) == (3, 2)
    assert "row 3 was replaced" in result.problem


def test_deleted_middle_row_is_found(engine):
    append_runs(engine, 10)
    with tampering(engine) as conn:
        conn.execute(audit_events.delete().where(audit_events.c.seq == 5))

    result = verify(engine)

    assert not result.ok
    assert result.first_broken_seq == 5
    assert result.checked == 4
    assert "row 5 missing" in result.problem and "deleted" in result.problem


def test_deleted_first_rows_are_found(engine):
    append_runs(engine, 4)
    with tampering(engine) as conn:
        conn.execute(audit_events.delete().where(audit_events.c.seq <= 2))

    result = verify(engine)

    assert (result.first_broken_seq, result.checked) == (1, 0)
    assert "rows 1-2 missing" in result.problem


def test_swapped_rows_are_found(engine):
    append_runs(engine, 10)
    with tampering(engine) as conn:
        for old, new in ((4, -1), (5, 4), (-1, 5)):
            conn.execute(audit_events.update().where(audit_events.c.seq == old).values(seq=new))

    result = verify(engine)

    assert not result.ok
    assert result.first_broken_seq == 4
    assert result.checked == 3
    assert "row 4 holds the entry written as row 5" in result.problem


def test_renumbering_after_a_delete_is_found(engine):
    append_runs(engine, 6)
    with tampering(engine) as conn:
        conn.execute(audit_events.delete().where(audit_events.c.seq == 3))
        for seq in (4, 5, 6):
            conn.execute(audit_events.update().where(audit_events.c.seq == seq).values(seq=seq - 1))

    result = verify(engine)

    assert result.first_broken_seq == 3
    assert "row 3 holds the entry written as row 4: rows were moved" in result.problem


def test_the_table_refuses_update_and_delete(engine):
    append_runs(engine, 2)
    for statement in (audit_events.update().values(actor="someone else"), audit_events.delete()):
        with pytest.raises(sa.exc.DatabaseError, match="append-only"):
            with engine.begin() as conn:
                conn.execute(statement)
    assert verify(engine).checked == 2


@pytest.mark.postgres
def test_postgres_refuses_truncate(postgres_engine):
    append_runs(postgres_engine, 1)
    with pytest.raises(sa.exc.DatabaseError, match="append-only: TRUNCATE"):
        with postgres_engine.begin() as conn:
            conn.exec_driver_sql("TRUNCATE audit_events")


def test_concurrent_appends_keep_one_chain(engine):
    threads, per_thread = 6, 15
    errors = []
    barrier = threading.Barrier(threads)

    def writer(number):
        try:
            barrier.wait()
            append_runs(engine, per_thread, start=number * 100)
        except Exception as exc:  # surfaced below: a thread's exception is otherwise lost
            errors.append(exc)

    workers = [threading.Thread(target=writer, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()

    assert errors == []
    result = verify(engine)
    assert result.ok, result.problem
    assert result.checked == threads * per_thread


def test_a_second_writer_waits_for_the_first_to_commit(engine):
    first = engine.connect()
    first.begin()
    first_seq = append(first, RunStarted("run-a", date(2026, 1, 1), "nightly"), actor="system")
    second_seq = []
    second = threading.Thread(
        target=lambda: second_seq.append(_append_one(engine, RunStarted("run-b", date(2026, 1, 1), "nightly")))
    )
    second.start()
    second.join(timeout=1)
    waited = second.is_alive()
    first.commit()
    first.close()
    second.join(timeout=30)

    assert waited, "the second writer should have waited for the first transaction's lock"
    assert (first_seq, second_seq) == (1, [2])
    assert verify(engine).ok


def test_readers_do_not_wait_for_an_appender(engine):
    append_runs(engine, 1)
    with engine.connect() as writer:
        writer.begin()
        append(writer, RunStarted("run-open", date(2026, 1, 1), "nightly"), actor="system")
        # The appender holds its lock until commit; a page's reads go on and see what was committed.
        with reading(engine) as reader:
            assert reader.execute(sa.select(sa.func.count()).select_from(audit_events)).scalar_one() == 1
        writer.commit()
    assert verify(engine).checked == 2


def test_an_append_as_a_connection_s_first_statement_commits_with_it(engine):
    with engine.connect() as conn:
        append(conn, RunStarted("run-first", date(2026, 1, 1), "nightly"), actor="system")
        conn.commit()
    assert [entry.payload["run_id"] for entry in read(engine)] == ["run-first"]


def _append_one(engine, event):
    with engine.begin() as conn:
        return append(conn, event, actor="system")


def test_read_filters_by_kind_and_limits(engine):
    append_runs(engine, 3)
    with engine.begin() as conn:
        append(conn, FlagViewed(1, "P00001", "review"), actor="Mette")
        append(conn, RunFailed("run-9", date(2026, 1, 1), "score", "boom"), actor="system")

    assert [entry.kind for entry in read(engine, kind="flag.viewed")] == ["flag.viewed"]
    assert [entry.seq for entry in read(engine, limit=2)] == [1, 2]
    assert [entry.seq for entry in read(engine, limit=2, newest_first=True)] == [5, 4]
    viewed = read(engine, kind="flag.viewed")[0]
    assert viewed.actor == "Mette"
    assert viewed.payload == {"flag_id": 1, "person": "P00001", "purpose": "review"}
    assert viewed.at.tzinfo is not None


def test_append_refuses_a_missing_or_cpr_actor(engine):
    event = RunStarted("run-1", date(2026, 1, 1), "nightly")
    with engine.begin() as conn:
        with pytest.raises(ValueError, match="needs an actor"):
            append(conn, event, actor=" ")
        with pytest.raises(ValueError, match="CPR"):
            append(conn, event, actor="010190-1234")
    assert read(engine) == []


@pytest.fixture
def postgres_engine(postgres_url):
    engine = make_engine(postgres_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP SCHEMA public CASCADE")
        conn.exec_driver_sql("CREATE SCHEMA public")
    create_schema(engine)
    yield engine
    engine.dispose()
