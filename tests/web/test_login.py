"""Login: Argon2 passwords, secure session cookies, CSRF on the form, throttling, logout, all logged."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

import casework.accounts
from audit.log import read
from casework.accounts import users
from web.app import create_app, trusted_proxies


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


class Clock:
    """The accounts' clock, moved by hand, so waits pass without sleeping."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 2, 8, 0, tzinfo=timezone.utc)

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(casework.accounts, "_now", lambda: clock.now)
    return clock


@pytest.fixture
def behind_proxy(seeded, web):
    """The app behind a proxy it trusts (the test client's address), so tests can speak from many addresses."""
    application = create_app(seeded.url, secure_cookies=True, trusted_proxies=["testclient"])
    yield application
    application.state.store.close()


def from_address(web, app, address: str):
    client = web.client_for(app)
    client.headers["X-Forwarded-For"] = address
    return client


def test_repeated_failures_make_the_next_attempt_wait_and_then_the_right_password_works(app, web, clock):
    client = web.client_for(app)
    for _ in range(3):
        assert web.login(client, "lars", "gaet-igen-og-igen").status_code == 401

    throttled = web.login(client, "lars")  # even the right password waits a moment

    assert throttled.status_code == 429 and throttled.headers["retry-after"] == "1"
    assert "For mange mislykkede forsøg. Vent 1 sekund" in throttled.text
    assert [e.payload["reason"] for e in read(app.state.store.engine) if e.kind == "login.failed"][-1] == "throttled"
    assert web.login(web.client_for(app), "mette").status_code == 303  # other accounts are unaffected
    clock.advance(seconds=1)
    assert web.login(client, "lars").status_code == 303


def test_the_wait_grows_with_each_failure_and_waiting_attempts_do_not_count(app, web, clock):
    client = web.client_for(app)
    waits = []
    for _ in range(8):
        assert web.login(client, "lars", "gaet-igen-og-igen").status_code == 401
        wait = app.state.accounts.login_wait("lars", "testclient")
        waits.append(wait.total_seconds())
        if wait:
            assert web.login(client, "lars", "gaet-igen-og-igen").status_code == 429
            assert app.state.accounts.login_wait("lars", "testclient") == wait  # refused, not counted
        clock.advance(seconds=waits[-1])

    assert waits == [0, 0, 1, 2, 4, 8, 16, 32]
    assert web.login(client, "lars").status_code == 303


def test_an_attack_from_elsewhere_does_not_keep_the_user_out(behind_proxy, web, clock):
    app = behind_proxy
    assert web.login(from_address(web, app, "10.1.0.7"), "lars").status_code == 303  # Lars's desk
    clock.advance(hours=1)
    started = clock.now
    for attempt in range(60):  # a guesser on 30 machines, each guess as soon as the throttle lets it
        attacker = from_address(web, app, f"203.0.113.{attempt % 30}")
        while (response := web.login(attacker, "lars", f"gaet-{attempt}-gaet-igen")).status_code == 429:
            clock.advance(seconds=int(response.headers["retry-after"]))
        assert response.status_code == 401
        clock.advance(seconds=0.5)
    assert clock.now - started > timedelta(minutes=30)  # slowed down: 60 guesses took over half an hour

    assert web.login(from_address(web, app, "10.1.0.7"), "lars").status_code == 303  # at once, from the desk
    elsewhere = from_address(web, app, "10.9.9.9")  # a place Lars has not signed in from: a short wait
    waiting = web.login(elsewhere, "lars")
    assert waiting.status_code == 429 and 0 < int(waiting.headers["retry-after"]) <= 60
    clock.advance(seconds=int(waiting.headers["retry-after"]))
    assert web.login(elsewhere, "lars").status_code == 303


def test_one_address_trying_many_accounts_is_slowed_from_there_only(behind_proxy, web, clock):
    app = behind_proxy
    sprayer = from_address(web, app, "198.51.100.4")
    for number in range(20):
        assert web.login(sprayer, f"ukendt{number}", "sommer2026-sommer").status_code == 401

    assert web.login(sprayer, "sofie", "sommer2026-sommer").status_code == 429
    assert web.login(from_address(web, app, "10.1.0.8"), "sofie").status_code == 303


