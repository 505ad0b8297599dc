"""Registers named in the page's language, the rows behind a flag on its page and in the citizen's report, deferred flags back by date."""

from __future__ import annotations

import json
from datetime import date, timedelta

import sqlalchemy as sa

from casework.store import flags
from web import queries


def test_the_rows_behind_a_reason_are_shown_with_the_register_in_the_pages_language(app, web, seeded):
    client = web.logged_in(app, "mette")
    page = client.get(f"/flags/{seeded.flag_ids[web.NORD_FIRST]}").text

    assert "Registreringerne bag (4)" in page  # 3 notifications and 1 absence week behind the one reason
    assert "Underretninger om børn" in page and "Ugentligt skolefravær pr. elev" in page
    assert "3. juli 2026" in page and "17. juli 2026" in page  # event date and the date it was known
    assert "Child-welfare notifications" not in page

    client.get("/language/en?next=/flags")
    english = client.get(f"/flags/{seeded.flag_ids[web.NORD_FIRST]}").text
    assert "The records behind this (4)" in english and "Child-welfare notifications (underretninger)" in english
    assert "Underretninger om børn" not in english


def test_a_flag_without_stored_rows_shows_no_empty_table(app, web, seeded):
    page = web.logged_in(app, "mette").get(f"/flags/{seeded.flag_ids[web.NORD_SECOND]}").text
    assert "Registreringerne bag" not in page and "Underretninger om børn" in page  # the register list remains


def test_the_citizens_report_holds_the_rows_behind_each_flag(app, web):
    auditor = web.logged_in(app, "anna")
    token = web.token_of(auditor, "/access")
    form = {"person": web.NORD_FIRST, "reference": "J.nr. 2026-0042", "csrf_token": token}

    data = json.loads(auditor.post("/access", data={**form, "format": "json"}).text)
    [flag] = data["flags"]
    assert [(e["feature"], e["source"], e["event_date"], e["known_date"]) for e in flag["evidence"]] == [
        (e["feature"], e["source"], e["event_date"].isoformat(), e["known_date"].isoformat()) for e in web.EVIDENCE
    ]
    assert flag["evidence"][0]["title_da"] == "Underretninger om børn"
    assert {r["name"]: r["title_da"] for r in data["registers"]}["benefits"] == "Ugentlige ydelseskoder fra jobcentret (DREAM)"

    printable = auditor.post("/access", data={**form, "format": "html"}).text
    assert '<details class="evidence" open>' in printable  # printed unfolded
    assert "Underretninger om børn" in printable and "28. september 2026" in printable


def test_a_deferred_flag_is_back_on_the_list_as_open_when_its_date_comes(app, web, seeded):
    store, flag_id = app.state.store, seeded.flag_ids[web.NORD_SECOND]
    until = date.today() + timedelta(days=14)
    store.decide(flag_id, "defer", reason="venter på skolens udtalelse", by="mette", defer_until=until)
    client = web.logged_in(app, "mette")

    assert web.NORD_SECOND not in client.get("/flags").text
    assert web.NORD_SECOND in client.get("/flags?status=deferred").text
    assert [row.id for row in queries.worklist(store.engine, "familie-nord", today=until - timedelta(days=1)).rows] == [seeded.flag_ids[web.NORD_FIRST]]
    due = queries.worklist(store.engine, "familie-nord", today=until)
    assert flag_id in [row.id for row in due.rows] and due.total == 2
    assert queries.worklist(store.engine, "familie-nord", status="deferred", today=until).total == 0

    with store.engine.begin() as conn:  # the days pass
        conn.execute(sa.update(flags).where(flags.c.id == flag_id).values(deferred_until=date.today()))
    page = client.get("/flags").text
    assert web.NORD_SECOND in page and f"Udsat til {date.today().day}." in page and "nu aktuel igen" in page
    assert web.NORD_SECOND not in client.get("/flags?status=deferred").text
    assert "nu aktuel igen" in client.get(f"/flags/{flag_id}").text
    load = queries.team_load(store.engine, "familie-nord")
    assert (load.open_total, load.deferred) == (3, 0)  # the queued flag is open too


def test_the_data_quality_page_names_registers_in_the_pages_language(app, web):
    app.state.store.record_source_check("run-1", "notifications", rows_in=10, rows_valid=10, rows_quarantined=0)
    client = web.logged_in(app, "anna")
    assert "Underretninger om børn" in client.get("/quality").text
    client.get("/language/en?next=/quality")
    assert "Child-welfare notifications (underretninger)" in client.get("/quality").text
