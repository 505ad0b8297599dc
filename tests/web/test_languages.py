"""Every page speaks the reader's language: no text of the other language, no raw code where a word belongs."""

from __future__ import annotations

import re
import string
from datetime import date
from html.parser import HTMLParser
from http import HTTPStatus

import pytest

from audit.events import EVENT_TYPES
from casework.store import DECISIONS, FLAG_STATUSES
from sources.registry import load_registry
from web import i18n
from web.flags import REVIEW_PURPOSE

RUN_STATUSES = ("running", "completed", "failed", "skipped")
FLOWS = ("nightly", "retrain", "data-quality")
# Values the store keeps as codes: a page names them in words, never shows the code itself.
CODES = {
    *RUN_STATUSES, *FLOWS, *DECISIONS, *FLAG_STATUSES, *EVENT_TYPES, "child", "adult", "family", REVIEW_PURPOSE,
    "wrong_password", "unknown_user", "throttled",
    *(status.phrase for status in HTTPStatus),  # the web server's own English, e.g. "Method Not Allowed"
}
PLACEHOLDER = re.compile(r"{(\w+)(?::\w+)?}")


def _pairs() -> list[tuple[str, str]]:
    registry = load_registry().values()
    return [
        *i18n.TEXTS.values(), *i18n.KIND_TEXTS.values(), *i18n.FEATURE_LABELS.values(), *i18n.SECTOR_TEXTS.values(),
        *((source.title_in("da"), source.title_in("en")) for source in registry),
    ]


def _only_in(language: str) -> set[str]:
    """Whole texts that exist in one language and not the other (texts alike in both are no sign)."""
    mine = {pair[language == "en"] for pair in _pairs()}
    theirs = {pair[language != "en"] for pair in _pairs()}
    return {text for text in mine - theirs if "{" not in text}


class _VisibleText(HTMLParser):
    """The text nodes a reader of the page's language sees: parts marked with another language or as code are left out."""

    VOID = {"br", "input", "img", "meta", "link", "hr", "wbr"}

    def __init__(self, language: str) -> None:
        super().__init__()
        self.language = language
        self.open: list[tuple[str, bool]] = []  # (tag, left out)
        self.nodes: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        left_out = (
            tag in ("script", "style")
            or attrs.get("lang", self.language) != self.language
            or attrs.get("translate") == "no"
            or "mono" in (attrs.get("class") or "").split()
        )
        if tag not in self.VOID:
            self.open.append((tag, left_out))
        if not left_out and not any(out for _, out in self.open):
            self.nodes += [attrs[name] for name in ("aria-label", "title", "placeholder") if attrs.get(name)]

    def handle_endtag(self, tag):
        while self.open and self.open.pop()[0] != tag:
            pass

    def handle_data(self, data):
        if not any(out for _, out in self.open):
            node = " ".join(data.split()).strip(string.whitespace + ":·–()#")
            if node:
                self.nodes.append(node)


def visible_text(html: str, language: str) -> list[str]:
    parser = _VisibleText(language)
    parser.feed(html)
    return parser.nodes


def test_every_text_has_both_languages_with_the_same_placeholders():
    for key, (danish, english) in {**i18n.TEXTS, **i18n.KIND_TEXTS}.items():
        assert danish.strip() and english.strip(), f"{key}: a language is empty"
        assert sorted(PLACEHOLDER.findall(danish)) == sorted(PLACEHOLDER.findall(english)), f"{key}: placeholders differ"


def test_every_code_a_page_names_has_a_text():
    assert set(EVENT_TYPES) <= set(i18n.KIND_TEXTS), set(EVENT_TYPES) - set(i18n.KIND_TEXTS)
    for key in (*(f"run.status.{s}" for s in RUN_STATUSES), *(f"run.flow.{f}" for f in FLOWS),
                *(f"status.{s}" for s in FLAG_STATUSES), *(f"status.{s}" for s in DECISIONS.values())):
        assert key in i18n.TEXTS, key


def test_event_names_and_page_texts_do_not_share_keys(app, web):
    web.login(web.client_for(app), "mette", "forkert-kodeord-123")
    page = web.logged_in(app, "anna").get("/audit")

    failed_row = next(row for row in page.text.split("<tr>") if ">login.failed</span>" in row)
    assert "Mislykket login" in failed_row and "Brugernavn eller adgangskode er forkert" not in failed_row
    assert i18n.kind_text("login.failed", "en") == "Failed login" and i18n.text("login.failed", "en").startswith("The username")


