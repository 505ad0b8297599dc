"""The auditor's pages: the audit log with filters and verification, rules, models, data quality."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from audit.log import read


def test_audit_log_lists_events_filters_them_and_logs_the_viewing(app, web):
    client = web.logged_in(app, "anna")
    page = client.get("/audit")
    assert page.status_code == 200 and "Markering oprettet" in page.text and "Kontrollér hashkæden" in page.text

    only_logins = client.get("/audit?kind=login.succeeded").text
    assert "Logget ind" in only_logins and "Markering oprettet</td>" not in only_logins
    by_person = client.get(f"/audit?person={web.NORD_FIRST}").text
    assert web.NORD_FIRST in by_person and web.SYD_FIRST not in by_person

    viewed = [e for e in read(app.state.store.engine) if e.kind == "audit.viewed"]
    assert viewed[-1].actor == "anna" and viewed[-1].payload == {"filters": {"person": web.NORD_FIRST}}


@pytest.mark.parametrize("typed", ["040313 1001", "040313\u20131001", "0403131001", "040313-1001"])
def test_a_person_searched_by_cpr_number_is_searched_logged_and_shown_as_the_pseudonym(app, web, monkeypatch, typed):
    from sources.pseudonym import pseudonym

    key = bytes(range(32))
    monkeypatch.setenv("TIDLIG_PSEUDONYM_KEY", key.hex())
    person = pseudonym(key, "040313-1001")
    store = app.state.store
    store.start_run("run-2", web.AS_OF.replace(day=2), "nightly")
    store.save_flags("run-2", [web.draft(person, "familie-syd", 2, as_of=web.AS_OF.replace(day=2))])

    page = web.logged_in(app, "anna").get("/audit", params={"person": typed}, follow_redirects=True).text

    assert person in page and "040313" not in page
    viewed = [e for e in read(store.engine) if e.kind == "audit.viewed"]
    assert viewed[-1].payload == {"filters": {"person": person}}
    assert "040313" not in json.dumps([(e.actor, e.payload) for e in read(store.engine)])


def test_a_cpr_number_searched_without_the_key_is_not_kept(app, web, monkeypatch):
    monkeypatch.delenv("TIDLIG_PSEUDONYM_KEY", raising=False)
    page = web.logged_in(app, "anna").get("/audit", params={"person": "040313 1001"}, follow_redirects=True).text
    assert "040313" not in page
    assert "040313" not in json.dumps([(e.actor, e.payload) for e in read(app.state.store.engine)])


def test_verify_button_reports_an_intact_chain(app, web):
    page = web.logged_in(app, "anna").get("/audit/verify")
    assert page.status_code == 200 and "Loggen er intakt" in page.text
    assert [e for e in read(app.state.store.engine) if e.kind == "audit.verified"][-1].payload["ok"] is True


def test_verify_button_finds_a_tampered_row(app, web):
    client = web.logged_in(app, "anna")
    with app.state.store.engine.begin() as conn:
        # What an owner of the database could do; the chain is there to catch it.
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only")
        else:
            conn.exec_driver_sql("DROP TRIGGER audit_events_no_update")
        conn.exec_driver_sql("UPDATE audit_events SET actor = 'someone-else' WHERE seq = 3")

    page = client.get("/audit/verify")

    assert "Loggen er BRUDT ved hændelse 3" in page.text


def test_the_app_cannot_update_or_delete_audit_rows(app):
    for statement in ("UPDATE audit_events SET actor = 'x'", "DELETE FROM audit_events"):
        try:
            with app.state.store.engine.begin() as conn:
                conn.exec_driver_sql(statement)
        except sa.exc.DBAPIError as exc:
            assert "append-only" in str(exc)
        else:
            raise AssertionError(f"{statement} was allowed")


def test_rules_page_shows_the_rules_in_use_and_recorded_versions(app, web):
    page = web.logged_in(app, "anna").get("/rules")
    assert page.status_code == 200 and "Regler og regelversioner" in page.text
    assert "Registrerede versioner" in page.text


def test_rule_versions_are_diffed(app, web, tmp_path):
    folder = tmp_path / "rules"
    folder.mkdir()
    (folder / "children.yaml").write_text("version: '1'\nrules:\n  - id: a\n    priority: 2\n", encoding="utf-8")
    app.state.accounts.record_rules("test@1", folder)
    (folder / "children.yaml").write_text("version: '2'\nrules:\n  - id: a\n    priority: 1\n", encoding="utf-8")
    app.state.accounts.record_rules("test@2", folder)

    page = web.logged_in(app, "anna").get("/rules?old=test@1&new=test@2")

    assert "Ændringer fra test@1 til test@2" in page.text
    assert "-    priority: 2" in page.text and "+    priority: 1" in page.text


def test_data_quality_shows_each_run(app, web):
    page = web.logged_in(app, "anna").get("/quality")
    assert page.status_code == 200 and "Datakvalitet pr. kørsel" in page.text and "1. november 2026" in page.text


def test_models_page_without_a_registry_says_so(app, web):
    page = web.logged_in(app, "anna").get("/models")
    assert page.status_code == 200 and "Der er ikke registreret nogen modeller endnu" in page.text


def test_admin_creates_a_user_and_the_creation_is_logged(app, web):
    client = web.logged_in(app, "admin")
    token = web.token_of(client, "/admin/users")
    form = {"username": "Jonas.K", "display_name": "Jonas Krog", "role": "caseworker", "team": "familie-syd", "csrf_token": token}

    too_short = client.post("/admin/users", data={**form, "password": "kort"})
    created = client.post("/admin/users", data={**form, "password": "et-langt-kodeord-42"})

    assert too_short.status_code == 422 and "too short" in too_short.text
    assert created.status_code == 303
    assert web.login(web.client_for(app), "Jonas.K", "et-langt-kodeord-42").status_code == 303
    event = [e for e in read(app.state.store.engine) if e.kind == "user.created"][-1]
    assert event.actor == "admin" and event.payload == {"username": "jonas.k", "role": "caseworker", "team": "familie-syd"}
    assert "et-langt-kodeord-42" not in str([e.payload for e in read(app.state.store.engine)])


@pytest.mark.slow
def test_models_page_shows_the_deployed_list_beside_the_points_rule_and_the_gate(app, web, tmp_path):
    import mlflow
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    with mlflow.start_run() as run:
        mlflow.log_metrics({"deployed.dates": 13, "deployed.deployed.precision_at_capacity": 0.213,
                            "deployed.deployed.precision_at_capacity_low": 0.151, "deployed.deployed.precision_at_capacity_high": 0.277,
                            "deployed.deployed.recall_at_capacity": 0.08, "deployed.points.precision_at_capacity": 0.174,
                            "deployed.deployed.precision_at_capacity.familie-nord": 0.3})
    client = MlflowClient(tracking_uri=uri)
    client.create_registered_model("m")
    version = client.create_model_version("m", source=str(tmp_path), run_id=run.info.run_id).version
    client.set_model_version_tag("m", version, "fairness_gate", "not_enough_data")
    app.state.mlflow_tracking_uri = uri

    page = web.logged_in(app, "anna").get("/models").text

    assert "Listen, teamene ser" in page and "13 datoer" in page
    assert "Den udrullede liste" in page and "0,213" in page and "[0,151–0,277]" in page and "Pointreglen" in page
    assert "for få data til at vurdere (blokerer godkendelse)" in page
    assert "familie-nord" not in page  # per team in the card, not among the metrics
