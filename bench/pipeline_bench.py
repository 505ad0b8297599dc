"""Benchmark: the nightly run stage by stage at 100,000, 650,000 and 6,000,000 persons, with peak memory.

For each size a synthetic municipality is written, then one process runs the nightly stages in
order through the flow's own task functions (without Prefect, so each stage is timed alone) and
reports wall time and peak resident memory per stage; `--prefect` adds one run of the whole flow
through Prefect at the smallest size, for the orchestration overhead. The champion is a scorer
trained once on a small municipality: the nightly run scores, it does not train.

Sizes above --tile persons are national runs and are partitioned by municipality, as production
runs them (flows/partitioned.py): each municipality is a copy of one --tile municipality with
disjoint ids (CPR serials, household, case and report ids shifted per copy) in its own folder, and
its nightly stages run in their own process, --parallel at a time (one per Prefect worker). The
stage times are then summed over municipalities, the wall time is the whole run's, and the peak
memory is the machine's: the sum over the processes running at once.

    uv run python bench/pipeline_bench.py                       # 100k, 650k and 6M
    uv run python bench/pipeline_bench.py --persons 650000 --prefect
    uv run python bench/pipeline_bench.py --persons 6000000 --parallel 2
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import polars as pl

sys.path.insert(0, str(Path(__file__).parents[1]))

SIZES = (100_000, 650_000, 6_000_000)
STAGES = ("read+validate", "pseudonymise", "link+features", "score", "rules+routing", "store")
AS_OF = date(2026, 11, 1)
# The tasks flows.nightly.ingest calls, and the stage each is timed under.
INGEST_TASKS = {"read_source": "read+validate", "validate_source": "read+validate",
                "record_validation": "store", "pseudonymise_source": "pseudonymise"}
# Goals for a 2-core, 24 GB machine (seconds, GB) by size.
GOALS = {650_000: (60, None), 6_000_000: (600, 16)}


def _rss_gb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e9


class Stages:
    """Wall time, CPU time and peak resident memory per stage; a stage inside another counts for itself only."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.cpu: dict[str, float] = {}
        self.peak: dict[str, float] = {}
        self._stack: list[list] = []  # [name, wall at (re)start, cpu at (re)start]
        threading.Thread(target=self._sample, daemon=True).start()

    def _sample(self) -> None:
        while True:
            if self._stack:
                name = self._stack[-1][0]
                self.peak[name] = max(self.peak.get(name, 0.0), _rss_gb())
            time.sleep(0.02)

    def _book(self, entry: list) -> None:
        name, wall, cpu = entry
        self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - wall
        # CPU seconds of all the process's threads: comparable even when the machine is busy.
        self.cpu[name] = self.cpu.get(name, 0.0) + time.process_time() - cpu

    @contextmanager
    def __call__(self, name: str):
        if self._stack:
            self._book(self._stack[-1])
        self.peak[name] = max(self.peak.get(name, 0.0), _rss_gb())
        self._stack.append([name, time.perf_counter(), time.process_time()])
        try:
            yield
        finally:
            self._book(self._stack.pop())
            self.peak[name] = max(self.peak[name], _rss_gb())
            if self._stack:
                self._stack[-1][1:] = [time.perf_counter(), time.process_time()]

    def wrap(self, function, name: str):
        def timed(*args, **kwargs):
            with self(name):
                return function(*args, **kwargs)
        return timed


