"""Partitioned by municipality: one nightly run per municipality, spread over two process workers of a real server."""

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
from contextlib import contextmanager
from pathlib import Path

import pytest

from casework.store import Store
from sources.synth import SynthSpec, generate
from tidlig.settings import load_config

pytestmark = [pytest.mark.slow, pytest.mark.prefect]
REPO = Path(__file__).parents[2]
PREFECT = [sys.executable, "-m", "prefect"]
AS_OF = "2026-11-01"


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


PARENT = """
import json, sys
from flows.partitioned import PartitionedParams, nightly_by_municipality
print(json.dumps(nightly_by_municipality(PartitionedParams.model_validate_json(sys.argv[1]))))
"""


def test_two_municipalities_run_side_by_side_on_two_workers(tmp_path):
    config = load_config()
    homes = {}
    for name, seed in (("aarhus", 31), ("odense", 32)):
        homes[name] = tmp_path / name
        generate(SynthSpec(persons=1200, seed=seed, start=config.synth.start, end=config.synth.end)).write(homes[name])
    api = f"http://127.0.0.1:{_free_port()}/api"
    env = {
        **os.environ,
        "PREFECT_HOME": str(tmp_path / "prefect"),
        "PREFECT_API_URL": api,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PWD": str(REPO),
    }
    for leaked in ("TIDLIG_HOME", "TIDLIG_DATABASE_URL", "MLFLOW_TRACKING_URI"):
        env.pop(leaked, None)  # each municipality's run gets its own from the parent flow
    port = api.split(":")[-1].split("/")[0]
    with _background([*PREFECT, "server", "start", "--host", "127.0.0.1", "--port", port], env, tmp_path / "server.log"):
        _wait_healthy(api, tmp_path / "server.log")
        _run([*PREFECT, "work-pool", "create", "tidlig", "--type", "process"], env)
        _run([*PREFECT, "deploy", "--name", "nightly", "--no-prompt"], env)
        logs = [tmp_path / "worker-1.log", tmp_path / "worker-2.log"]
        # One run at a time per worker: the second municipality must go to the other worker.
        with _background([*PREFECT, "worker", "start", "--pool", "tidlig", "--limit", "1", "--name", "worker-1"], env, logs[0]), \
             _background([*PREFECT, "worker", "start", "--pool", "tidlig", "--limit", "1", "--name", "worker-2"], env, logs[1]):
            params = {"as_of": AS_OF, "municipalities": [{"name": n, "home": str(h)} for n, h in homes.items()]}
            done = subprocess.run([sys.executable, "-c", PARENT, json.dumps(params)], cwd=REPO, env=env,
                                  capture_output=True, text=True, timeout=400)
            worker_logs = [log.read_text() for log in logs]
    assert done.returncode == 0, f"{done.stdout[-2000:]}\n{done.stderr[-3000:]}\n--- workers ---\n" + "\n".join(w[-2000:] for w in worker_logs)
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert {name: run["state"] for name, run in report.items()} == {"aarhus": "COMPLETED", "odense": "COMPLETED"}

    ran = [set(re.findall("|".join(run["flow_run_id"] for run in report.values()), text)) for text in worker_logs]
    assert all(len(ids) == 1 for ids in ran) and ran[0] != ran[1], f"each worker should run one municipality: {ran}"
    for home in homes.values():
        store = Store.from_url(f"sqlite:///{home / 'tidlig.db'}")
        assert store.list_flags(), f"{home.name} has no flags"
    # Separate homes: each municipality's pseudonyms are its own.
    persons = [{f.person for f in Store.from_url(f"sqlite:///{h / 'tidlig.db'}").list_flags()} for h in homes.values()]
    assert not persons[0] & persons[1]
