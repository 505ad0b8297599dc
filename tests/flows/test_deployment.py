"""The production path: prefect.yaml deployed to a real Prefect server, run by a real worker."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest

from casework.store import Store
from sources.synth import SynthSpec, generate
from tidlig.settings import load_config

pytestmark = [pytest.mark.slow, pytest.mark.prefect]
REPO = Path(__file__).parents[2]
PREFECT = [sys.executable, "-m", "prefect"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def _background(command: list[str], env: dict[str, str], log: Path):
    """A process in its own group, stopped with everything it started when the block ends."""
    with log.open("w") as out:
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield process
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


def _wait_healthy(url: str, log: Path, seconds: int = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(1)
    pytest.fail(f"Prefect server did not become healthy in {seconds} s:\n{log.read_text()[-3000:]}")


def _run(command: list[str], env: dict[str, str], timeout: int = 300) -> str:
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(command[2:])} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def test_nightly_deployment_runs_on_a_real_server_and_worker(tmp_path):
    home = tmp_path / "home"
    config = load_config()
    folder = generate(SynthSpec(persons=1500, seed=21, start=config.synth.start, end=config.synth.end)).write(home)
    api = f"http://127.0.0.1:{_free_port()}/api"
    env = {
        **os.environ,
        "PREFECT_HOME": str(tmp_path / "prefect"),
        "PREFECT_API_URL": api,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "TIDLIG_HOME": str(home),
        "PWD": str(REPO),
    }
    env.pop("TIDLIG_DATABASE_URL", None)
    server_log, worker_log = tmp_path / "server.log", tmp_path / "worker.log"
    port = api.split(":")[-1].split("/")[0]
    with _background([*PREFECT, "server", "start", "--host", "127.0.0.1", "--port", port], env, server_log):
        _wait_healthy(api, server_log)
        _run([*PREFECT, "work-pool", "create", "tidlig", "--type", "process"], env)
        deployed = _run([*PREFECT, "deploy", "--all", "--no-prompt"], env)
        assert "nightly/nightly" in deployed
        with _background([*PREFECT, "worker", "start", "--pool", "tidlig"], env, worker_log):
            params = json.dumps({"params": {"as_of": "2026-11-01", "extracts": str(folder)}})
            watched = subprocess.run(
                [*PREFECT, "deployment", "run", "nightly/nightly", "--params", params, "--watch", "--watch-timeout", "300"],
                cwd=REPO, env=env, capture_output=True, text=True, timeout=360,
            )
            assert "Completed" in watched.stdout, f"{watched.stdout[-2000:]}\n--- worker ---\n{worker_log.read_text()[-4000:]}"

    flags = Store.from_url(f"sqlite:///{home / 'tidlig.db'}").list_flags()
    assert flags and all(f.reasons for f in flags)
