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
    from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS, temporary_settings

    if PREFECT_API_URL.value() or not sys.platform.startswith("linux"):
        yield  # a server of one's own, or a platform without PR_SET_PDEATHSIG: Prefect's own behaviour
        return
    server = _start_server()
    try:
        api = f"http://127.0.0.1:{server.port}/api"
        _wait_until_healthy(server.process, api, PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS.value())
        with temporary_settings(updates={PREFECT_API_URL: api}):
            yield
    finally:
        server.process.terminate()
        try:
            server.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()


class _Server:
    def __init__(self, process: subprocess.Popen, port: int) -> None:
        self.process = process
        self.port = port


def _start_server() -> _Server:
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
    # The child asks the kernel for SIGKILL when this thread's process dies, then becomes the server.
    # (Done in the child's own code, not a preexec_fn, which is unsafe once threads exist.)
    process = subprocess.Popen([sys.executable, "-m", __name__, str(os.getpid()), *uvicorn], env=env)
    return _Server(process, port)


def _wait_until_healthy(process: subprocess.Popen, api: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the temporary Prefect API stopped while starting (exit code {process.returncode}); see the lines above")
        try:
            with urllib.request.urlopen(f"{api}/health", timeout=5) as answer:
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
