"""End to end: the nightly flow through Prefect on a tiny municipality, then the CLI on its flags."""

from __future__ import annotations

import logging
import os
import re
from contextlib import contextmanager

from datetime import date
from pathlib import Path

import pytest
from typer.testing import CliRunner

from audit.log import read, verify
from casework.accounts import Accounts
from casework.store import Store
from routing.table import load_routing_table
from sources.registry import load_registry
from sources.synth import SynthSpec, generate
from tests.personal_data import Found, PersonalData, readable_by_others, scan_everywhere
from tidlig.cli import app
from tidlig.settings import load_config
from validate.contract import reference_order
from web.app import routing_teams

pytestmark = [pytest.mark.slow, pytest.mark.prefect]
AS_OF = date(2026, 11, 1)


@pytest.fixture(scope="module")
def nightly_run(tmp_path_factory, prefect_api, promote_a_champion):
    """Promote a model in a person's name, run the flow once on 2,500 synthetic residents, then again for the same date."""
    from flows.nightly import NightlyParams, nightly

    home = tmp_path_factory.mktemp("nightly") / "home"
    with _tidlig_home(home):
        config = load_config()
        town = generate(SynthSpec(persons=2500, seed=11, start=config.synth.start, end=config.synth.end))
        folder = town.write(home)
        promote_a_champion(folder)
        first = nightly(NightlyParams(as_of=AS_OF, extracts=folder))
        second = nightly(NightlyParams(as_of=AS_OF, extracts=folder))
        yield home, first, second, town


@contextmanager
def _tidlig_home(home: Path):
    """TIDLIG_HOME set to home for the block; Tidlig's own log lines go to tidlig.log beside it."""
    from tidlig.logs import PACKAGES, configure

    saved = {k: os.environ.get(k) for k in ("TIDLIG_HOME", "TIDLIG_DATABASE_URL", "MLFLOW_TRACKING_URI")}
    os.environ["TIDLIG_HOME"] = str(home)
    os.environ.pop("TIDLIG_DATABASE_URL", None)
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    with (home.parent / "tidlig.log").open("a", encoding="utf-8") as log:
        configure(stream=log)
        try:
            yield
        finally:
            for package in PACKAGES:
                logger = logging.getLogger(package)
                logger.handlers = [h for h in logger.handlers if h.get_name() != "tidlig-structured"]
                logger.propagate = True
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


def _store(home) -> Store:
    return Store.from_url(f"sqlite:///{home / 'tidlig.db'}")


def test_flags_are_routed_with_reasons_in_plain_words(nightly_run):
    home, first, _, _ = nightly_run
    flags = _store(home).list_flags(as_of=AS_OF)
    assert first.flags_created == len(flags) > 0
    for flag in flags:
        assert re.fullmatch(r"[0-9a-f]{16}", flag.person), "persons are pseudonyms, never CPR numbers"
        assert flag.reasons and all(r.text_da and r.text_en for r in flag.reasons)
        assert flag.priority == min(r.priority for r in flag.reasons)
        assert flag.rules_version == first.rules_version
    scored = [f for f in flags if f.score is not None]
    assert scored and all(f.model_version == first.model_version for f in scored)
    explained = [f for f in scored if f.signals]
    assert explained, "scored flags carry the signals behind their score"
    assert all(s["text_da"] and s["text_en"] for f in explained for s in f.signals)
    teams = {f.team for f in flags}
    assert teams <= {"sundhedsplejen", "familie-nord", "familie-syd", "familie-oest", "familie-vest", "voksen", "jobcenter"}


def test_flags_say_each_members_own_score_and_what_it_means_and_age_is_no_signal(nightly_run, monkeypatch):
    home, _, _, _ = nightly_run
    flags = _store(home).list_flags(as_of=AS_OF)
    for flag in flags:
        own = {m["person"]: m for m in flag.member_scores}
        assert flag.person in own
        if flag.score is not None:
            # A family flag shows its highest member's score; each member keeps their own.
            assert flag.score == max(m["score"] for m in own.values() if m["score"] is not None)
            assert all(m["level_risk"] is not None for m in own.values() if m["score"] is not None)
        assert all(s["feature"] != "age_years" and s["contribution"] > 0 for s in flag.signals)
    scored = next(f for f in flags if f.score is not None)
    monkeypatch.setenv("TIDLIG_HOME", str(home))
    shown = CliRunner().invoke(app, ["flags", "show", str(scored.id), "--by", "Mette Rådgiver"])
    assert shown.exit_code == 0 and "ud af 100 børn med denne score får brug for støtte inden for et år" in shown.output


