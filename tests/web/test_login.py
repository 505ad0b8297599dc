"""Login: Argon2 passwords, secure session cookies, CSRF on the form, throttling, logout, all logged."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from audit.log import read
from casework.accounts import users


@pytest.fixture
def database_url(tmp_path):
    """Login logic does not depend on the database; SQLite keeps these tests quick."""
    return f"sqlite:///{tmp_path / 'tidlig.db'}"


def test_login_sets_a_secure_http_only_session_cookie_and_logs_it(app, web):
    client = web.client_for(app)
    response = web.login(client, "mette")

    assert response.status_code == 303 and response.headers["location"] == "/flags"
    cookie = next(value for name, value in response.headers.multi_items() if name == "set-cookie" and "tidlig_session=" in value)
    assert "HttpOnly" in cookie and "Secure" in cookie and "SameSite=lax" in cookie
    events = [e for e in read(app.state.store.engine) if e.kind == "login.succeeded"]
    assert events[-1].actor == "mette" and events[-1].payload == {"username": "mette", "method": "password"}


def test_passwords_are_stored_as_argon2_hashes(app, web):
    with app.state.store.engine.connect() as conn:
        stored = conn.execute(sa.select(users.c.password_hash).where(users.c.username == "mette")).scalar_one()
    assert stored.startswith("$argon2id$") and web.PASSWORD not in stored


def test_wrong_password_is_refused_and_logged_without_the_typed_text(app, web):
    client = web.client_for(app)
    wrong = web.login(client, "mette", "forkert-kodeord-123")
    unknown = web.login(client, "310190-1234", "hemmeligt")

    assert wrong.status_code == 401 and "Brugernavn eller adgangskode er forkert" in wrong.text
    assert unknown.status_code == 401
    failed = [e for e in read(app.state.store.engine) if e.kind == "login.failed"]
    assert [(e.actor, e.payload["reason"]) for e in failed] == [("mette", "wrong_password"), ("unknown", "unknown_user")]
    assert "310190" not in str([e.payload for e in failed])
    assert client.get("/flags").status_code == 303


def test_repeated_failures_throttle_the_account(app, web):
    client = web.client_for(app)
    for _ in range(5):
        assert web.login(client, "lars", "gaet-igen-og-igen").status_code == 401

    throttled = web.login(client, "lars")  # even the right password waits now

    assert throttled.status_code == 429 and "For mange mislykkede forsøg" in throttled.text
    assert [e.payload["reason"] for e in read(app.state.store.engine) if e.kind == "login.failed"][-1] == "throttled"
    assert web.login(web.client_for(app), "mette").status_code == 303  # other accounts are unaffected


def test_login_form_needs_its_csrf_token(app, web):
    client = web.client_for(app)
    client.get("/login")
    response = client.post("/login", data={"username": "mette", "password": web.PASSWORD, "csrf_token": "forged"})
    assert response.status_code == 403
    assert client.get("/flags").status_code == 303


def test_logout_ends_the_session_on_the_server(app, web):
    client = web.logged_in(app, "mette")
    stolen = client.cookies.get("tidlig_session")
    replay = web.client_for(app)
    replay.cookies.set("tidlig_session", stolen, domain="testserver.local")
    assert replay.get("/flags").status_code == 200  # the copied cookie works while the session lives

    response = client.post("/logout", data={"csrf_token": web.token_of(client, "/flags")})

    assert response.status_code == 303
    assert replay.get("/flags").status_code == 303


def test_a_locked_account_cannot_log_in_and_loses_its_sessions(app, web):
    client = web.logged_in(app, "mette")
    app.state.accounts.set_active("mette", False, by="admin")

    assert client.get("/flags").status_code == 303
    assert web.login(web.client_for(app), "mette").status_code == 401


def test_next_page_after_login_stays_on_this_site(app, web):
    client = web.client_for(app)
    page = client.get("/login?next=https://evil.example/")
    response = client.post(
        "/login",
        data={"username": "mette", "password": web.PASSWORD, "csrf_token": web.csrf_token(page.text), "next": "//evil.example/"},
    )
    assert response.headers["location"] == "/flags"


def test_pages_send_security_headers(app, web):
    response = web.client_for(app).get("/login")
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["x-content-type-options"] == "nosniff"
