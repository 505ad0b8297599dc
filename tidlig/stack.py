"""`tidlig stack`: the production setup on one machine, every service started, watched and stopped by one process."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
POOL = "tidlig"


class StackError(RuntimeError):
    """Why the stack cannot start or had to stop; the message says what to do."""


@dataclass(frozen=True)
class StackOptions:
    """Where the services listen and what they share."""

    database_url: str
    home: Path
    host: str = "127.0.0.1"
    prefect_port: int = 4200
    mlflow_port: int = 5000
    web_port: int = 8000
    workers: int = 1
    config: Path | None = None
    insecure_cookies: bool = False
    startup_timeout: float = 180.0


def check_postgres(url: str, what: str, setting: str) -> None:
    """Connect once; raise StackError naming the server and the setting when PostgreSQL cannot be reached."""
    import sqlalchemy as sa

    if not url.startswith("postgresql+psycopg://"):
        raise StackError(f"{what} must be PostgreSQL for the production setup (several processes share it), got "
                         f"{url.split('://')[0]}://; set {setting} to postgresql+psycopg://user@host/database.")
    engine = sa.create_engine(url, connect_args={"connect_timeout": 5})
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.OperationalError as exc:
        shown = engine.url.render_as_string(hide_password=True)
        raise StackError(f"{what} at {shown} cannot be reached ({str(exc.orig).strip()}). Start PostgreSQL, "
                         f"or correct {setting}; nothing was started.") from None
    finally:
        engine.dispose()


def check_port(host: str, port: int, service: str, option: str) -> None:
    """Raise StackError when another program listens on the port a service needs."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise StackError(f"port {port} on {host} for {service} is taken ({exc.strerror}): stop what listens there "
                             f"(`ss -ltnp 'sport = :{port}'` shows it) or pass {option} with a free port; nothing was started.") from None


@dataclass
class Service:
    name: str
    process: subprocess.Popen
    where: str = ""
    output: threading.Thread | None = None

    def flush(self) -> None:
        """Wait (briefly) until the service's last lines are printed, so they come before any message about it."""
        if self.output is not None:
            self.output.join(timeout=5)


