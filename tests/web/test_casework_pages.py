"""The caseworker's pages: the team list, a flag's detail, deciding, notes, the team page and language."""

from __future__ import annotations

import re
from datetime import date, timedelta

from audit.log import read, verify
from web.i18n import LANGUAGE_COOKIE

LATER = (date.today() + timedelta(days=30)).isoformat()


def kinds(app):
    return [entry.kind for entry in read(app.state.store.engine)]


def test_the_list_shows_the_team_in_priority_order_and_logs_whom_it_showed(app, web, seeded):
    client = web.logged_in(app, "mette")
    page = client.get("/flags")

    assert page.status_code == 200 and "Markeringer til Familieafdelingen, distrikt Nord" in page.text
    assert page.text.index(web.NORD_FIRST) < page.text.index(web.NORD_SECOND)  # priority 1 before 2
    assert web.NORD_QUEUED not in page.text  # beyond capacity: the team lead's queue
    assert web.SYD_FIRST not in page.text  # another team
    viewed = [e for e in read(app.state.store.engine) if e.kind == "flag.list_viewed"][-1]
    assert viewed.actor == "mette" and viewed.payload["persons"] == [web.NORD_FIRST, web.NORD_SECOND]


def test_the_team_lead_can_include_the_queue(app, web):
    page = web.logged_in(app, "lars").get("/flags?queue=1")
    assert web.NORD_QUEUED in page.text and "I kø" in page.text


def test_filters_narrow_the_list(app, web):
    client = web.logged_in(app, "mette")
    assert web.NORD_SECOND not in client.get("/flags?priority=1").text
    assert "Ingen markeringer matcher" in client.get("/flags?status=accepted").text
    assert client.get("/flags?status=nonsense&as_of=not-a-date&page=99").status_code == 200


def test_detail_shows_why_with_values_score_model_signals_and_sources(app, web, seeded):
    flag_id = seeded.flag_ids[web.NORD_FIRST]
    page = web.logged_in(app, "mette").get(f"/flags/{flag_id}")

    assert page.status_code == 200
    text = page.text
    assert "Gentagne underretninger" in text and "3 underretninger det seneste år" in text  # the rule and its text
    assert "child-notifications" in text and "12,5" in text  # rule id and the values, Danish decimals
    assert "15 af 20" in text and "tidlig-child/3" in text  # score and model version
    assert "De vigtigste signaler" in text
    assert "Kilderne bag signalerne" in text and "1. november 2025" in text  # the notifications window
    assert "Barnets Lov" in text  # the legal basis of the register
    viewed = [e for e in read(app.state.store.engine) if e.kind == "flag.viewed"][-1]
    assert viewed.actor == "mette" and viewed.payload["flag_id"] == flag_id and viewed.payload["purpose"]


def test_accept_opens_a_contact_and_is_logged(app, web, seeded):
    client = web.logged_in(app, "mette")
    flag_id = seeded.flag_ids[web.NORD_FIRST]
    token = web.token_of(client, f"/flags/{flag_id}")

    response = client.post(f"/flags/{flag_id}/decision", data={"decision": "accept", "csrf_token": token})

    assert response.status_code == 303
    page = client.get(response.headers["location"])
    assert "Beslutningen er gemt og logget" in page.text and "Kontakt oprettet" in page.text and "Mette Holm" in page.text
    decided = [e for e in read(app.state.store.engine) if e.kind == "flag.decided"][-1]
    assert decided.actor == "mette" and decided.payload["decision"] == "accept"


def test_dismiss_needs_a_reason_code_and_text(app, web, seeded):
    client = web.logged_in(app, "mette")
    flag_id = seeded.flag_ids[web.NORD_FIRST]
    token = web.token_of(client, f"/flags/{flag_id}")

    refused = client.post(f"/flags/{flag_id}/decision", data={"decision": "dismiss", "csrf_token": token})
    assert refused.status_code == 422
    assert "Vælg en årsag til afvisningen" in refused.text and "Skriv en begrundelse" in refused.text
    assert "flag.decided" not in kinds(app)

    done = client.post(
        f"/flags/{flag_id}/decision",
        data={"decision": "dismiss", "reason_code": "known_case", "reason_text": "Familien har allerede en sag.", "csrf_token": token},
    )
    assert done.status_code == 303
    flag = app.state.store.list_flags(team="familie-nord", status="dismissed")[0]
    assert flag.decisions[-1].reason == "known_case: Familien har allerede en sag."
    assert "Borgeren har allerede en sag eller indsats" in client.get(f"/flags/{flag_id}").text


