"""Partitioned by municipality: one nightly run per municipality, spread over two process workers of a real server."""

from __future__ import annotations

import json
import re

import pytest

from casework.store import Store
from sources.synth import SynthSpec, generate
from tidlig.settings import load_config

pytestmark = [pytest.mark.slow, pytest.mark.prefect]
AS_OF = "2026-11-01"


PARENT = """
import json, sys
from flows.partitioned import PartitionedParams, nightly_by_municipality
print(json.dumps(nightly_by_municipality(PartitionedParams.model_validate_json(sys.argv[1]))))
"""


def test_two_municipalities_run_side_by_side_on_two_workers(tmp_path, prefect_server, promote_a_champion):
    config = load_config()
    homes = {}
    for name, seed in (("aarhus", 31), ("odense", 32)):
        homes[name] = tmp_path / name
        folder = generate(SynthSpec(persons=1200, seed=seed, start=config.synth.start, end=config.synth.end)).write(homes[name])
        promote_a_champion(folder, home=homes[name])
    # One run at a time per worker: the second municipality must go to the other worker.
    with prefect_server.worker("worker-1", "--limit", "1") as first, prefect_server.worker("worker-2", "--limit", "1") as second:
        params = {"as_of": AS_OF, "municipalities": [{"name": n, "home": str(h)} for n, h in homes.items()]}
        done = prefect_server.python(PARENT, json.dumps(params))
        worker_logs = [first.read_text(), second.read_text()]
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