def run_stages(folder: Path, home: Path, model_file: Path) -> dict:
    """The nightly stages in order, as the flow runs them, timed one by one."""
    os.environ["TIDLIG_HOME"] = str(home)
    from casework.store import Store
    from flows import nightly as n
    from rules.engine import load_rules
    from tidlig.settings import load_config
    from validate.context import gx_context

    timer = Stages()
    config = load_config()
    store = Store.from_url(f"sqlite:///{home / 'tidlig.db'}")
    store.create_schema()
    run_id = f"bench-{AS_OF}"
    store.start_run(run_id, AS_OF, "nightly")
    context = gx_context(home)
    model, model_version = pickle.loads(model_file.read_bytes())
    # The flow's own ingest, its tasks timed one by one (called as plain functions, without Prefect).
    for task_name, stage in INGEST_TASKS.items():
        setattr(n, task_name, timer.wrap(getattr(n, task_name).fn, stage))
    with timer("read+validate"):
        sources = n.ingest(store, run_id, folder, context, config.validate_.max_invalid_share, home).sources
    rows = sum(store_check.rows_in for store_check in store.list_source_checks(run_id))
    with timer("link+features"):
        table, families = n.build_features.fn(sources, AS_OF)
    with timer("score"):
        scored = n.score.fn(table, sources["support_measures"], model, model_version, AS_OF)
    with timer("rules+routing"):
        ruleset = load_rules()
        hits = n.apply_rules.fn(scored, ruleset, AS_OF)
        routing = n.route_flags.fn(hits, scored, ruleset, None, AS_OF, families, store.decision_history(AS_OF), {}, config.ranking.policy())
        drafts = n.explain_flagged.fn(scored, routing.flags, model)
    with timer("store"):
        created = n.store_flags.fn(store, run_id, drafts, None, routing)
        store.finish_run(run_id, "completed", {"flags_created": len(created)})
    return {"seconds": timer.seconds, "cpu": timer.cpu, "peak_gb": timer.peak, "rows": rows, "persons_scored": table.height, "flags": len(created)}


def train_champion(out: Path, home: Path) -> None:
    """A scorer for the bench, trained the flow's way on a small municipality (one candidate, to be quick)."""
    os.environ["TIDLIG_HOME"] = str(home)
    from casework.store import Store
    from flows import nightly as n
    from models.scorer import RiskScorer
    from models.train import train
    from sources.synth import SynthSpec, generate
    from tidlig.settings import load_config
    from validate.context import gx_context

    config = load_config()
    folder = generate(SynthSpec(persons=20_000, seed=3, start=config.synth.start, end=config.synth.end)).write(home / "train")
    store = Store.from_url(f"sqlite:///{home / 'tidlig.db'}")
    store.create_schema()
    store.start_run("bench-train", AS_OF, "nightly")
    for task_name in INGEST_TASKS:
        setattr(n, task_name, getattr(n, task_name).fn)  # plain functions: no Prefect run here
    sources = n.ingest(store, "bench-train", folder, gx_context(home), 0.2, home).sources
    result = train(sources, config.model.training_as_of, config.model.horizon_days,
                   candidates={"logistic_C1": RiskScorer(C=1.0)}, n_boot=20)
    out.write_bytes(pickle.dumps((result.model, f"{config.model.name}/bench")))


# Id columns made unique per copy; CPR serials move by an even step so the sex digit stays right.
_SHIFTED_IDS = ("household_id", "case_id", "notification_id", "investigation_id", "report_id")
_CPR_COLUMNS = ("person_id", "parent_id", "child_id")


def _copy(frame: pl.DataFrame, copy: int) -> pl.DataFrame:
    if copy == 0:
        return frame
    shifted = []
    for column in frame.columns:
        if column in _CPR_COLUMNS:
            serial = pl.col(column).str.slice(7, 4).cast(pl.Int64, strict=False)
            shifted.append(
                pl.when(serial.is_not_null() & (serial < 2000))
                .then(pl.col(column).str.slice(0, 7) + (serial + 2000 + 16 * copy).cast(pl.String))
                .otherwise(pl.col(column) + f"~{copy}")
                .alias(column)
            )
        elif column in _SHIFTED_IDS:
            shifted.append((pl.col(column) + f"-{copy}").alias(column))
    return frame.with_columns(shifted)