def test_defer_needs_a_future_date(app, web, seeded):
    client = web.logged_in(app, "mette")
    flag_id = seeded.flag_ids[web.NORD_SECOND]
    token = web.token_of(client, f"/flags/{flag_id}")
    form = {"decision": "defer", "reason_text": "Afventer skolens udtalelse.", "csrf_token": token}

    assert client.post(f"/flags/{flag_id}/decision", data={**form, "defer_until": "2020-01-01"}).status_code == 422
    assert client.post(f"/flags/{flag_id}/decision", data={**form, "defer_until": LATER}).status_code == 303
    assert app.state.store.list_flags(status="deferred")[0].decisions[-1].defer_until.isoformat() == LATER


def test_a_cpr_number_in_a_reason_is_refused(app, web, seeded):
    client = web.logged_in(app, "mette")
    flag_id = seeded.flag_ids[web.NORD_FIRST]
    token = web.token_of(client, f"/flags/{flag_id}")
    response = client.post(
        f"/flags/{flag_id}/decision",
        data={"decision": "dismiss", "reason_code": "other", "reason_text": "se 010190-1234", "csrf_token": token},
    )
    assert response.status_code == 422 and "CPR" in response.text
    assert "flag.decided" not in kinds(app)


def test_a_decision_from_a_stale_page_is_refused_with_who_decided_first(app, web, seeded):
    flag_id = seeded.flag_ids[web.NORD_FIRST]
    caseworker, lead = web.logged_in(app, "mette"), web.logged_in(app, "lars")
    pages = {client: client.get(f"/flags/{flag_id}").text for client in (caseworker, lead)}
    form = {client: {"csrf_token": web.csrf_token(page), "version": version_in(page)} for client, page in pages.items()}

    accepted = caseworker.post(f"/flags/{flag_id}/decision", data={**form[caseworker], "decision": "accept"})
    dismiss = {**form[lead], "decision": "dismiss", "reason_code": "no_concern", "reason_text": "Ingen bekymring."}
    stale = lead.post(f"/flags/{flag_id}/decision", data=dismiss)

    assert accepted.status_code == 303 and stale.status_code == 409
    assert "Markeringen er allerede afgjort af Mette Holm" in stale.text and "(Kontakt oprettet)" in stale.text
    assert "Ingen bekymring." in stale.text  # what the lead wrote is kept in the form
    flag = app.state.store.list_flags(team="familie-nord", status="accepted")[0]
    assert [d.by for d in flag.decisions] == ["mette"]
    assert [e.actor for e in read(app.state.store.engine) if e.kind == "flag.decided"] == ["mette"]

    lead.get("/language/en?next=/flags")
    english = lead.post(f"/flags/{flag_id}/decision", data=dismiss)
    assert english.status_code == 409 and "This flag was already decided by Mette Holm at" in english.text
    # The refused page carries the new version: having read the decision, the lead may change it.
    changed = lead.post(f"/flags/{flag_id}/decision", data={**dismiss, "version": version_in(english.text)})
    assert changed.status_code == 303
    assert app.state.store.get_flag(flag_id, viewer="lars", purpose="check").status == "dismissed"


def version_in(html: str) -> str:
    found = re.search(r'name="version" value="(\d+)"', html)
    assert found, "the decision form carries no version"
    return found.group(1)


def test_a_decision_without_a_valid_csrf_token_is_refused(app, web, seeded):
    client = web.logged_in(app, "mette")
    other = web.logged_in(app, "lars")
    flag_id = seeded.flag_ids[web.NORD_FIRST]

    missing = client.post(f"/flags/{flag_id}/decision", data={"decision": "accept"})
    foreign = client.post(f"/flags/{flag_id}/decision", data={"decision": "accept", "csrf_token": web.token_of(other, "/flags")})
    cross_site = client.post(
        f"/flags/{flag_id}/decision",
        data={"decision": "accept", "csrf_token": web.token_of(client, "/flags")},
        headers={"Origin": "https://evil.example"},
    )

    assert missing.status_code == foreign.status_code == cross_site.status_code == 403
    assert "flag.decided" not in kinds(app)


def test_notes_are_kept_and_only_their_existence_is_logged(app, web, seeded):
    client = web.logged_in(app, "mette")
    flag_id = seeded.flag_ids[web.NORD_FIRST]
    token = web.token_of(client, f"/flags/{flag_id}")

    response = client.post(f"/flags/{flag_id}/notes", data={"note": "Talt med sundhedsplejersken.", "csrf_token": token})

    assert response.status_code == 303
    assert "Talt med sundhedsplejersken." in client.get(f"/flags/{flag_id}").text
    event = [e for e in read(app.state.store.engine) if e.kind == "flag.note_added"][-1]
    assert event.payload["person"] == web.NORD_FIRST and "Talt" not in str(event.payload)
    assert client.post(f"/flags/{flag_id}/notes", data={"note": "  ", "csrf_token": token}).status_code == 422