def test_legal_bases_and_owners_are_written_in_danish():
    # Pages mark them lang="da": they must be.
    english = {"and", "from", "the", "to", "of", "by"}
    for source in load_registry().values():
        for value in (source.owner, source.legal_basis):
            assert not english & set(re.findall(r"\w+", value.lower())), f"{source.name}: {value!r} is partly English"


@pytest.fixture
def every_page(app, web, seeded):
    """Each page of the app, as each role sees it, in Danish and in English, with something in every section."""
    store = app.state.store
    store.start_run("quality-1", date(2026, 11, 1), "data-quality")
    store.record_source_check("quality-1", "school_absence", 10, 9, 1, [dict(
        file="school_absence.parquet", row_number=3, column="absence_pct", expectation="expect_column_values_to_be_between",
        reason="absence_pct 140 is above the maximum 100", value="140",
    )])
    store.finish_run("quality-1", "completed", {})
    store.start_run("nightly-2", date(2026, 11, 2), "nightly")
    store.fail_run("nightly-2", "features", "MemoryError: out of memory What to do: run with fewer persons")
    decided = seeded.flag_ids[web.NORD_SECOND]
    store.decide(decided, "dismiss", reason="talt med skolen", reason_code="no_concern", by="mette")
    app.state.accounts.add_note(decided, web.NORD_SECOND, "Talt med skolen", by="mette")
    web.login(web.client_for(app), "mette", "forkert-kodeord-123")
    pages = {}
    for language in ("da", "en"):
        seen = {
            "mette": ["/flags", f"/flags/{seeded.flag_ids[web.NORD_FIRST]}", f"/flags/{decided}", "/flags?status=dismissed",
                      "/flags/999999", "/logout", "/admin/users"],
            "lars": ["/team", "/flags?queue=1", "/audit"],
            "anna": ["/audit", "/audit/verify", "/quality", "/rules", "/models", "/access"],
            "admin": ["/admin/users"],
        }
        for username, paths in seen.items():
            client = web.logged_in(app, username)
            client.cookies.set(i18n.LANGUAGE_COOKIE, language, domain="testserver.local")
            for path in paths:
                pages[language, username, path] = client.get(path).text
            if username == "anna":
                token = web.token_of(client, "/access")
                report = client.post("/access", data={"person": web.NORD_SECOND, "reference": "J-1", "csrf_token": token})
                pages[language, username, "access report"] = report.text
        anonymous = web.client_for(app)
        anonymous.cookies.set(i18n.LANGUAGE_COOKIE, language, domain="testserver.local")
        pages[language, None, "/login"] = anonymous.get("/login").text
        pages[language, None, "failed login"] = web.login(anonymous, "lars", "forkert-kodeord-123").text
    return pages


def test_every_page_shows_no_text_of_the_other_language_and_no_raw_code(every_page):
    wrong = {}
    for (language, username, path), html in every_page.items():
        other = _only_in("en" if language == "da" else "da")
        for node in visible_text(html, language):
            if node in other or node in CODES:
                wrong.setdefault(f"{language} {username} {path}", []).append(node)
    assert not wrong, wrong



# Small words every sentence of a language has and the other language lacks.
FUNCTION_WORDS = {
    "da": {"og", "af", "til", "fra", "med", "ikke", "den", "det", "er", "som", "på", "har", "eller", "hvor"},
    "en": {"the", "and", "of", "to", "from", "with", "not", "is", "are", "which", "or", "where", "this"},
}


def test_no_sentence_of_the_other_language_goes_unmarked(every_page):
    # Texts from files and people (rule rationales, register owners, notes) may be in either
    # language; pages mark them with lang. Flag pages still show register owners and notes unmarked.
    found = {}
    for (language, username, path), html in every_page.items():
        if path.startswith("/flags/"):
            continue
        other = FUNCTION_WORDS["en" if language == "da" else "da"]
        for node in visible_text(html, language):
            if other & set(re.findall(r"\w+", node.lower())):
                found.setdefault(f"{language} {username} {path}", []).append(node)
    assert not found, found
