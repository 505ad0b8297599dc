"""Nightly runs partitioned by municipality: one nightly flow run per municipality, spread over Prefect workers.

Each municipality is its own data controller with its own Tidlig home (extracts, pseudonym key,
store, models), so its run is a separate deployment run of the nightly flow with its own
TIDLIG_HOME; any worker of the pool picks it up, and runs of different municipalities proceed in
parallel on as many workers as there are. A failure in one municipality does not stop the others.
"""

from __future__ import annotations

import time
from datetime import date
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from pydantic import BaseModel, ConfigDict


class Municipality(BaseModel):
    """One partition: a name for the logs, its Tidlig home and optionally its own database."""

    model_config = ConfigDict(frozen=True)

    name: str
    home: Path
    extracts: Path | None = None
    database_url: str | None = None


class PartitionedParams(BaseModel):
    """The municipalities, the as-of date (default: today in Copenhagen) and the nightly deployment to run."""

    model_config = ConfigDict(frozen=True)

    municipalities: list[Municipality]
    as_of: date | None = None
    # Not the scheduled `nightly` deployment, which runs one at a time for its municipality.
    deployment: str = "nightly/nightly-partition"
    timeout_seconds: int = 4 * 3600


def _wait(flow_run_id: Any, timeout_seconds: int) -> Any:
    """The flow run once it is final (or when the time is up, as it is then)."""
    from prefect.client.orchestration import get_client

    deadline = time.monotonic() + timeout_seconds
    with get_client(sync_client=True) as client:
        while True:
            run = client.read_flow_run(flow_run_id)
            if (run.state and run.state.is_final()) or time.monotonic() > deadline:
                return run
            time.sleep(2)


class PartitionFailed(RuntimeError):
    """At least one municipality's nightly run did not complete; the message names them and what to do."""


@flow(name="nightly-by-municipality")
def nightly_by_municipality(params: PartitionedParams) -> dict[str, dict[str, Any]]:
    """Start every municipality's nightly run at once on the work pool, wait for all, report each."""
    from prefect.deployments import run_deployment

    from flows.nightly import today_in_copenhagen

    names = [m.name for m in params.municipalities]
    if len(set(names)) != len(names) or len({m.home for m in params.municipalities}) != len(names):
        raise ValueError(f"municipalities must have distinct names and homes, got {names}; give each its own TIDLIG_HOME")
    as_of = params.as_of or today_in_copenhagen()
    log = get_run_logger()
    started = {}
    for municipality in params.municipalities:
        env = {"TIDLIG_HOME": str(municipality.home)}
        if municipality.database_url:
            env["TIDLIG_DATABASE_URL"] = municipality.database_url
        nightly_params = {"as_of": as_of.isoformat(), **({"extracts": str(municipality.extracts)} if municipality.extracts else {})}
        # timeout=0: start them all before waiting on any, so the workers run them side by side.
        started[municipality.name] = run_deployment(
            params.deployment, parameters={"params": nightly_params}, job_variables={"env": env},
            timeout=0, tags=[f"municipality:{municipality.name}"],
        )
        log.info("event=partition.started municipality=%s flow_run_id=%s as_of=%s", municipality.name, started[municipality.name].id, as_of)
    report, failed = {}, []
    for name, run in started.items():
        done = _wait(run.id, params.timeout_seconds)
        report[name] = {"flow_run_id": str(done.id), "state": done.state.type.value, "message": done.state.message}
        log.info("event=partition.finished municipality=%s flow_run_id=%s state=%s", name, done.id, done.state.type.value)
        if not done.state.is_completed():
            failed.append(name)
    if failed:
        states = "; ".join(f"{name}: {report[name]['state']}" for name in failed)
        raise PartitionFailed(
            f"the nightly run did not complete for {', '.join(failed)} of {len(started)} municipalities "
            f"({states}). The others completed. What to do: read the "
            "failed flow runs' logs (each names its stage and what to do), fix the cause and run those municipalities "
            "again; a rerun of a completed municipality does nothing."
        )
    return report