def test_team_page_shows_load_and_changes_capacity_with_an_audit_event(app, web):
    client = web.logged_in(app, "lars")
    page = client.get("/team")
    assert page.status_code == 200 and "Køen ud over kapaciteten" in page.text and web.NORD_QUEUED in page.text

    token = web.token_of(client, "/team")
    assert client.post("/team/capacity", data={"weekly_capacity": "-3", "csrf_token": token}).status_code == 422
    assert client.post("/team/capacity", data={"weekly_capacity": "12", "csrf_token": token}).status_code == 303

    assert app.state.accounts.get_team("familie-nord").weekly_capacity == 12
    changed = [e for e in read(app.state.store.engine) if e.kind == "team.capacity_changed"][-1]
    assert changed.actor == "lars" and changed.payload == {"team": "familie-nord", "old_capacity": 8, "new_capacity": 12}


def test_english_is_one_click_away_and_stays_chosen(app, web, seeded):
    client = web.logged_in(app, "mette")
    assert "Markeringer til" in client.get("/flags").text

    switched = client.get("/language/en?next=/flags")
    assert switched.status_code == 303 and switched.headers["location"] == "/flags"
    page = client.get("/flags")
    assert '<html lang="en">' in page.text and "Flags for" in page.text and "Repeated notifications" in page.text
    assert "12.5" in client.get(f"/flags/{seeded.flag_ids[web.NORD_FIRST]}").text
    assert client.get("/language/da?next=https://evil.example").headers["location"] == "/"


def test_the_chain_stays_intact_through_a_working_day(app, web, seeded):
    client = web.logged_in(app, "mette")
    flag_id = seeded.flag_ids[web.NORD_FIRST]
    client.get("/flags")
    token = web.token_of(client, f"/flags/{flag_id}")
    client.post(f"/flags/{flag_id}/notes", data={"note": "Ringet op.", "csrf_token": token})
    client.post(f"/flags/{flag_id}/decision", data={"decision": "accept", "csrf_token": token})
    assert verify(app.state.store.engine).ok


def test_a_family_flag_names_each_member_with_their_own_score_and_what_it_means(app, web):
    from dataclasses import replace

    from routing.flags import FlagDraft, Reason

    child, mother = "a0a0a0a0a0a00011", "a0a0a0a0a0a00012"
    reason = Reason(rule_id="child-notifications", title_da="Gentagne underretninger", title_en="Repeated notifications",
                    text_da="3 underretninger det seneste år", text_en="3 notifications in the past year", priority=2,
                    values={"notifications_365d": 3}, person=child)
    family = FlagDraft(
        as_of=date(2026, 11, 8), person=child, target="family", team="familie-nord", priority=2, rank=3, queued=False,
        score=20, probability=0.21, model_version="tidlig-child/3", rules_version="children@2025.1#abc",
        reasons=(reason, replace(reason, rule_id="adult-substance", person=mother)),
        signals=({"feature": "notifications_365d", "value": 3.0, "contribution": 1.2, "text_da": "3 underretninger det seneste år",
                  "text_en": "3 notifications in the past year", "person": child},),
        member_scores=(
            {"person": child, "target": "child", "age_years": 7, "score": 20, "probability": 0.21, "level_risk": 0.061},
            {"person": mother, "target": "adult", "age_years": 34, "score": None, "probability": None, "level_risk": None},
        ),
    )
    store = app.state.store
    store.start_run("run-family", family.as_of, "nightly")
    [flag_id] = store.save_flags("run-family", [family])
    text = web.logged_in(app, "mette").get(f"/flags/{flag_id}").text

    assert "Højeste risikoscore i familien" in text
    assert "Omkring 6 ud af 100 børn med denne score får brug for støtte inden for et år" in text
    members = text[text.index('id="members-heading"'):]
    assert child in members and mother in members and "7 år" in members and "34 år" in members
    assert "20 af 20" in members and "Ikke beregnet for denne borger" in members  # the mother's own score: none
    why = text[text.index('id="why-heading"'):text.index('id="signals-heading"')]
    assert why.count("Gælder familiemedlem") == 2  # every reason names its member, the lead child too
    signals = text[text.index('id="signals-heading"'):text.index('id="members-heading"')]
    assert "Gælder" in signals and child in signals
    english = web.logged_in(app, "mette")
    english.cookies.set(LANGUAGE_COOKIE, "en")
    assert "About 6 in 100 children with this score need support within a year" in english.get(f"/flags/{flag_id}").text
