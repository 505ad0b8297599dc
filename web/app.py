"""The FastAPI application: wiring, security headers and error pages."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import asynccontextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from casework.accounts import Accounts
from casework.store import Store
from web import admin, audit_pages, auth, citizen, csrf, flags, i18n, teams
from web.templating import render

STATIC = Path(__file__).with_name("static")

SECURITY_HEADERS = {
    # No scripts or styles from elsewhere, no framing (clickjacking), no sniffing.
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}
# Sent with secure cookies: once a browser has seen the app over HTTPS it never falls back to plain
# HTTP, where the session cookie could be read or replaced. Not for subdomains: they are not ours.
HSTS = "max-age=31536000"


def create_app(
    database_url: str,
    *,
    home: Path | None = None,
    secure_cookies: bool = True,
    mlflow_tracking_uri: str | None = None,
    trusted_proxies: Sequence[str] = (),
    rules_folder: Path | None = None,
    routing_table: Path | None = None,
) -> FastAPI:
    """The web app on a store; `home` holds Data Docs and the pseudonym key; secure cookies need HTTPS.

    `rules_folder` and `routing_table` are the config's (None: the shipped ones), so the pages show
    the rules and teams the nightly run uses.

    Only requests from `trusted_proxies` (addresses or networks) may say, in X-Forwarded-For and
    X-Forwarded-Proto, whom and how they forward; from anyone else those headers are ignored, so a
    made-up address cannot escape the login throttle.
    """
    store = Store.from_url(database_url)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        store.close()

    app = FastAPI(title="Tidlig", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    # Migrations and team seeding run here, before the first request, not on each worker's first hit.
    store.create_schema()
    _use_write_ahead_log(store)
    accounts = Accounts(store.engine)
    accounts.sync_teams(routing_teams(routing_table))
    _record_rules(accounts, rules_folder)
    flags.warm_up()
    app.state.store = store
    app.state.accounts = accounts
    app.state.secure_cookies = secure_cookies
    app.state.home = home
    app.state.mlflow_tracking_uri = mlflow_tracking_uri
    app.state.rules_folder = rules_folder

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    for module in (auth, i18n, flags, teams, audit_pages, citizen, admin):
        app.include_router(module.router)

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Any) -> Response:
        response = await call_next(request)
        response.headers.update(SECURITY_HEADERS)
        if secure_cookies:
            response.headers["Strict-Transport-Security"] = HSTS
        if not request.url.path.startswith("/static/"):
            # Pages hold personal data: no copies in shared caches or the browser's back-forward cache.
            response.headers["Cache-Control"] = "no-store"
        return response

    if trusted_proxies:
        # Added last, so it runs first: every other part of the app sees the client the proxy names.
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=list(trusted_proxies))

    @app.exception_handler(auth.LoginRequired)
    async def to_login(request: Request, _exc: auth.LoginRequired) -> Response:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        if request.method != "GET":
            target = "/"
        return RedirectResponse(f"/login?next={_quote(target)}", status_code=303)

    @app.exception_handler(auth.Forbidden)
    async def forbidden(request: Request, exc: auth.Forbidden) -> Response:
        return render(request, "error.html", status_code=403, title_key="error.403.title", message_key=exc.message_key)

    @app.exception_handler(csrf.CsrfFailed)
    async def csrf_failed(request: Request, _exc: csrf.CsrfFailed) -> Response:
        return render(request, "error.html", status_code=403, title_key="error.title", message_key="error.csrf")

    @app.exception_handler(LookupError)
    async def not_found(request: Request, _exc: LookupError) -> Response:
        auth.optional_viewer(request)
        return render(request, "error.html", status_code=404, title_key="error.404.title", message_key="error.404.text")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        auth.optional_viewer(request)
        if exc.status_code == 404:
            return render(request, "error.html", status_code=404, title_key="error.404.title", message_key="error.404.text")
        # Starlette's details are English phrases ("Method Not Allowed"), not texts of ours.
        message_key = exc.detail if exc.detail in i18n.TEXTS else "error.http"
        return render(request, "error.html", status_code=exc.status_code, title_key="error.title", message_key=message_key)

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, _exc: RequestValidationError) -> Response:
        auth.optional_viewer(request)
        return render(request, "error.html", status_code=400, title_key="error.title", message_key="error.404.text")

    return app


def _use_write_ahead_log(store: Store) -> None:
    # Every page view appends to the audit log. In SQLite's default journal mode each of those
    # commits blocks all readers and costs several fsyncs; with a write-ahead log readers go on
    # while one writer commits, and a commit is one fsync (synchronous stays FULL: no view is lost).
    if store.engine.dialect.name != "sqlite":
        return
    # On the raw connection: the store's engine opens every transaction with BEGIN IMMEDIATE,
    # and SQLite refuses to change the journal mode inside a transaction.
    raw = store.engine.raw_connection()
    try:
        raw.driver_connection.execute("PRAGMA journal_mode=WAL")
    finally:
        raw.close()


def routing_teams(table: Path | None = None) -> list[dict[str, Any]]:
    """The teams of the routing table (the config's routing.table; None: the shipped one), as the store seeds them."""
    from routing.table import load_routing_table

    return [
        dict(id=team.id, name=team.name, department=team.department, weekly_capacity=team.weekly_capacity)
        for team in load_routing_table(table).teams
    ]


def _record_rules(accounts: Accounts, folder: Path | None) -> None:
    # The rule files' text is kept under each version the app has seen, so auditors can diff
    # versions later even after the files on disk have changed.
    version = _rules_version(folder)
    if version is not None:
        from rules.engine import RULES_DIR

        accounts.record_rules(version, Path(folder or RULES_DIR))


@lru_cache(maxsize=4)
def _rules_version(folder: Path | None) -> str | None:
    # Parsing the rule files takes most of a second; once per process and folder is enough.
    try:
        from rules.engine import load_rules

        return load_rules(folder).version
    except Exception:  # a rule file being edited must not keep caseworkers out
        return None


def _quote(path: str) -> str:
    from urllib.parse import quote

    return quote(path, safe="/")


def app_from_environment() -> FastAPI:
    """The app as `tidlig serve` starts it: store, home, MLflow and trusted proxies from the environment."""
    import os

    from tidlig import settings

    config = settings.load_config()
    return create_app(
        settings.database_url(),
        home=settings.home(),
        secure_cookies=os.environ.get("TIDLIG_WEB_INSECURE_COOKIES") != "1",
        mlflow_tracking_uri=settings.mlflow_tracking_uri(),
        trusted_proxies=trusted_proxies(os.environ.get("TIDLIG_TRUSTED_PROXIES", "")),
        rules_folder=config.rules.folder,
        routing_table=config.routing.table,
    )


def trusted_proxies(setting: str) -> list[str]:
    """The proxy addresses and networks of TIDLIG_TRUSTED_PROXIES (comma-separated); a typo is an error, not ignored."""
    import ipaddress

    found = [item.strip() for item in setting.split(",") if item.strip()]
    for item in found:
        try:
            ipaddress.ip_network(item)  # strict, as uvicorn reads it: 10.0.1.5/24 would silently match nothing
        except ValueError:
            raise ValueError(
                f"TIDLIG_TRUSTED_PROXIES: {item!r} is not an IP address or network (a network ends in zeros: "
                "10.0.1.0/24); list your TLS proxies' addresses, e.g. 10.0.0.5,10.0.1.0/24, or leave it unset "
                "when nothing sits in front of the app"
            ) from None
    return found
