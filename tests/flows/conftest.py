"""A real Prefect server for the deployment tests: started once, with the `tidlig` pool and prefect.yaml deployed."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).parents[2]
PREFECT = [sys.executable, "-m", "prefect"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def background(command: list[str], env: dict[str, str], log: Path):
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


@dataclass(frozen=True)
class PrefectServer:
    """A running server: its environment, a way to run the prefect CLI against it, and workers."""

    env: dict[str, str]
    logs: Path

    def run(self, *args: str, timeout: int = 900, check: bool = True) -> subprocess.CompletedProcess:
        """`prefect ARGS` against this server; with check, a failure fails the test with its output."""
        done = subprocess.run([*PREFECT, *args], cwd=REPO, env=self.env, capture_output=True, text=True, timeout=timeout)
        if check:
            assert done.returncode == 0, f"prefect {' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        return done

    def python(self, code: str, *args: str, timeout: int = 900) -> subprocess.CompletedProcess:
        """Python code run as a client of this server (e.g. a parent flow)."""
        return subprocess.run([sys.executable, "-c", code, *args], cwd=REPO, env=self.env, capture_output=True, text=True, timeout=timeout)

    @contextmanager
    def worker(self, name: str, *args: str, **env: str):
        """A process worker on the `tidlig` pool; env adds variables its flow runs inherit (e.g. TIDLIG_HOME)."""
        log = self.logs / f"{name}.log"
        with background([*PREFECT, "worker", "start", "--pool", "tidlig", "--name", name, *args], {**self.env, **env}, log):
            yield log


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory) -> PrefectServer:
    """`prefect server start` on a free port, the process pool created and every deployment in prefect.yaml deployed."""
    logs = tmp_path_factory.mktemp("prefect-server")
    api = f"http://127.0.0.1:{_free_port()}/api"
    env = {
        **os.environ,
        "PREFECT_HOME": str(logs / "home"),
        "PREFECT_API_URL": api,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PWD": str(REPO),  # prefect.yaml's pull step runs flows from the folder it was deployed from
    }
    for leaked in ("TIDLIG_HOME", "TIDLIG_DATABASE_URL", "MLFLOW_TRACKING_URI"):
        env.pop(leaked, None)  # each test gives its workers their own
    port = api.rsplit(":", 1)[1].split("/")[0]
    with background([*PREFECT, "server", "start", "--host", "127.0.0.1", "--port", port], env, logs / "server.log"):
        deadline = time.monotonic() + 300  # ~15 s alone; minutes on a busy machine
        while True:
            try:
                with urllib.request.urlopen(f"{api}/health", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"Prefect server did not become healthy in 300 s:\n{(logs / 'server.log').read_text()[-3000:]}")
                time.sleep(1)
        server = PrefectServer(env=env, logs=logs)
        server.run("work-pool", "create", "tidlig", "--type", "process")
        deployed = server.run("deploy", "--all", "--no-prompt").stdout
        assert "nightly/nightly" in deployed and "nightly/nightly-partition" in deployed, deployed[-2000:]
        yield server


def _promote_a_champion(extracts: Path, *, home: Path | None = None, config: Path | None = None) -> str:
    """Train a model on the extracts and promote it as a named person would: the nightly run scores only with a champion.

    With home, the model and the promotion go to that TIDLIG_HOME's own stores (as a worker started with it sees them).
    """
    from casework.store import Store
    from flows.retrain import RetrainParams, train_first
    from models import registry
    from tidlig import settings

    saved = {k: os.environ.get(k) for k in ("TIDLIG_HOME", "TIDLIG_DATABASE_URL", "MLFLOW_TRACKING_URI")}
    if home is not None:
        os.environ["TIDLIG_HOME"] = str(home)
        os.environ.pop("TIDLIG_DATABASE_URL", None)
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    try:
        trained = train_first(RetrainParams(as_of="2026-11-01", extracts=extracts, config=config))
        store = Store.from_url(settings.database_url())
        registry.promote(trained.name, trained.version, by="Lone Leder", reason="first model for the test municipality",
                         engine=store.engine, override=None if trained.gate_passed else "synthetic test municipality")
        store.close()
        return trained.version
    finally:
        for key, value in saved.items():
            os.environ.pop(key, None) if value is None else os.environ.__setitem__(key, value)


@pytest.fixture(scope="session")
def promote_a_champion(prefect_api):
    """The helper above: train a model and promote it in a person's name before a nightly run."""
    return _promote_a_champion
