"""`tidlig stack`: clear refusals before anything starts, and the whole production setup up and down again."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from tidlig.cli import app
from tidlig.stack import StackError, Supervisor, check_port

REPO = Path(__file__).parents[2]


def test_an_unreachable_postgres_is_named_and_nothing_starts(tmp_path, monkeypatch):
    monkeypatch.setenv("TIDLIG_HOME", str(tmp_path))
    result = CliRunner().invoke(app, ["stack", "--database-url", "postgresql+psycopg://tidlig@127.0.0.1:9/tidlig"])
    assert result.exit_code == 2
    assert "The Tidlig store at postgresql+psycopg://tidlig@127.0.0.1:9/tidlig cannot be reached" in result.output
    assert "nothing was started" in result.output and not (tmp_path / "prefect").exists()


def test_a_sqlite_store_is_refused_with_the_setting_to_change(tmp_path, monkeypatch):
    monkeypatch.setenv("TIDLIG_HOME", str(tmp_path))
    monkeypatch.delenv("TIDLIG_DATABASE_URL", raising=False)
    result = CliRunner().invoke(app, ["stack"])
    assert result.exit_code == 2 and "must be PostgreSQL" in result.output and "TIDLIG_DATABASE_URL" in result.output


def test_a_taken_port_names_the_service_and_the_option():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(StackError, match=f"port {port} on 127.0.0.1 for the web app is taken.*--web-port"):
            check_port("127.0.0.1", port, "the web app", "--web-port")


def test_when_one_service_dies_the_supervisor_names_it_and_stops_the_rest(capsys):
    supervisor = Supervisor(env=dict(os.environ))
    alive = supervisor.start("alive", [sys.executable, "-c", "import time; print('up', flush=True); time.sleep(120)"])
    supervisor.start("dying", [sys.executable, "-c", "print('broken config'); raise SystemExit(3)"])
    dead = supervisor.watch()
    assert (dead.name, dead.process.returncode) == ("dying", 3)
    supervisor.stop()
    assert alive.process.returncode == -signal.SIGTERM
    assert "dying    | broken config" in capsys.readouterr().out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, body: bytes | None = None) -> bytes:
    request = urllib.request.Request(url, data=body, method="POST" if body else "GET", headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200, url
        return response.read()


def _gone(pid: int) -> bool:
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.fixture
def stack_database(postgres_url):
    """An empty database for the stack's store, dropped afterwards."""
    admin = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    name = f"tidlig_stack_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    yield sa.engine.make_url(postgres_url).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.mark.slow
@pytest.mark.prefect
@pytest.mark.postgres
def test_the_stack_starts_every_service_and_sigterm_stops_them_all(tmp_path, stack_database):
    ports = {name: _free_port() for name in ("prefect", "mlflow", "web")}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MLFLOW_", "TIDLIG_"))}
    env |= {"TIDLIG_HOME": str(tmp_path / "home"), "TIDLIG_DATABASE_URL": stack_database}
    log = tmp_path / "stack.log"
    with log.open("w") as out:
        stack = subprocess.Popen(
            [sys.executable, "-m", "tidlig.cli", "stack", "--prefect-port", str(ports["prefect"]), "--mlflow-port", str(ports["mlflow"]),
             "--web-port", str(ports["web"]), "--workers", "1"],
            cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
        )
    try:
        # A guard against hanging forever, not a performance bound.
        deadline = time.monotonic() + 300
        while "Stop everything with Ctrl+C" not in log.read_text():
            assert stack.poll() is None, f"the stack exited early:\n{log.read_text()[-4000:]}"
            assert time.monotonic() < deadline, f"the stack did not come up:\n{log.read_text()[-4000:]}"
            time.sleep(1)
        text = log.read_text()
        pids = [int(p) for p in re.findall(r"\(pid (\d+)\)", text)]
        assert len(pids) == 4, text[-2000:]

        api = f"http://127.0.0.1:{ports['prefect']}/api"
        assert _get(f"{api}/health")
        deployments = {d["name"] for d in json.loads(_get(f"{api}/deployments/filter", b"{}"))}
        assert {"nightly", "monthly-retraining", "weekly-data-quality", "daily-retention"} <= deployments
        workers = json.loads(_get(f"{api}/work_pools/tidlig/workers/filter", b"{}"))
        assert [w["status"] for w in workers] == ["ONLINE"]
        assert _get(f"http://127.0.0.1:{ports['mlflow']}/health")
        assert b"<form" in _get(f"http://127.0.0.1:{ports['web']}/login")
        with sa.create_engine(stack_database).connect() as conn:
            assert "flags" in sa.inspect(conn).get_table_names(), "the web app migrated the shared store"
    finally:
        stack.send_signal(signal.SIGTERM)
        code = stack.wait(timeout=60)
    assert code == 0, log.read_text()[-3000:]
    # The stack killed every group; the init process reaps what the group leaders left a moment later.
    settle = time.monotonic() + 10
    while not all(_gone(pid) for pid in pids) and time.monotonic() < settle:
        time.sleep(0.2)
    assert all(_gone(pid) for pid in pids), f"left running: {[p for p in pids if not _gone(p)]}"
    assert log.read_text().rstrip().endswith("stopped")