def generate(persons: int, tile: int, out: Path) -> dict:
    """Write the extracts: one municipality in out/extracts, or out/municipality-NN/extracts copies of one tile."""
    from sources.synth import SynthSpec, generate as make
    from tidlig.settings import load_config

    config = load_config()
    start = time.perf_counter()
    if persons <= tile:
        make(SynthSpec(persons=persons, seed=1, start=config.synth.start, end=config.synth.end, mess=0.02)).write(out)
        return {"seconds": time.perf_counter() - start, "folders": [str(out / "extracts")]}
    copies = -(-persons // tile)
    if copies > 98:
        raise SystemExit(f"{persons:,} persons would need {copies} municipalities of {tile:,}; Denmark has 98: raise --tile")
    town = make(SynthSpec(persons=-(-persons // copies), seed=1, start=config.synth.start, end=config.synth.end, mess=0.02))
    folders = []
    for copy in range(copies):
        folder = out / f"municipality-{copy + 1:02d}" / "extracts"
        folder.mkdir(parents=True, exist_ok=True)
        for name, frame in town.extracts.items():
            _copy(frame, copy).write_parquet(folder / f"{name}.parquet")
        folders.append(str(folder))
    return {"seconds": time.perf_counter() - start, "folders": folders}


def run_prefect(folder: Path, home: Path, model_file: Path) -> dict:
    """One nightly run through Prefect (ephemeral API) with the bench champion registered first."""
    os.environ["TIDLIG_HOME"] = str(home)
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    from flows.nightly import NightlyParams, nightly
    from prefect import flow

    @flow
    def warm_up() -> None:
        """Start the ephemeral API before timing: a real deployment talks to a running server."""

    warm_up()
    _register(home, model_file)
    start = time.perf_counter()
    summary = nightly(NightlyParams(as_of=AS_OF, extracts=folder))
    seconds = time.perf_counter() - start
    start = time.perf_counter()
    again = nightly(NightlyParams(as_of=AS_OF, extracts=folder))
    return {"seconds": seconds, "rerun_seconds": time.perf_counter() - start, "flags": summary.flags_total,
            "rerun_created": again.flags_created, "tasks": _task_seconds(summary.run_id)}


def _task_seconds(flow_run_id: str) -> dict[str, float]:
    """Seconds per task of one flow run, summed over its runs of the task (as Prefect recorded them)."""
    from uuid import UUID

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[UUID(flow_run_id)])), limit=200)
    seconds: dict[str, float] = {}
    for run in runs:
        name = run.name.rsplit("-", 1)[0]
        seconds[name] = seconds.get(name, 0.0) + (run.end_time - run.start_time).total_seconds()
    return seconds


def _register(home: Path, model_file: Path) -> None:
    """Make the bench scorer the champion, so the flow has one to score with."""
    import mlflow
    from mlflow import MlflowClient

    from models import registry
    from tidlig import settings
    from tidlig.settings import load_config

    model, _ = pickle.loads(model_file.read_bytes())
    registry.connect(settings.mlflow_tracking_uri(), home / "mlartifacts")
    name = load_config().model.name
    with mlflow.start_run(run_name="bench-champion"):
        info = mlflow.sklearn.log_model(model, name="model", pip_requirements=["scikit-learn"],
                                        serialization_format="cloudpickle")
    version = mlflow.register_model(info.model_uri, name).version
    MlflowClient().set_registered_model_alias(name, registry.CHAMPION, version)


def _child(args: argparse.Namespace) -> None:
    # VmHWM: the process's own peak, whatever its parent used.
    action = {"stages": run_stages, "prefect": run_prefect}
    if args.child == "train":
        train_champion(args.model, args.home)
        return
    if args.child == "generate":
        result = generate(args.size, args.tile, args.home)
    else:
        result = action[args.child](args.folder, args.home, args.model)
    status = Path("/proc/self/status").read_text()
    result["process_peak_gb"] = int(next(l.split()[1] for l in status.splitlines() if l.startswith("VmHWM"))) / 1e6
    print(json.dumps(result))


def _command(*args: str) -> list[str]:
    return [sys.executable, __file__, *args]


def _env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}


