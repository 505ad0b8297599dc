"""A broken, cut-short or old delivery stops the nightly run with one message naming the file, never "PENDING" or a traceback."""

from __future__ import annotations

import gzip
import io
import zipfile
from datetime import date, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from audit.log import read
from casework.store import Store
from sources.synth import SynthSpec, generate
from tidlig.cli import app
from tidlig.settings import load_config

pytestmark = [pytest.mark.slow, pytest.mark.prefect]
AS_OF = date(2026, 11, 1)


def _zip(path: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(path.name, path.read_bytes())
    path.write_bytes(buffer.getvalue())


def _cut(path: Path) -> None:
    # As a transfer that stopped halfway: a few characters into a row.
    text = path.read_bytes()
    path.write_bytes(text[: text.index(b"\r\n", len(text) // 2) + 5])


BROKEN = {
    # An independent register's file: the run used to end "UnfinishedRun: Run is in PENDING state".
    "zip-named-csv": ("school_absence.csv", _zip, "is a zip archive, not a CSV file"),
    "gzip-named-csv": ("benefits.csv", lambda p: p.write_bytes(gzip.compress(p.read_bytes())), "is a gzip-compressed file"),
    "empty-file": ("notifications.csv", lambda p: p.write_bytes(b""), "the file is empty"),
    "cut-mid-row": ("school_absence.csv", _cut, "the file was cut off"),
    "missing-column": ("benefits.csv", lambda p: p.write_text("person_id;event_date\r\n010190-1234;01-01-2024\r\n", encoding="utf-8"),
                       "missing column(s)"),
    "folder-instead-of-file": ("evictions.csv", lambda p: (p.unlink(), p.mkdir()), "is a folder, not a file"),
    # The population, which the others are checked against.
    "missing-population": ("population.csv", lambda p: p.unlink(), "no extract for source 'population'"),
}


@pytest.fixture(scope="module")
def champion(tmp_path_factory, promote_a_champion) -> str:
    """The MLflow store of a model a person promoted: a run refuses to read any register without one."""
    home = tmp_path_factory.mktemp("champion")
    config = load_config()
    folder = generate(SynthSpec(persons=2500, seed=5, start=config.synth.start, end=config.synth.end)).write(home)
    promote_a_champion(folder, home=home)
    return f"sqlite:///{home / 'mlflow.db'}"


def _town(tmp_path: Path, monkeypatch, persons: int, champion: str) -> Path:
    monkeypatch.setenv("TIDLIG_HOME", str(tmp_path))
    monkeypatch.delenv("TIDLIG_DATABASE_URL", raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", champion)
    config = load_config()
    return generate(SynthSpec(persons=persons, seed=4, start=config.synth.start, end=config.synth.end)).write(tmp_path, "csv-dk")


@pytest.fixture
def town(tmp_path, monkeypatch, champion) -> Path:
    """A town the run stops in before scoring anyone."""
    return _town(tmp_path, monkeypatch, 400, champion)


@pytest.fixture
def scored_town(tmp_path, monkeypatch, champion) -> Path:
    """A town large enough to score, with the same registers the champion was trained on."""
    return _town(tmp_path, monkeypatch, 2500, champion)


def _flow_logs(flow_run_id) -> str:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    with get_client(sync_client=True) as client:
        logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
    return "\n".join(log.message for log in logs)


@pytest.mark.parametrize("kind", list(BROKEN))
def test_a_broken_delivery_fails_the_run_with_a_message_naming_the_file(kind, town):
    from flows.nightly import NightlyParams, nightly

    name, damage, fragment = BROKEN[kind]
    damage(town / name)
    state = nightly(NightlyParams(as_of=AS_OF, extracts=town), return_state=True)

    assert state.is_failed(), state
    assert Path(name).stem in state.message and fragment in state.message, state.message
    assert "What to do:" in state.message
    logs = _flow_logs(state.state_details.flow_run_id)
    assert "Traceback" not in logs and "PENDING" not in logs, logs
    store = Store.from_url(f"sqlite:///{town.parent / 'tidlig.db'}")
    [failed] = [e for e in read(store.engine) if e.kind == "run.failed"]
    assert failed.payload["stage"] == "read+validate" and fragment in failed.payload["error"]
    assert store.list_flags() == []


def test_every_refused_extract_is_named_at_once(town):
    from flows.nightly import NightlyParams, nightly
    from sources.readers import ExtractError

    _zip(town / "school_absence.csv")
    (town / "benefits.csv").write_bytes(b"")
    with pytest.raises(ExtractError) as refused:
        nightly(NightlyParams(as_of=AS_OF, extracts=town))
    assert "2 extracts were refused" in str(refused.value)
    assert "school_absence.csv: is a zip archive" in str(refused.value) and "benefits.csv: the file is empty" in str(refused.value)


def test_the_cli_prints_the_refusal_without_a_traceback(town, capfd):
    _zip(town / "school_absence.csv")
    result = CliRunner().invoke(app, ["run", "nightly", "--as-of", AS_OF.isoformat(), "--extracts", str(town)])
    out, err = capfd.readouterr()
    shown = result.output + out + err
    assert result.exit_code == 2
    assert "school_absence.csv: is a zip archive, not a CSV file; unpack it" in shown
    assert "Traceback" not in shown and "PENDING" not in shown


def test_an_old_extract_stops_the_run_unless_a_person_accepts_it(town):
    from flows.nightly import NightlyParams, nightly

    # The weekly registers end on 31 October; five weeks later they are too old to score on.
    late = AS_OF + timedelta(days=35)
    state = nightly(NightlyParams(as_of=late, extracts=town), return_state=True)
    assert state.is_failed()
    assert "the newest event_date in benefits.csv is 2026-10-" in state.message and "(at most 21 expected)" in state.message
    assert f"--as-of {late.isoformat()} --accept-incomplete benefits --by NAME --reason TEXT" in state.message


def test_a_delivery_cut_short_stops_the_run_and_a_named_person_may_accept_it(scored_town):
    from flows.nightly import NightlyParams, nightly

    town = scored_town

    first = nightly(NightlyParams(as_of=AS_OF, extracts=town))
    # Cut at a line break, so only the count tells the file is short; the register's count file says so too.
    lines = (town / "school_absence.csv").read_bytes().split(b"\r\n")
    full = len(lines) - 2  # less the header and the empty string after the last line break
    (town / "school_absence.csv").write_bytes(b"\r\n".join(lines[: len(lines) // 2]) + b"\r\n")
    (town / "school_absence.count").write_text(f"{full}\n", encoding="ascii")
    later = AS_OF + timedelta(days=1)

    refused = nightly(NightlyParams(as_of=later, extracts=town), return_state=True)
    assert refused.is_failed()
    assert f"school_absence.csv has {len(lines) // 2 - 1:,} data rows but school_absence.count says {full:,}" in refused.message
    assert f"fewer than the {full:,} of the last accepted delivery" in refused.message

    accepted = nightly(NightlyParams(
        as_of=later, extracts=town, accept_incomplete=("school_absence",), accepted_by="Driftsvagt Ole", accept_reason="skolen leverer resten i morgen",
    ))
    assert any("school_absence.csv has" in w and "accepted by Driftsvagt Ole" in w for w in accepted.warnings)
    store = Store.from_url(f"sqlite:///{town.parent / 'tidlig.db'}")
    [event] = [e for e in read(store.engine) if e.kind == "delivery.accepted"]
    assert event.actor == "Driftsvagt Ole"
    assert event.payload["source"] == "school_absence" and event.payload["reason"] == "skolen leverer resten i morgen"
    # The file is ordered by date, so its first half also ends long before the as-of date.
    assert event.payload["run_id"] == accepted.run_id and len(event.payload["problems"]) == 3
    assert "the extract looks old" in event.payload["problems"][2]
    # The accepted short delivery is no measure for the next night: the full one still is.
    assert store.accepted_rows()["school_absence"] == full
    assert first.run_id != accepted.run_id
