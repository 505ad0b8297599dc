"""Crash safety: a nightly run killed with SIGKILL at any stage leaves nothing half-written, and the next run completes it.

Each run is a real `tidlig run nightly` process; the flow's test hook (TIDLIG_TEST_CRASH_AT, see
flows/nightly.py) kills it at a named stage, including inside the transaction that saves the flags.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import date
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml

from audit.log import read, verify
from casework.store import Store
from sources.synth import SynthSpec, generate
from tidlig.settings import DEFAULTS_FILE, load_config

pytestmark = [pytest.mark.slow, pytest.mark.prefect]
AS_OF = date(2026, 11, 1)
REPO = Path(__file__).parents[2]
CRASH_AT = "TIDLIG_TEST_CRASH_AT"
# Only stops a hung run: on a busy machine one run, with its own temporary API, takes minutes.
PATIENCE = 900
# What the caseworker sees of a flag; ids, run ids and times differ between stores by nature.
SAME = ("as_of", "person", "target", "team", "priority", "rank", "queued", "status", "score", "probability",
        "model_version", "rules_version", "reasons", "suppressed_by", "signals")


@pytest.fixture(scope="module")
def town(tmp_path_factory, prefect_api, promote_a_champion):
    """Extracts, a shared model registry and pseudonym key, and the flags of one uninterrupted run (in this process)."""
    from prefect.settings import PREFECT_API_URL

    from flows.nightly import NightlyParams, nightly

    base = tmp_path_factory.mktemp("crash")
    config = load_config()
    folder = generate(SynthSpec(persons=1000, seed=21, start=config.synth.start, end=config.synth.end, mess=0.02)).write(base / "data")
    # Three training dates instead of eleven: the champion trains in seconds.
    raw = yaml.safe_load(DEFAULTS_FILE.read_text(encoding="utf-8"))
    raw["model"]["training_as_of"] = ["2024-08-01", "2025-02-01", "2025-08-01"]
    config_file = base / "config.yaml"
    config_file.write_text(yaml.safe_dump(raw), encoding="utf-8")
    shared = {
        "TIDLIG_PSEUDONYM_KEY": "5e" * 32,  # the same pseudonyms in every home
        "MLFLOW_TRACKING_URI": f"sqlite:///{base / 'mlflow.db'}",  # the champion every run scores with
        "TIDLIG_HOME": str(base / "reference"),
    }
    saved = {k: os.environ.get(k) for k in (*shared, "TIDLIG_DATABASE_URL")}
    os.environ.update(shared)
    os.environ.pop("TIDLIG_DATABASE_URL", None)
    try:
        promote_a_champion(folder, config=config_file)
        assert nightly(NightlyParams(as_of=AS_OF, extracts=folder, config=config_file)).flags_created
    finally:
        for key, value in saved.items():
            os.environ.pop(key, None) if value is None else os.environ.__setitem__(key, value)
    env = {
        **os.environ, **shared,
        "PREFECT_API_URL": PREFECT_API_URL.value(),  # the session's API: no temporary server per process
        "PREFECT_LOGGING_LEVEL": "WARNING",
    }
    env.pop("TIDLIG_DATABASE_URL", None)
    env.pop(CRASH_AT, None)
    return env, folder, config_file, _flags(base / "reference")


def _nightly(town: tuple, home: Path, crash_at: str | None = None) -> subprocess.CompletedProcess:
    env, folder, config_file, _ = town
    env = {**env, "TIDLIG_HOME": str(home), **({CRASH_AT: crash_at} if crash_at else {})}
    command = [sys.executable, "-m", "tidlig.cli", "run", "nightly", "--as-of", AS_OF.isoformat(),
               "--extracts", str(folder), "--config", str(config_file)]
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=PATIENCE)


def _store(home: Path) -> Store:
    return Store.from_url(f"sqlite:///{home / 'tidlig.db'}")


def _flags(home: Path) -> list[tuple]:
    return sorted(tuple(repr(getattr(f, name)) for name in SAME) for f in _store(home).list_flags(as_of=AS_OF))


def _runs(home: Path) -> list[sa.Row]:
    from casework.store import runs

    with _store(home).engine.connect() as conn:
        return conn.execute(sa.select(runs).order_by(runs.c.started_at)).all()


def _killed(town: tuple, home: Path, crash_at: str) -> list[tuple]:
    """Kill a run at crash_at and check what it left: a verified chain, all flags or none, no completed run."""
    expected = town[-1]
    done = _nightly(town, home, crash_at)
    assert done.returncode == -signal.SIGKILL, f"{crash_at}: the run was not killed\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    store = _store(home)
    assert verify(store.engine).ok, f"{crash_at}: the audit chain does not verify"
    flags = _flags(home)
    assert flags in ([], expected), f"{crash_at}: {len(flags)} flags half-written (expected 0 or {len(expected)})"
    assert len(read(store.engine, kind="flag.created")) == len(flags), "every stored flag has its event, and only those"
    assert _runs(home)[-1].status == "running", f"{crash_at}: the killed run must not show as completed"
    return flags


def test_runs_killed_at_any_stage_leave_no_half_written_state_and_the_next_run_completes_them(town, tmp_path):
    expected = town[-1]
    assert expected, "the reference run should raise flags"
    home = tmp_path / "home"

    # Killed while reading the extracts, and inside the flags' transaction: no flag at all.
    assert _killed(town, home, "validate_source") == []
    assert _killed(town, home, "store_flags:commit") == []
    # Killed after the flags committed but before the run finished: exactly the uninterrupted run's flags.
    assert _killed(town, home, "store_flags") == expected

    done = _nightly(town, home)
    assert done.returncode == 0, done.stderr[-3000:]
    assert " 0 new flags" in done.stdout, done.stdout  # the killed run had saved them all; this one completes it
    assert _flags(home) == expected
    runs = _runs(home)
    assert [r.status for r in runs] == ["failed"] * 3 + ["completed"]
    assert {r.failed_stage for r in runs[:3]} == {"interrupted"}
    store = _store(home)
    assert verify(store.engine).ok
    assert len(read(store.engine, kind="flag.created")) == len(expected)
    assert len(read(store.engine, kind="run.failed")) == 3  # each takeover is in the audit log

    # Once completed, the same key again is a no-op that says so.
    again = _nightly(town, home)
    assert again.returncode == 0 and "Nothing to do" in again.stdout, again.stdout
    assert _flags(home) == expected and len(read(store.engine, kind="flag.created")) == len(expected)


def _processes_marked(mark: str) -> dict[int, str]:
    """The live processes whose environment holds mark (children inherit it), with their command lines."""
    found = {}
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and mark.encode() in (proc / "environ").read_bytes():
                found[int(proc.name)] = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            pass  # gone meanwhile, or not ours to read
    return found


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_killed_run_leaves_no_process_behind(town, tmp_path):
    """Without PREFECT_API_URL each run starts a temporary Prefect API; killing the run ends that API too."""
    env, folder, config_file, _ = town
    mark = f"crash-{uuid.uuid4().hex}"
    env = {**env, "PREFECT_HOME": str(tmp_path / "prefect"), "TIDLIG_HOME": str(tmp_path / "home"), "TIDLIG_TEST_RUN_MARK": mark}
    env.pop("PREFECT_API_URL")
    command = [sys.executable, "-m", "tidlig.cli", "run", "nightly", "--as-of", AS_OF.isoformat(),
               "--extracts", str(folder), "--config", str(config_file)]
    for stage in ("validate_source", "store_flags:commit"):
        # Output to a file: a process left behind would hold a pipe open, and reading it would never end.
        with (tmp_path / f"{stage}.log").open("w") as log:
            done = subprocess.run(command, cwd=REPO, env={**env, CRASH_AT: stage}, stdout=log, stderr=subprocess.STDOUT, timeout=PATIENCE)
        assert done.returncode == -signal.SIGKILL, (tmp_path / f"{stage}.log").read_text()[-3000:]
        deadline = time.monotonic() + 30  # the kernel's death signal is prompt; exiting takes a moment on a busy machine
        while (left := _processes_marked(mark)) and time.monotonic() < deadline:
            time.sleep(0.2)
        for pid in left:
            os.kill(pid, signal.SIGKILL)  # so that a failure here does not leave them running either
        assert not left, f"killed at {stage}, the run left {len(left)} process(es) running: {list(left.values())}"


def test_a_second_run_for_the_same_date_stops_while_the_first_lives_and_leaves_it_alone(town, tmp_path, database_url):
    """Two real runs at once: the second says the first is in progress and does nothing; the first completes."""
    env, folder, config_file, expected = town
    env = {**env, "TIDLIG_HOME": str(tmp_path / "home"), "TIDLIG_DATABASE_URL": database_url}
    command = [sys.executable, "-m", "tidlig.cli", "run", "nightly", "--as-of", AS_OF.isoformat(),
               "--extracts", str(folder), "--config", str(config_file)]
    store = Store.from_url(database_url)
    with (tmp_path / "first.log").open("w") as log:
        first = subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        # Hold the first run still once it has recorded its key (what the second would have taken over),
        # the way a slow or busy machine would: stopped, it is alive and holds its lease.
        deadline = time.monotonic() + PATIENCE
        while not (running := [r for r in _runs_in(store) if r.status == "running" and r.snapshot]):
            assert first.poll() is None, f"the first run ended early:\n{(tmp_path / 'first.log').read_text()[-3000:]}"
            assert time.monotonic() < deadline, "the first run never recorded its key"
            time.sleep(0.2)
        _stop_between_writes(first, database_url)
        [held] = running

        second = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=PATIENCE)
        output = second.stdout + second.stderr
        assert second.returncode == 2, output[-3000:]
        assert f"another nightly run for {AS_OF} is in progress (run {held.run_id}, started " in output, output[-3000:]
        assert "Traceback" not in output, output[-3000:]
        assert [(r.run_id, r.status) for r in _runs_in(store)] == [(held.run_id, "running")], "the second run wrote nothing"
    finally:
        first.send_signal(signal.SIGCONT)
        first.wait(timeout=PATIENCE)
    assert first.returncode == 0, (tmp_path / "first.log").read_text()[-3000:]
    assert [(r.run_id, r.status) for r in _runs_in(store)] == [(held.run_id, "completed")]
    assert sorted(tuple(repr(getattr(f, name)) for name in SAME) for f in store.list_flags(as_of=AS_OF)) == expected
    store.close()


def _runs_in(store: Store) -> list[sa.Row]:
    from casework.store import runs

    try:
        with store.engine.connect() as conn:
            return conn.execute(sa.select(runs).order_by(runs.c.started_at)).all()
    except (sa.exc.OperationalError, sa.exc.ProgrammingError):  # the first run has not made the tables yet
        return []


def _stop_between_writes(process: subprocess.Popen, database_url: str) -> None:
    """SIGSTOP the process at a moment it holds no SQLite write lock: stopped inside a write, it would lock out everyone."""
    import sqlite3

    while True:
        process.send_signal(signal.SIGSTOP)
        while not all(_state(task) in ("T", None) for task in Path(f"/proc/{process.pid}/task").iterdir()):
            time.sleep(0.01)  # the signal is taken by each thread as it next runs
        if not database_url.startswith("sqlite"):
            return  # PostgreSQL: the second run's reads wait for no writer
        probe = sqlite3.connect(sa.engine.make_url(database_url).database, timeout=0, isolation_level=None)
        try:
            probe.execute("BEGIN IMMEDIATE")
            probe.execute("ROLLBACK")
            return
        except sqlite3.OperationalError:  # "database is locked"
            process.send_signal(signal.SIGCONT)
            time.sleep(0.05)
        finally:
            probe.close()


def _state(task: Path) -> str | None:
    """A thread's state letter (T: stopped), or None once it has ended."""
    try:
        return (task / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return None
