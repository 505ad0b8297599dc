"""In a real headless Chromium: log in, read the list, open a flag, decide, be refused, switch language."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.browser


def log_in(page: Page, base: str, username: str, password: str) -> None:
    page.goto(f"{base}/login")
    page.get_by_label("Brugernavn").fill(username)
    page.get_by_label("Adgangskode").fill(password)
    page.get_by_role("button", name="Log ind").click()


def test_log_in_with_the_keyboard_only(page: Page, live_server, web):
    base, _, _ = live_server
    page.goto(f"{base}/login")
    page.keyboard.type("mette")  # the username field has focus on arrival
    page.keyboard.press("Tab")
    page.keyboard.type(web.PASSWORD)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", level=1)).to_have_text("Markeringer til Familieafdelingen, distrikt Nord")
    # The first Tab lands on the skip link, which leads to the content.
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Gå til indhold")).to_be_focused()


def test_wrong_password_is_explained(page: Page, live_server):
    base, _, _ = live_server
    log_in(page, base, "mette", "ikke-det-rigtige")
    expect(page.get_by_role("alert")).to_contain_text("Brugernavn eller adgangskode er forkert")


def test_list_open_and_accept_a_flag(page: Page, live_server, web):
    base, seeded, _ = live_server
    log_in(page, base, "mette", web.PASSWORD)
    rows = page.locator("table tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.first).to_contain_text("Høj")

    rows.first.get_by_role("link").click()
    expect(page).to_have_url(re.compile(rf"/flags/{seeded.flag_ids[web.NORD_FIRST]}$"))
    expect(page.get_by_role("heading", name="Hvorfor er borgeren markeret?")).to_be_visible()
    expect(page.get_by_text("15 af 20")).to_be_visible()
    expect(page.get_by_role("heading", name="Kilderne bag signalerne")).to_be_visible()

    page.get_by_label("Opret kontakt om tidlig indsats").check()
    page.get_by_role("button", name="Gem beslutning").click()
    expect(page.get_by_role("status")).to_contain_text("Beslutningen er gemt og logget")
    expect(page.locator(".timeline")).to_contain_text("Kontakt oprettet")


def test_dismiss_shows_what_is_missing_then_saves(page: Page, live_server, web):
    base, seeded, _ = live_server
    log_in(page, base, "mette", web.PASSWORD)
    page.goto(f"{base}/flags/{seeded.flag_ids[web.NORD_SECOND]}")

    page.get_by_label("Afvis markeringen").check()
    expect(page.get_by_label("Årsag til afvisning")).to_be_visible()  # shown only for a dismissal
    expect(page.get_by_label("Se på markeringen igen den")).to_be_hidden()
    page.get_by_role("button", name="Gem beslutning").click()
    expect(page.get_by_role("alert")).to_contain_text("Vælg en årsag til afvisningen")

    page.get_by_label("Årsag til afvisning").select_option("no_concern")
    page.get_by_label("Begrundelse").fill("Gennemgået med skolen; ingen bekymring.")
    page.get_by_role("button", name="Gem beslutning").click()
    expect(page.get_by_role("status")).to_contain_text("Beslutningen er gemt og logget")
    expect(page.locator(".timeline")).to_contain_text("Ingen bekymring efter gennemgang")


def test_a_caseworker_is_refused_the_audit_log_and_other_teams(page: Page, live_server, web):
    base, seeded, _ = live_server
    log_in(page, base, "mette", web.PASSWORD)
    page.goto(f"{base}/audit")
    expect(page.get_by_role("heading", level=1)).to_have_text("Du har ikke adgang til denne side")
    page.goto(f"{base}/flags/{seeded.flag_ids[web.SYD_FIRST]}")
    expect(page.get_by_text("Denne markering hører til et andet team.")).to_be_visible()
    expect(page.get_by_text(web.SYD_FIRST)).to_have_count(0)


def test_switch_language_and_back(page: Page, live_server, web):
    base, _, _ = live_server
    log_in(page, base, "lars", web.PASSWORD)
    page.get_by_role("link", name="Skift sprog til engelsk").click()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.get_by_role("heading", level=1)).to_have_text("Flags for Familieafdelingen, distrikt Nord")
    page.get_by_role("link", name="Team").click()
    expect(page.get_by_role("heading", name="The queue beyond capacity")).to_be_visible()
    page.get_by_role("link", name="Switch language to Danish").click()
    expect(page.get_by_role("heading", name="Køen ud over kapaciteten")).to_be_visible()


def test_auditor_verifies_the_log_and_exports_an_access_request(page: Page, live_server, web):
    base, _, _ = live_server
    log_in(page, base, "anna", web.PASSWORD)
    page.get_by_role("link", name="Kontrollér hashkæden").click()
    expect(page.get_by_role("status")).to_contain_text("Loggen er intakt")

    page.get_by_role("link", name="Indsigtsanmodning").click()
    page.get_by_label("CPR-nummer eller pseudonym").fill(web.NORD_FIRST)
    page.get_by_label("Journalnummer for anmodningen").fill("2026-0042")
    page.get_by_role("button", name="Lav udtræk").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Det har Tidlig om dig")
    expect(page.get_by_role("heading", name="Hvem har set eller behandlet dine oplysninger")).to_be_visible()
    with page.expect_download() as download:
        page.get_by_role("button", name="Hent som JSON").click()
    assert download.value.suggested_filename == f"tidlig-indsigt-{web.NORD_FIRST}.json"