def test_flags_carry_the_source_rows_their_counts_were_made_of(nightly_run):
    from features.catalogue import CATALOGUE

    home, _, _, _ = nightly_run
    counts = {f.name for f in CATALOGUE if f.agg == "count" and f.of == "self"}
    checked = 0
    for flag in _store(home).list_flags(as_of=AS_OF):
        for reason in flag.reasons:
            for name in counts & set(reason.values):
                rows = [e for e in flag.evidence if e["feature"] == name and e["person"] == (reason.person or flag.person)]
                assert len(rows) == reason.values[name], (flag.id, name)
                assert all(e["known_date"] <= AS_OF and set(e) == {"person", "feature", "source", "event_date", "known_date"} for e in rows)
                checked += bool(rows)
    assert checked, "some flag's reasons count source rows"


def test_children_of_parents_in_treatment_are_flagged_for_it(nightly_run):
    home, _, _, _ = nightly_run
    reasons = {r.rule_id for f in _store(home).list_flags(as_of=AS_OF) for r in f.reasons}
    assert "child-parent-substance" in reasons or "child-repeated-notifications" in reasons


def test_a_rerun_of_the_same_key_does_nothing_and_says_so(nightly_run):
    home, first, second, _ = nightly_run
    assert first.same_key_as is None and second.same_key_as == first.run_id
    assert second.flags_created == 0
    assert second.flags_total == first.flags_total
    assert len(_store(home).list_flags(as_of=AS_OF)) == first.flags_created
    store = _store(home)
    done, skipped = store.get_run(first.run_id), store.get_run(second.run_id)
    assert (done.status, skipped.status) == ("completed", "skipped")
    assert len(done.snapshot) == 64 and done.model_version == first.model_version and done.rules_version == first.rules_version
    assert (skipped.snapshot, skipped.model_version, skipped.rules_version) == (done.snapshot, done.model_version, done.rules_version)
    assert skipped.counts["same_key_as"] == first.run_id


def test_the_audit_log_holds_every_step_and_verifies(nightly_run):
    home, first, _, _ = nightly_run
    engine = _store(home).engine
    kinds = [e.kind for e in read(engine)]
    # The training run a person's promotion followed, then the two nightly runs.
    assert [e.payload["flow"] for e in read(engine, kind="run.started")] == ["train", "nightly", "nightly"]
    assert kinds.count("run.finished") == 3 and kinds.index("model.promoted") < kinds.index("flag.created")
    assert [e.actor for e in read(engine, kind="model.promoted")] == ["Lone Leder"]
    assert kinds.count("flag.created") == first.flags_created
    assert kinds.count("team.capacity_cut") == len(load_routing_table().teams)
    # The rerun of the same key read nothing: one validation per source for training, one for the first run.
    assert kinds.count("source.validated") == 2 * len(__import__("sources.registry", fromlist=["load_registry"]).load_registry())
    assert verify(engine).ok


def test_the_ground_truth_is_never_read(nightly_run):
    home, _, _, _ = nightly_run
    assert (home / "ground_truth.parquet").exists()
    assert not any("ground_truth" in str(p) for p in (home / "extracts").iterdir())


def test_caseworker_cli_lists_shows_decides_and_auditor_verifies(nightly_run, monkeypatch):
    home, _, _, _ = nightly_run
    monkeypatch.setenv("TIDLIG_HOME", str(home))
    runner = CliRunner()
    flag = _store(home).list_flags(as_of=AS_OF)[0]

    listed = runner.invoke(app, ["flags", "list", "--team", flag.team])
    assert listed.exit_code == 0 and flag.person in listed.output

    shown = runner.invoke(app, ["flags", "show", str(flag.id), "--by", "Mette Rådgiver"])
    assert shown.exit_code == 0 and flag.reasons[0].text_da in shown.output

    accounts = Accounts(_store(home).engine)
    accounts.sync_teams(routing_teams())
    accounts.add_user("mette", "Mette Rådgiver", "caseworker", flag.team, None, by="test-setup")
    refused = runner.invoke(app, ["flags", "decide", str(flag.id), "dismiss", "--by", "mette"])
    assert refused.exit_code != 0 and "reason" in refused.output.lower()

    decided = runner.invoke(app, ["flags", "decide", str(flag.id), "accept", "--by", "mette", "--reason", "Kontakt til familien"])
    assert decided.exit_code == 0, decided.output
    assert _store(home).get_flag(flag.id, viewer="test", purpose="test").status == "accepted"

    verified = runner.invoke(app, ["audit", "verify"])
    assert verified.exit_code == 0 and "intact" in verified.output
    kinds = [e.kind for e in read(_store(home).engine)]
    assert "flag.viewed" in kinds and "flag.decided" in kinds


