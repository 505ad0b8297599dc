"""Fixtures for the web app: a seeded store, one account per role, and logged-in test clients."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient

import casework.accounts
from casework.store import Store
from routing.flags import FlagDraft, Reason
from web.app import create_app

AS_OF = date(2026, 11, 1)
PASSWORD = "korrekt-hest-batteri-staple"
# Pseudonyms are 16 hex digits, as sources/pseudonym.py makes them.
NORD_FIRST = "a0a0a0a0a0a00001"
NORD_SECOND = "a0a0a0a0a0a00002"
NORD_QUEUED = "a0a0a0a0a0a00003"
SYD_FIRST = "b0b0b0b0b0b00001"
USERS = {
    # username: (display name, role, team)
    "mette": ("Mette Holm", "caseworker", "familie-nord"),
    "lars": ("Lars Bach", "teamlead", "familie-nord"),
    "sofie": ("Sofie Lund", "caseworker", "familie-syd"),
    "anna": ("Anna Friis", "auditor", None),
    "admin": ("Ib Admin", "admin", None),
}


@pytest.fixture(autouse=True, scope="session")
def _cheap_password_hashes():
    # Argon2's production cost (~64 MB, several passes) would make each login in the tests slow.
    original = casework.accounts._hasher
    casework.accounts._hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    yield
    casework.accounts._hasher = original


# The register rows behind NORD_FIRST's reason, as the nightly run stores them.
EVIDENCE = [
    *(dict(person=NORD_FIRST, feature="notifications_365d", source="notifications",
           event_date=date(2026, month, 3), known_date=date(2026, month, 17)) for month in (3, 7, 10)),
    dict(person=NORD_FIRST, feature="school_absence_pct_90d", source="school_absence",
         event_date=date(2026, 9, 28), known_date=date(2026, 10, 2)),
]


@dataclass(frozen=True)
class Seeded:
    """What the seeded store holds, by name."""

    url: str
    flag_ids: dict[str, int]  # person pseudonym -> flag id


def reason(rule_id: str = "child-notifications", priority: int = 2, notifications: int = 3) -> Reason:
    return Reason(
        rule_id=rule_id,
        title_da="Gentagne underretninger",
        title_en="Repeated notifications",
        text_da=f"{notifications} underretninger det seneste år",
        text_en=f"{notifications} notifications in the past year",
        priority=priority,
        values={"notifications_365d": notifications, "school_absence_pct_90d": 12.5},
    )


def draft(person: str, team: str, rank: int, *, queued: bool = False, priority: int = 2, as_of: date = AS_OF) -> FlagDraft:
    return FlagDraft(
        as_of=as_of, person=person, target="child", team=team, priority=priority, rank=rank, queued=queued,
        score=15, probability=0.31, model_version="tidlig-child/3", rules_version="children@2025.1#abc",
        reasons=(reason(priority=priority),),
    )


def seed_store(url: str) -> Seeded:
    """A store with one nightly run, flags for two teams (one queued) and an account per role."""
    app = create_app(url, secure_cookies=True)  # migrates and seeds the teams
    store: Store = app.state.store
    store.start_run("run-1", AS_OF, "nightly")
    drafts = [
        draft(NORD_FIRST, "familie-nord", 1, priority=1),
        draft(NORD_SECOND, "familie-nord", 2),
        draft(NORD_QUEUED, "familie-nord", 3, queued=True),
        draft(SYD_FIRST, "familie-syd", 1),
    ]
    ids = store.save_flags("run-1", drafts, evidence={NORD_FIRST: EVIDENCE})
    store.finish_run("run-1", "completed", {"flags_created": len(ids)})
    for username, (name, role, team) in USERS.items():
        app.state.accounts.add_user(username, name, role, team, PASSWORD, by="test-setup")
    store.close()
    return Seeded(url, {d.person: flag_id for d, flag_id in zip(drafts, ids)})


def make_app(url: str, home: Path | None = None):
    return create_app(url, home=home, secure_cookies=True)


def client_for(app) -> TestClient:
    # https, so the Secure session cookie is sent back as a browser would.
    return TestClient(app, base_url="https://testserver", follow_redirects=False)


def csrf_token(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "the page has no form with a CSRF token"
    return found.group(1)


def login(client: TestClient, username: str, password: str = PASSWORD):
    page = client.get("/login")
    return client.post(
        "/login", data={"username": username, "password": password, "csrf_token": csrf_token(page.text)}
    )


def logged_in(app, username: str) -> TestClient:
    client = client_for(app)
    response = login(client, username)
    assert response.status_code == 303, response.text[:500]
    return client


def token_of(client: TestClient, path: str = "/") -> str:
    """The CSRF token of the client's session, read from a page it may open."""
    response = client.get(path, follow_redirects=True)
    return csrf_token(response.text)


class Web:
    """The helpers above, handed to tests as the `web` fixture (test modules cannot import conftest)."""

    AS_OF = AS_OF
    PASSWORD = PASSWORD
    NORD_FIRST, NORD_SECOND, NORD_QUEUED, SYD_FIRST = NORD_FIRST, NORD_SECOND, NORD_QUEUED, SYD_FIRST
    EVIDENCE = EVIDENCE
    USERS = USERS
    seed_store = staticmethod(seed_store)
    make_app = staticmethod(make_app)
    client_for = staticmethod(client_for)
    csrf_token = staticmethod(csrf_token)
    login = staticmethod(login)
    logged_in = staticmethod(logged_in)
    token_of = staticmethod(token_of)
    draft = staticmethod(draft)


@pytest.fixture(scope="session")
def web() -> type[Web]:
    """Helpers for driving the web app in tests."""
    return Web


@pytest.fixture
def seeded(database_url) -> Seeded:
    """A freshly seeded store on SQLite, and on PostgreSQL for tests marked to run there too."""
    return seed_store(database_url)


@pytest.fixture
def app(seeded):
    application = make_app(seeded.url)
    yield application
    application.state.store.close()


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    """pytest-playwright launches the system's Chromium (Debian's package); Playwright's download is not used."""
    import os
    import shutil

    executable = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")
    if executable is None:
        message = f"Chromium is not installed at {CHROMIUM}; run `make browser` (apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return {**browser_type_launch_args, "executable_path": executable, "args": CHROMIUM_ARGS}


@pytest.fixture(scope="module")
def live_server(tmp_path_factory):
    """The app served by uvicorn on a free local port, on a freshly seeded SQLite store."""
    import socket
    import threading
    import time

    import uvicorn

    seeded = seed_store(f"sqlite:///{tmp_path_factory.mktemp('live') / 'tidlig.db'}")
    app = make_app(seeded.url)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError(f"the test server did not start on port {port}")
        time.sleep(0.05)
    # "localhost", not 127.0.0.1: browsers treat it as a secure context, so the Secure session cookie is kept.
    yield f"http://localhost:{port}", seeded, app
    server.should_exit = True
    thread.join(timeout=10)
    app.state.store.close()
