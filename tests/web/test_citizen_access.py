"""A citizen's access request: everything held on one person, why, and every access, as JSON and print."""

from __future__ import annotations

import json

from audit.log import read
from sources.pseudonym import pseudonym


def request_access(client, web, person: str, fmt: str = "html"):
    token = web.token_of(client, "/access")
    return client.post("/access", data={"person": person, "reference": "J.nr. 2026-0042", "format": fmt, "csrf_token": token})


def test_the_report_holds_flags_reasons_decisions_notes_and_every_access(app, web, seeded):
    caseworker = web.logged_in(app, "mette")
    flag_id = seeded.flag_ids[web.NORD_FIRST]
    caseworker.get("/flags")
    token = web.token_of(caseworker, f"/flags/{flag_id}")
    caseworker.post(f"/flags/{flag_id}/notes", data={"note": "Aftalt møde med forældrene.", "csrf_token": token})
    caseworker.post(f"/flags/{flag_id}/decision", data={"decision": "accept", "csrf_token": token})

    page = request_access(web.logged_in(app, "anna"), web, web.NORD_FIRST)

    assert page.status_code == 200
    text = page.text
    assert "Det har Tidlig om dig" in text and "Gentagne underretninger" in text and "15 af 20" in text
    assert "Aftalt møde med forældrene." in text and "Kontakt oprettet" in text
    assert "Mette Holm" in text  # who saw the data
    for kind in ("Liste over markeringer set", "Markering set", "Beslutning truffet", "Note tilføjet"):
        assert kind in text
    assert web.SYD_FIRST not in text  # nobody else's data
    exported = [e for e in read(app.state.store.engine) if e.kind == "citizen.access_exported"][-1]
    assert exported.actor == "anna" and exported.payload == {"person": web.NORD_FIRST, "format": "html", "reference": "J.nr. 2026-0042"}


def test_the_json_export_is_complete_and_logged(app, web):
    response = request_access(web.logged_in(app, "anna"), web, web.NORD_FIRST, "json")

    assert response.status_code == 200 and response.headers["content-type"].startswith("application/json")
    assert "attachment" in response.headers["content-disposition"]
    data = json.loads(response.text)
    assert data["person"] == web.NORD_FIRST and len(data["flags"]) == 1
    assert data["flags"][0]["reasons"][0]["values"]["notifications_365d"] == 3
    assert data["flags"][0]["sources"][0]["legal_basis"]
    assert {a["kind"] for a in data["accesses"]} == {"flag.created", "citizen.access_exported"}
    assert data["export"]["reference"] == "J.nr. 2026-0042"


def test_a_cpr_number_is_turned_into_the_pseudonym_and_never_kept(app, web, seeded, tmp_path, monkeypatch):
    key = bytes(range(32))
    monkeypatch.setenv("TIDLIG_PSEUDONYM_KEY", key.hex())
    cpr = "010190-1234"
    person = pseudonym(key, cpr)
    store = app.state.store
    store.start_run("run-2", web.AS_OF.replace(day=2), "nightly")
    store.save_flags("run-2", [web.draft(person, "familie-syd", 2, as_of=web.AS_OF.replace(day=2))])

    page = request_access(web.logged_in(app, "anna"), web, "0101901234")

    assert page.status_code == 200 and person in page.text and "Gentagne underretninger" in page.text
    assert "010190" not in page.text
    everything = json.dumps([(e.actor, e.payload) for e in read(store.engine)])
    assert "010190" not in everything


def test_a_malformed_person_is_refused_with_a_hint(app, web):
    page = request_access(web.logged_in(app, "anna"), web, "Jens Jensen")
    assert page.status_code == 422 and "Skriv et CPR-nummer" in page.text
    assert not [e for e in read(app.state.store.engine) if e.kind == "citizen.access_exported"]