def test_without_a_champion_the_run_scores_nobody_trains_nothing_and_says_how_a_person_promotes_one(tmp_path, monkeypatch, prefect_api):
    from flows.nightly import NightlyParams, NoChampionError, nightly

    monkeypatch.setenv("TIDLIG_HOME", str(tmp_path))
    monkeypatch.delenv("TIDLIG_DATABASE_URL", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    config = load_config()
    folder = generate(SynthSpec(persons=300, seed=5, start=config.synth.start, end=config.synth.end)).write(tmp_path)

    with pytest.raises(NoChampionError, match=r"tidlig models promote tidlig-child-escalation VERSION --by NAME --reason TEXT"):
        nightly(NightlyParams(as_of=AS_OF, extracts=folder))

    store = Store.from_url(f"sqlite:///{tmp_path / 'tidlig.db'}")
    kinds = [e.kind for e in read(store.engine)]
    assert "run.failed" in kinds and "model.registered" not in kinds and "model.promoted" not in kinds
    assert store.list_flags() == [] and store.list_source_checks(read(store.engine, kind="run.failed")[0].payload["run_id"]) == []

    cli = CliRunner().invoke(app, ["run", "nightly", "--as-of", AS_OF.isoformat(), "--extracts", str(folder)])
    assert cli.exit_code == 2 and "tidlig models promote" in cli.output and "Traceback" not in cli.output


def test_a_broken_extract_stops_the_run_with_a_clear_message_and_keeps_its_quarantine(nightly_run, tmp_path, monkeypatch, prefect_api):
    import polars as pl

    from flows.nightly import NightlyParams, nightly
    from sources.readers import ExtractError

    monkeypatch.setenv("TIDLIG_HOME", str(tmp_path))
    monkeypatch.delenv("TIDLIG_DATABASE_URL", raising=False)
    # The champion promoted for the module's run: the extract is refused, not the missing model.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{nightly_run[0] / 'mlflow.db'}")
    config = load_config()
    folder = generate(SynthSpec(persons=400, seed=5, start=config.synth.start, end=config.synth.end)).write(tmp_path)
    absence = pl.read_parquet(folder / "school_absence.parquet")
    broken = absence.with_columns(absence_pct=pl.when(pl.int_range(pl.len()) % 2 == 0).then(-5.0).otherwise(pl.col("absence_pct")))
    broken.write_parquet(folder / "school_absence.parquet")

    with pytest.raises(ExtractError, match="school_absence") as refused:
        nightly(NightlyParams(as_of=AS_OF, extracts=folder))
    assert "absence_pct" in str(refused.value)

    store = Store.from_url(f"sqlite:///{tmp_path / 'tidlig.db'}")
    [failed] = [e for e in read(store.engine) if e.kind == "run.failed"]
    quarantined = [q for q in store.list_quarantine(failed.payload["run_id"]) if q.source == "school_absence"]
    assert len(quarantined) == (absence.height + 1) // 2
    assert store.list_flags() == []


def test_no_personal_data_in_flow_logs_mlflow_runs_or_data_docs(nightly_run):
    """CPR numbers, birth dates and addresses stay in the extracts; pseudonyms in the casework store."""
    import mlflow
    from prefect.client.orchestration import get_client

    home, _, _, town = nightly_run
    found = scan_everywhere(PersonalData(town.extracts, load_registry()), home, logs=[home.parent / "tidlig.log"],
                            pages=_auditor_pages(home, search=_cpr_typed(town)))
    assert not any(f.count() for f in found), "personal data found: " + "; ".join(f.summary() for f in found)

    pseudonyms = {f.person for f in _store(home).list_flags()}
    texts: list[str] = []
    with get_client(sync_client=True) as client:
        offset = 0
        while batch := client.read_logs(limit=200, offset=offset):
            texts.extend(log.message for log in batch)
            offset += len(batch)
    assert texts, "expected the flow runs to have logged something"
    mlflow.set_tracking_uri(f"sqlite:///{home / 'mlflow.db'}")
    runs = mlflow.search_runs(search_all_experiments=True, output_format="list")
    assert runs
    texts.extend(repr(run.data.params) + repr(run.data.tags) for run in runs)
    leaked_pseudonyms = {p for p in pseudonyms if p in "\n".join(texts)}
    assert not leaked_pseudonyms, f"{len(leaked_pseudonyms)} pseudonyms found in logs or MLflow runs"


@pytest.fixture(scope="module")
def refused_run(tmp_path_factory, prefect_api, nightly_run):
    """A run whose population extract is refused as a whole (half its birth dates in the future)."""
    import polars as pl

    from flows.nightly import NightlyParams, nightly

    home = tmp_path_factory.mktemp("refused") / "home"
    with _tidlig_home(home):
        # The nightly run's champion: without one a run stops before it reads any register.
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{nightly_run[0] / 'mlflow.db'}"
        config = load_config()
        town = generate(SynthSpec(persons=400, seed=4, start=config.synth.start, end=config.synth.end))
        folder = town.write(home)
        population = pl.read_parquet(folder / "population.parquet")
        future = pl.when(pl.int_range(pl.len()) % 2 == 0).then(date(2031, 1, 1)).otherwise(pl.col("birth_date"))
        population.with_columns(birth_date=future).write_parquet(folder / "population.parquet")
        state = nightly(NightlyParams(as_of=AS_OF, extracts=folder), return_state=True)
        # What the run ends with (the refusal's exception, or a result): what Prefect would store.
        yield home, town, state.state_details.flow_run_id, state.result(raise_on_failure=False)


def test_a_refused_extract_leaves_no_personal_data_anywhere_and_only_private_files(refused_run):
    """The refused run's exception, Prefect's stored results and database, logs, store and pages hold none of its rows."""
    import pickle

    from prefect.settings import get_current_settings

    home, town, run_id, outcome = refused_run
    assert _store(home).list_quarantine(str(run_id), source="population"), "the refused extract's quarantine is kept"
    data = PersonalData(town.extracts, load_registry())
    found = scan_everywhere(data, home, logs=[home.parent / "tidlig.log"], pages=_auditor_pages(home, search=_cpr_typed(town)))
    found.append(Found("the run's outcome (the refusal)", data.in_bytes(pickle.dumps(outcome))))
    assert not any(f.count() for f in found), "personal data found: " + "; ".join(f.summary() for f in found)
    storage = Path(get_current_settings().results.local_storage_path).expanduser()
    assert readable_by_others(home) == []
    assert not storage.exists() or readable_by_others(storage) == []


def _cpr_typed(town) -> str:
    """A resident's CPR number as an auditor might type it: with a space instead of the dash."""
    return town.extracts["population"]["person_id"].drop_nulls()[0].replace("-", " ")


def _auditor_pages(home: Path, search: str) -> dict[str, str]:
    """The auditor's pages over the run's store, after a person search by CPR number (itself audited)."""
    from fastapi.testclient import TestClient

    from web.app import create_app

    app = create_app(f"sqlite:///{home / 'tidlig.db'}", home=home, secure_cookies=False)
    if app.state.accounts.get_user("pii-auditor") is None:
        app.state.accounts.add_user("pii-auditor", "Revisor", "auditor", None, "korrekt-hest-batteri-staple", by="test")
    with TestClient(app, follow_redirects=False) as client:
        form = client.get("/login").text
        token = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)
        client.post("/login", data={"username": "pii-auditor", "password": "korrekt-hest-batteri-staple", "csrf_token": token})
        pages = {path: client.get(path, follow_redirects=True).text for path in ("/audit?person=" + search, "/audit", "/quality")}
    return pages


def test_registers_others_look_up_are_validated_first_and_the_rest_side_by_side(nightly_run):
    from uuid import UUID

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    _, first, _, _ = nightly_run
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[UUID(first.run_id)])))
    spans = sorted((r.start_time, r.end_time) for r in runs if r.name.startswith("validate_source"))
    referenced, independent = reference_order(load_registry())
    assert len(spans) == len(referenced) + len(independent)
    looked_up, rest = spans[: len(referenced)], spans[len(referenced):]
    assert max(end for _, end in looked_up) <= min(start for start, _ in rest), "the population's ids are known before others are checked"
    assert any(later_start < end for (_, end), (later_start, _) in zip(rest, rest[1:])), "no two registers were validated at once"
