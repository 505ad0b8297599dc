"""`tidlig demo` promotes its model in the demo user's name, through the same promote a person uses, before anything is scored."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from audit.log import read, verify
from casework.store import Store
from tidlig.cli import app

pytestmark = [pytest.mark.slow, pytest.mark.prefect]


def test_the_demo_trains_then_promotes_in_the_demo_users_name_then_scores(tmp_path, monkeypatch, prefect_api):
    monkeypatch.setenv("TIDLIG_HOME", str(tmp_path))
    monkeypatch.delenv("TIDLIG_DATABASE_URL", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)

    done = CliRunner().invoke(app, ["demo", "--persons", "1500", "--by", "Dorte Demo"])

    assert done.exit_code == 0, done.output
    assert "is now champion" in done.output and "below capacity" in done.output
    engine = Store.from_url(f"sqlite:///{tmp_path / 'tidlig.db'}").engine
    events = read(engine)
    kinds = [e.kind for e in events]
    [promoted] = [e for e in events if e.kind == "model.promoted"]
    assert promoted.actor == "Dorte Demo" and promoted.payload["by"] == "Dorte Demo"
    assert kinds.index("model.registered") < kinds.index("model.promoted") < kinds.index("team.capacity_cut")
    assert verify(engine).ok