def test_a_made_up_forwarded_address_does_not_escape_the_throttle(app, web, clock):
    for attempt in range(3):
        assert web.login(from_address(web, app, f"192.0.2.{attempt}"), "lars", "gaet-igen-og-igen").status_code == 401

    assert web.login(from_address(web, app, "192.0.2.99"), "lars").status_code == 429


def test_forwarded_headers_count_only_from_a_listed_proxy(seeded, web, clock):
    app = create_app(seeded.url, secure_cookies=True, trusted_proxies=["10.0.0.5"])  # not the test client
    try:
        for attempt in range(3):
            web.login(from_address(web, app, f"192.0.2.{attempt}"), "lars", "gaet-igen-og-igen")
        assert web.login(from_address(web, app, "192.0.2.99"), "lars").status_code == 429
    finally:
        app.state.store.close()


def test_trusted_proxies_must_be_addresses_or_networks():
    assert trusted_proxies("10.0.0.5, 10.0.1.0/24,::1") == ["10.0.0.5", "10.0.1.0/24", "::1"]
    assert trusted_proxies("") == []
    for wrong in ("*", "proxy.kommune.dk", "10.0.0.300", "10.0.1.5/24"):
        with pytest.raises(ValueError, match="TIDLIG_TRUSTED_PROXIES"):
            trusted_proxies(wrong)


def test_secure_cookies_come_with_strict_transport_security(app, seeded, web):
    assert web.client_for(app).get("/login").headers["strict-transport-security"] == "max-age=31536000"
    plain = create_app(seeded.url, secure_cookies=False)
    try:
        assert "strict-transport-security" not in web.client_for(plain).get("/login").headers
    finally:
        plain.state.store.close()


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


def _serve(tmp_path, url: str, **env: str):
    """`tidlig serve` as an operator starts it, on a free port; yields its base URL."""
    import os
    import socket
    import subprocess
    import sys
    import time

    import httpx

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    environment = {**os.environ, "TIDLIG_DATABASE_URL": url, "TIDLIG_HOME": str(tmp_path), **env}
    log = (tmp_path / "serve.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "tidlig.cli", "serve", "--port", str(port), "--insecure-cookies"],
        env=environment, stdout=log, stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            httpx.get(f"{base}/login", timeout=2)
            break
        except httpx.TransportError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                raise RuntimeError(f"tidlig serve did not start:\n{(tmp_path / 'serve.log').read_text()[-2000:]}")
            time.sleep(0.2)
    return server, base


@pytest.mark.slow
def test_tidlig_serve_ignores_forwarded_addresses_from_unlisted_proxies(seeded, web, tmp_path):
    import httpx

    server, base = _serve(tmp_path, seeded.url)
    try:
        def attempt(password: str, forged: str) -> int:
            with httpx.Client(base_url=base, headers={"X-Forwarded-For": forged}) as client:
                token = web.csrf_token(client.get("/login").text)
                return client.post("/login", data={"username": "lars", "password": password, "csrf_token": token}).status_code

        assert [attempt("gaet-igen-og-igen", f"192.0.2.{n}") for n in range(3)] == [401, 401, 401]
        assert attempt(web.PASSWORD, "192.0.2.99") == 429  # a local client is no proxy unless listed
    finally:
        server.terminate()
        server.wait(timeout=20)


@pytest.mark.slow
def test_tidlig_serve_refuses_a_proxy_setting_that_is_no_address(seeded):
    import os
    import subprocess
    import sys

    env = {**os.environ, "TIDLIG_DATABASE_URL": seeded.url, "TIDLIG_TRUSTED_PROXIES": "10.0.0.5,proxy.kommune.dk"}
    done = subprocess.run([sys.executable, "-m", "tidlig.cli", "serve"], env=env, capture_output=True, text=True, timeout=120)

    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "'proxy.kommune.dk' is not an IP address or network" in done.stderr
