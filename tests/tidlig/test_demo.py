"""`make demo`'s next steps work as printed: each command it prints runs against the demo's home."""

from __future__ import annotations

import os
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import pytest

REPO = Path(__file__).parents[2]
pytestmark = [pytest.mark.slow, pytest.mark.prefect]


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> tuple[str, dict[str, str]]:
    """`tidlig demo` as `make demo` runs it, in a fresh home; its output and the environment it ran in."""
    home = tmp_path_factory.mktemp("demo-home")
    env = {key: value for key, value in os.environ.items()
           if key not in ("TIDLIG_DATABASE_URL", "MLFLOW_TRACKING_URI", "TIDLIG_CONFIG", "TIDLIG_PSEUDONYM_KEY",
                          "TIDLIG_AUDIT_DIR", "TIDLIG_AUDIT_KEY")}
    env["TIDLIG_HOME"] = str(home)
    done = subprocess.run([sys.executable, "-m", "tidlig.cli", "demo"], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=1500)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout, env


def next_steps(output: str) -> list[str]:
    """The commands printed under "Where to look next", each on its own line below its comment."""
    steps = output.split("Where to look next", 1)[1].splitlines()[1:]
    return [line.strip() for line in steps if line.startswith("  ") and not line.strip().startswith("#")]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _answers(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=3)
        return True
    except urllib.error.HTTPError:
        return True  # it answered, if not with 200
    except OSError:
        return False


def _serves(command: list[str], url: str, env: dict[str, str], log: Path) -> None:
    """Start a server command, wait until it answers at url, stop it with everything it started."""
    with log.open("w") as out:
        server = subprocess.Popen(command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 300  # MLflow takes long to start on a busy machine
        while not _answers(url):
            assert server.poll() is None, f"{shlex.join(command)} stopped:\n{log.read_text()[-2000:]}"
            assert time.monotonic() < deadline, f"{shlex.join(command)} did not answer at {url}:\n{log.read_text()[-2000:]}"
            time.sleep(0.5)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)


def test_every_printed_next_step_runs_as_printed(demo, tmp_path):
    output, env = demo
    commands = next_steps(output)
    assert len(commands) >= 7 and all("TEAM" not in c and " ID " not in c and "|" not in c for c in commands), commands

    for command in commands:
        argv = shlex.split(command)
        if argv[1:3] == ["serve", "--insecure-cookies"] or argv[1:2] == ["ui"]:
            # Servers run until stopped: started on a free port (the printed one may be taken here) and asked for a page.
            port = _free_port()
            url = f"http://127.0.0.1:{port}/login" if argv[1] == "serve" else f"http://127.0.0.1:{port}/"
            _serves([*argv, "--port", str(port)], url, env, tmp_path / f"{argv[1]}.log")
            continue
        typed = "korrekt-hest-batteri-staple\n" if argv[1:3] == ["users", "add"] else None
        done = subprocess.run(argv, cwd=REPO, env=env, input=typed, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0 and "Traceback" not in done.stderr, f"{command}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
        assert "No flags match" not in done.stdout, command

    data_docs = output.split("Data Docs (open in a browser): ", 1)[1].split()[0]
    assert Path(urlsplit(data_docs).path).is_file()


def test_the_readme_help_command_works_after_the_demo(demo):
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert "`.venv/bin/tidlig --help`" in readme
    done = subprocess.run([str(Path(sys.executable).parent / "tidlig"), "--help"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "demo" in done.stdout


def test_the_demo_promotes_its_model_in_the_demo_users_name_before_anything_is_scored(demo):
    from audit.log import read
    from casework.store import Store

    output, env = demo
    assert "is now champion" in output and "below capacity" in output
    kinds, promoted = [], []
    for event in read(Store.from_url(f"sqlite:///{Path(env['TIDLIG_HOME']) / 'tidlig.db'}").engine):
        kinds.append(event.kind)
        if event.kind == "model.promoted":
            promoted.append((event.actor, event.payload["by"]))
    assert promoted == [("demo", "demo")]
    assert kinds.index("model.registered") < kinds.index("model.promoted") < kinds.index("team.capacity_cut")