@dataclass
class Supervisor:
    """Child processes in their own process groups, their output prefixed with their name, stopped together."""

    env: dict[str, str]
    services: list[Service] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def say(self, name: str, line: str) -> None:
        with self._lock:
            print(f"{name:<9}| {line}", flush=True)

    def start(self, name: str, command: list[str], where: str = "") -> Service:
        # Own session: Ctrl+C in the terminal reaches only this supervisor, which stops the children in order.
        process = subprocess.Popen(command, cwd=REPO, env=self.env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True, errors="replace", start_new_session=True)
        output = threading.Thread(target=self._stream, args=(name, process), daemon=True)
        output.start()
        service = Service(name, process, where, output)
        self.services.append(service)
        return service

    def _stream(self, name: str, process: subprocess.Popen) -> None:
        for line in process.stdout:
            self.say(name, line.rstrip())

    def run_once(self, name: str, command: list[str], timeout: float) -> None:
        """A setup step: wait for it, and raise StackError when it fails (its output is above, prefixed)."""
        service = self.start(name, command)
        try:
            code = service.process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise StackError(f"{name} did not finish in {timeout:.0f} s; its output is above, prefixed '{name}'.") from None
        service.flush()
        self.services.remove(service)
        if code != 0:
            raise StackError(f"{name} failed (exit {code}); its output is above, prefixed '{name}'.")

    def wait_until(self, service: Service, ready, deadline: float, what: str) -> None:
        """Poll ready() until it is true; raise StackError if the service exits or the deadline passes."""
        while not ready():
            if service.process.poll() is not None:
                service.flush()
                raise StackError(f"{service.name} exited (code {service.process.returncode}) before {what}; "
                                 f"its output is above, prefixed '{service.name}'. Stopping the others.")
            if time.monotonic() > deadline:
                raise StackError(f"{service.name} did not get {what} in time; its output is above, prefixed "
                                 f"'{service.name}'. Stopping the others (a busy machine may need --startup-timeout).")
            time.sleep(0.5)

    def watch(self) -> Service:
        """Block until one service exits; return it."""
        while True:
            for service in self.services:
                if service.process.poll() is not None:
                    service.flush()
                    return service
            time.sleep(0.5)

    def stop(self, grace: float = 20.0) -> None:
        """SIGTERM every process group, newest first; SIGKILL what is left after the grace period."""
        for service in reversed(self.services):
            _signal_group(service.process, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for service in reversed(self.services):
            try:
                service.process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.say("stack", f"{service.name} did not stop in {grace:.0f} s: killing it")
            # Whatever the leader left behind (uvicorn and MLflow workers, flow runs) goes with its group.
            _signal_group(service.process, signal.SIGKILL)
            service.process.wait()
            service.flush()


def _signal_group(process: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(process.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _answers(url: str, method: str = "GET", body: bytes | None = None) -> bytes | None:
    request = urllib.request.Request(url, data=body, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=3) as response:
            return response.read() if response.status == 200 else None
    except OSError:  # refused, timed out, or an HTTP error status
        return None


def _workers_online(api: str, names: set[str]) -> bool:
    found = _answers(f"{api}/work_pools/{POOL}/workers/filter", "POST", b"{}")
    online = {w["name"] for w in json.loads(found) if w.get("status") == "ONLINE"} if found else set()
    return names <= online


def prefect_api(options: StackOptions) -> str:
    """The Prefect API every process talks to."""
    return f"http://{options.host}:{options.prefect_port}/api"


def environment(options: StackOptions) -> dict[str, str]:
    """What every service and flow run shares: one store, one Prefect API, one MLflow server, one home."""
    env = {
        **os.environ,
        "TIDLIG_HOME": str(options.home),
        "TIDLIG_DATABASE_URL": options.database_url,
        "PREFECT_API_URL": prefect_api(options),
        "MLFLOW_TRACKING_URI": f"http://{options.host}:{options.mlflow_port}",
        # The Prefect server's own database (SQLite) lives with Tidlig's data, not in the user's home.
        "PREFECT_HOME": str(options.home / "prefect"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "GX_ANALYTICS_ENABLED": "false",
        "PYTHONUNBUFFERED": "1",
        "PWD": str(REPO),  # prefect.yaml runs flows from the folder it was deployed from
    }
    if options.config:
        env["TIDLIG_CONFIG"] = str(options.config.resolve())
    return env


def preflight(options: StackOptions) -> None:
    """Everything that can be checked before starting anything: PostgreSQL, the config, free ports, prefect.yaml."""
    from tidlig.settings import load_config

    if not (REPO / "prefect.yaml").is_file():
        raise StackError(f"{REPO} has no prefect.yaml: run tidlig stack from a checkout of the repository (`make install`).")
    check_postgres(options.database_url, "The Tidlig store", "TIDLIG_DATABASE_URL or --database-url")
    config = load_config(options.config)
    if config.sources.database:
        check_postgres(config.sources.database, "The extracts database", "sources.database in the config")
    for port, service, option in ((options.prefect_port, "the Prefect server", "--prefect-port"),
                                  (options.mlflow_port, "the MLflow server", "--mlflow-port"),
                                  (options.web_port, "the web app", "--web-port")):
        check_port(options.host, port, service, option)


def run(options: StackOptions) -> None:
    """Start every service, wait until each answers, then supervise until a signal or a service exits."""
    preflight(options)
    options.home.mkdir(parents=True, exist_ok=True)
    supervisor = Supervisor(environment(options))
    python, host = sys.executable, options.host
    api = prefect_api(options)
    mlflow_url = f"http://{host}:{options.mlflow_port}"
    web_url = f"http://{host}:{options.web_port}"

    def stop_on_sigterm(signum, frame):
        raise KeyboardInterrupt

    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    signal.signal(signal.SIGTERM, stop_on_sigterm)
    try:
        deadline = time.monotonic() + options.startup_timeout
        prefect = supervisor.start("prefect", [python, "-m", "prefect", "server", "start", "--host", host, "--port", str(options.prefect_port)], f"{api.removesuffix('/api')} (UI and API)")
        mlflow = supervisor.start("mlflow", [
            python, "-m", "mlflow", "server", "--host", host, "--port", str(options.mlflow_port), "--workers", "1",
            "--backend-store-uri", f"sqlite:///{options.home / 'mlflow.db'}", "--artifacts-destination", str(options.home / "mlartifacts"),
        ], mlflow_url)
        web = supervisor.start("web", [python, "-m", "tidlig.cli", "serve", "--host", host, "--port", str(options.web_port),
                                       *(["--insecure-cookies"] if options.insecure_cookies else [])], web_url)
        supervisor.wait_until(prefect, lambda: _answers(f"{api}/health") is not None, deadline, f"healthy at {api}/health")
        supervisor.run_once("pool", [python, "-m", "prefect", "work-pool", "create", POOL, "--type", "process", "--overwrite"], 120)
        names = {f"{socket.gethostname()}-{os.getpid()}-{n}" for n in range(1, options.workers + 1)}
        workers = [supervisor.start(f"worker-{n}", [python, "-m", "prefect", "worker", "start", "--pool", POOL, "--name", name], f"pool {POOL}")
                   for n, name in enumerate(sorted(names), start=1)]
        supervisor.run_once("deploy", [python, "-m", "prefect", "deploy", "--all", "--no-prompt"], max(60.0, deadline - time.monotonic()))
        supervisor.wait_until(mlflow, lambda: _answers(f"{mlflow_url}/health") is not None, deadline, f"healthy at {mlflow_url}/health")
        supervisor.wait_until(web, lambda: _answers(f"{web_url}/login") is not None, deadline, f"answering at {web_url}/login")
        supervisor.wait_until(workers[0], lambda: _workers_online(api, names), deadline, f"online in pool {POOL}")
        _report(supervisor, options)
        dead = supervisor.watch()
        raise StackError(f"{dead.name} stopped unexpectedly (exit code {dead.process.returncode}); its last lines are above, "
                         f"prefixed '{dead.name}'. Stopped the others; fix the cause and run tidlig stack again.")
    except KeyboardInterrupt:
        supervisor.say("stack", "stopping every service ...")
    finally:
        for sig in previous:  # a second Ctrl+C must not leave children behind half-stopped
            signal.signal(sig, signal.SIG_IGN)
        supervisor.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    supervisor.say("stack", "stopped")


def _report(supervisor: Supervisor, options: StackOptions) -> None:
    from sqlalchemy.engine import make_url

    lines = [f"{s.name:<9} {s.where:<40} (pid {s.process.pid})" for s in supervisor.services]
    lines += [
        f"{'store':<9} {make_url(options.database_url).render_as_string(hide_password=True)}",
        f"{'data':<9} {options.home} (MLflow database and artifacts, Prefect's database, Data Docs)",
        f"Run the nightly now: PREFECT_API_URL={prefect_api(options)} uv run prefect deployment run 'nightly/nightly'",
        "Stop everything with Ctrl+C (or SIGTERM to this process).",
    ]
    for line in ["Tidlig is up:", *lines]:
        supervisor.say("stack", line)
