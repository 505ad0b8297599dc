"""The production path: prefect.yaml deployed to a real Prefect server, run by a real worker."""

from __future__ import annotations

import json

import pytest

from casework.store import Store
from sources.synth import SynthSpec, generate
from tidlig.settings import load_config

pytestmark = [pytest.mark.slow, pytest.mark.prefect]


def test_nightly_deployment_runs_on_a_real_server_and_worker(tmp_path, prefect_server, promote_a_champion):
    home = tmp_path / "home"
    config = load_config()
    folder = generate(SynthSpec(persons=1500, seed=21, start=config.synth.start, end=config.synth.end)).write(home)
    promote_a_champion(folder, home=home)
    with prefect_server.worker("nightly-worker", TIDLIG_HOME=str(home)) as log:
        params = json.dumps({"params": {"as_of": "2026-11-01", "extracts": str(folder)}})
        watched = prefect_server.run(
            "deployment", "run", "nightly/nightly", "--params", params, "--watch", "--watch-timeout", "900",
            timeout=960, check=False,  # bounds that only stop a hang: a first run trains its champion, slowly on a busy machine
        )
        assert "Completed" in watched.stdout, f"{watched.stdout[-2000:]}\n--- worker ---\n{log.read_text()[-4000:]}"

    flags = Store.from_url(f"sqlite:///{home / 'tidlig.db'}").list_flags()
    assert flags and all(f.reasons for f in flags)