def _result(args: tuple[str, ...], returncode: int, stdout: str, stderr: str) -> dict:
    if returncode != 0:
        raise SystemExit(f"{' '.join(args[:2])} failed (exit {returncode}):\n{stderr[-4000:]}")
    return json.loads(stdout.strip().splitlines()[-1]) if stdout.strip() else {}


def _spawn(*args: str) -> dict:
    done = subprocess.run(_command(*args), capture_output=True, text=True, env=_env())
    return _result(args, done.returncode, done.stdout, done.stderr)


def _rss_of(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e9
    except (FileNotFoundError, ProcessLookupError):
        return 0.0


def _spawn_many(jobs: list[tuple[str, ...]], parallel: int) -> tuple[list[dict], float]:
    """Run the jobs as child processes, parallel at a time; their results, and the peak of their summed memory."""
    pending, running, results, peak = list(enumerate(jobs)), {}, [None] * len(jobs), 0.0
    with tempfile.TemporaryDirectory() as logs:
        while pending or running:
            while pending and len(running) < parallel:
                index, args = pending.pop(0)
                out, err = open(Path(logs) / f"{index}.out", "w+"), open(Path(logs) / f"{index}.err", "w+")
                running[index] = (subprocess.Popen(_command(*args), stdout=out, stderr=err, text=True, env=_env()), out, err, args)
            peak = max(peak, sum(_rss_of(process.pid) for process, *_ in running.values()))
            for index, (process, out, err, args) in list(running.items()):
                if process.poll() is not None:
                    out.seek(0), err.seek(0)
                    results[index] = _result(args, process.returncode, out.read(), err.read())
                    out.close(), err.close()
                    del running[index]
            time.sleep(0.05)
    return results, peak


def _summed(parts: list[dict]) -> dict:
    """One national run's figures from its municipalities' runs."""
    total = {"seconds": {}, "cpu": {}, "peak_gb": {}, "rows": 0, "flags": 0}
    for part in parts:
        for key in ("seconds", "cpu"):
            for stage, value in part[key].items():
                total[key][stage] = total[key].get(stage, 0.0) + value
        for stage, value in part["peak_gb"].items():
            total["peak_gb"][stage] = max(total["peak_gb"].get(stage, 0.0), value)
        total["rows"] += part["rows"]
        total["flags"] += part["flags"]
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--persons", type=int, nargs="+", default=list(SIZES), help="sizes to run (default: 100k 650k 6M)")
    parser.add_argument("--tile", type=int, default=650_000, help="sizes above this are partitioned into municipalities of at most this size")
    parser.add_argument("--parallel", type=int, default=2, help="municipalities run at once in a partitioned run (one per worker)")
    parser.add_argument("--prefect", action="store_true", help="also time one run through Prefect at the smallest size")
    parser.add_argument("--keep", type=Path, help="keep the generated data in this folder")
    parser.add_argument("--child", choices=("generate", "train", "stages", "prefect"), help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--home", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--model", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args)
        return
    if args.parallel < 1:
        parser.error(f"--parallel must be at least 1, got {args.parallel}")

    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    with tempfile.TemporaryDirectory(prefix="tidlig-bench-") as tmp:
        base = args.keep or Path(tmp)
        model = base / "champion.pickle"
        print("training the bench champion on 20,000 persons ...", flush=True)
        _spawn("--child", "train", "--home", str(base / "train"), "--model", str(model))
        results = {}
        for size in sorted(args.persons):
            data = base / f"town-{size}"
            made = _spawn("--child", "generate", "--size", str(size), "--tile", str(args.tile), "--home", str(data))
            folders = [Path(folder) for folder in made["folders"]]
            parts = f" as {len(folders)} municipalities" if len(folders) > 1 else ""
            print(f"{size:,} persons: generated{parts} in {made['seconds']:.0f} s (peak {made['process_peak_gb']:.1f} GB)", flush=True)
            start = time.perf_counter()
            if len(folders) == 1:
                results[size] = _spawn("--child", "stages", "--home", str(data / "run"), "--folder", str(folders[0]), "--model", str(model))
            else:
                jobs = [("--child", "stages", "--home", str(folder.parent / "run"), "--folder", str(folder), "--model", str(model))
                        for folder in folders]
                done, peak = _spawn_many(jobs, args.parallel)
                results[size] = _summed(done) | {"process_peak_gb": peak, "partitions": len(folders), "parallel": args.parallel}
            results[size]["wall"] = time.perf_counter() - start
            print(f"{size:,} persons: nightly stages{parts} in {results[size]['wall']:.0f} s", flush=True)
        if args.prefect:
            size = min(args.persons)
            data = base / f"town-{size}"
            flow = _spawn("--child", "prefect", "--home", str(data / "prefect-run"), "--folder", str(data / "extracts"), "--model", str(model))
        _table(results, flow if args.prefect else None)


def _table(results: dict, flow: dict | None) -> None:
    sizes = sorted(results)
    head = f"{'stage':<16}" + "".join(f"{f'{s:,} persons':>30}" for s in sizes)
    print("\n" + head + "\n" + f"{'':<16}" + "".join(f"{'wall s':>10}{'CPU s':>10}{'peak GB':>10}" for _ in sizes))
    for stage in STAGES:
        print(f"{stage:<16}" + "".join(
            f"{results[s]['seconds'].get(stage, 0):>10.1f}{results[s]['cpu'].get(stage, 0):>10.1f}"
            f"{results[s]['peak_gb'].get(stage, 0):>10.1f}" for s in sizes))
    print(f"{'total':<16}" + "".join(
        f"{sum(results[s]['seconds'].values()):>10.1f}{sum(results[s]['cpu'].values()):>10.1f}{results[s]['process_peak_gb']:>10.1f}"
        for s in sizes))
    print(f"{'source rows':<16}" + "".join(f"{results[s]['rows']:>30,}" for s in sizes))
    print(f"{'flags':<16}" + "".join(f"{results[s]['flags']:>30,}" for s in sizes))
    for size in sizes:
        if "partitions" in results[size]:
            r = results[size]
            print(f"{size:,} persons ran as {r['partitions']} municipalities, {r['parallel']} at a time: stage times are "
                  f"summed over municipalities; peak GB is the machine's (processes running at once); wall {r['wall']:.0f} s")
    for size, (seconds, gb) in GOALS.items():
        if size in results:
            # A partitioned run is as long as its wall time; one process as long as its stages.
            total = results[size]["wall"] if "partitions" in results[size] else sum(results[size]["seconds"].values())
            peak = results[size]["process_peak_gb"]
            ok = total <= seconds and (gb is None or peak <= gb)
            print(f"goal {size:,}: <= {seconds} s" + (f", <= {gb} GB" if gb else "") + f": {'met' if ok else 'NOT met'} ({total:.0f} s, {peak:.1f} GB)")
    if flow:
        size = min(sizes)
        overhead = flow["seconds"] - sum(results[size]["seconds"].values())
        print(f"through Prefect at {size:,} persons: {flow['seconds']:.1f} s (orchestration and tracking about {overhead:+.1f} s); "
              f"a rerun of the same key: {flow['rerun_seconds']:.1f} s, {flow['rerun_created']} flags created")
        tasks = sorted(flow["tasks"].items(), key=lambda item: -item[1])
        print("  its tasks (seconds, summed over runs of a task; tasks run side by side overlap): "
              + ", ".join(f"{name} {seconds:.1f}" for name, seconds in tasks))


if __name__ == "__main__":
    main()
