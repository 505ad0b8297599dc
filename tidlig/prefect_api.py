"""A temporary Prefect API for one command, that ends with the command however the command ends.

Prefect's own temporary server (used when PREFECT_API_URL is unset) is stopped by an atexit hook,
which never runs when the process is killed (SIGKILL, the OOM killer): the server then keeps
running with nothing to serve. This one is started so that the kernel kills it when its parent dies.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


@contextmanager
def temporary_api() -> Iterator[None]:
    """Flows run inside the block talk to PREFECT_API_URL, or else to a server that lives only as long as this process."""
    from prefect.context import refresh_global_settings_context
    from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS

    if PREFECT_API_URL.value() or not sys.platform.startswith("linux"):
        yield  # a server of one's own, or a platform without PR_SET_PDEATHSIG: Prefect's own behaviour
        return
    server, port = _start_server()
    try:
        api = f"http://127.0.0.1:{port}/api"
        _wait_until_healthy(server, api, PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS.value())
        # In the environment and the process-wide settings, not just this thread's: Prefect's
        # background threads would otherwise start a temporary server of their own.
        os.environ["PREFECT_API_URL"] = api
        refresh_global_settings_context()
        try:
            yield
        finally:
            _send_what_is_queued()
            del os.environ["PREFECT_API_URL"]
            refresh_global_settings_context()
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _send_what_is_queued() -> None:
    """Send the run's last log lines and events before the server stops, as Prefect's test harness does."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    APILogWorker.drain_all(timeout=10)
    EventsWorker.drain_all(timeout=10)


def _start_server() -> tuple[subprocess.Popen, int]:
    import prefect
    from prefect.settings import get_current_settings

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # The same server Prefect starts for its temporary API (see prefect.server.api.server.SubprocessASGIServer).
    uvicorn = [
        sys.executable, "-m", "uvicorn", "--app-dir", str(prefect.__module_path__.parent),
        "--factory", "prefect.server.api.server:create_app", "--host", "127.0.0.1", "--port", str(port),
        "--log-level", "error", "--lifespan", "on",
    ]
    env = {
        **os.environ,
        "PREFECT_UI_ENABLED": "0",
        "PREFECT__SERVER_EPHEMERAL": "1",
        "PREFECT__SERVER_FINAL": "1",
        **get_current_settings().to_environment_variables(exclude_unset=True),
    }
    # The child asks the kernel for SIGKILL when the thread starting it ends (the command's main thread,
    # which ends with the process), then becomes the server; in its own code, as a preexec_fn is unsafe
    # once threads exist.
    return subprocess.Popen([sys.executable, "-m", __name__, str(os.getpid()), *uvicorn], env=env), port


_direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # a proxy would not reach our loopback


def _wait_until_healthy(process: subprocess.Popen, api: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the temporary Prefect API stopped while starting (exit code {process.returncode}); see the lines above")
        try:
            with _direct.open(f"{api}/health", timeout=5) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(
        f"the temporary Prefect API did not answer within {timeout:.0f} s; raise "
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS on a busy machine, or start a server and set PREFECT_API_URL"
    )


def _die_with(parent: int) -> None:
    """Have the kernel SIGKILL this process when the parent dies; exit at once if it died already."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != parent:  # died between starting us and the prctl call
        sys.exit(1)


if __name__ == "__main__":
    _die_with(int(sys.argv[1]))
    # The death signal is kept across exec, so the server itself is bound to the parent.
    os.execv(sys.argv[2], sys.argv[2:])
