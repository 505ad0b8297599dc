"""Who is signed in, what their role lets them do, and the login and logout pages.

Local accounts with Argon2 hashes for now. Single sign-on (OIDC) plugs in by mapping the
identity provider's subject to users.oidc_subject and calling start_session, as login does.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response

from audit.events import LoginFailed, LoginSucceeded
from audit.log import append
from casework.accounts import Accounts, User
from web import csrf, i18n
from web.templating import render

SESSION_COOKIE = "tidlig_session"
HOME_BY_ROLE = {"caseworker": "/flags", "teamlead": "/flags", "auditor": "/audit", "admin": "/admin/users"}


@dataclass(frozen=True)
class Viewer:
    """The signed-in user of this request, with the token their forms must carry."""

    user: User
    csrf_token: str

    @property
    def role(self) -> str:
        return self.user.role

    @property
    def username(self) -> str:
        return self.user.username


class LoginRequired(Exception):
    """No valid session: the browser is sent to the login page."""


class Forbidden(Exception):
    """Signed in, but the role or team does not allow this; carries the text key to show."""

    def __init__(self, message_key: str = "error.403.text") -> None:
        super().__init__(message_key)
        self.message_key = message_key


def accounts(request: Request) -> Accounts:
    """The accounts store of the running app."""
    return request.app.state.accounts


def optional_viewer(request: Request) -> Viewer | None:
    """The signed-in user, or None; remembered on the request for the page frame."""
    if hasattr(request.state, "viewer"):
        return request.state.viewer
    token = request.cookies.get(SESSION_COOKIE)
    session = accounts(request).session(token) if token else None
    viewer = Viewer(session.user, session.csrf_token) if session else None
    request.state.viewer = viewer
    return viewer


def require(*roles: str) -> Callable[..., Viewer]:
    """A dependency that lets only the given roles through."""

    def dependency(request: Request) -> Viewer:
        viewer = optional_viewer(request)
        if viewer is None:
            raise LoginRequired()
        if viewer.role not in roles:
            raise Forbidden()
        return viewer

    return dependency


def require_form(*roles: str) -> Callable[..., Any]:
    """Like require, for a form that changes something: its CSRF token is checked too."""
    role_check = require(*roles)

    async def dependency(request: Request, viewer: Viewer = Depends(role_check)) -> Viewer:
        await csrf.check_form(request, viewer.csrf_token)
        return viewer

    return dependency


def client_of(request: Request) -> str:
    """The client's address for login throttling: the connection's, or what a trusted proxy forwarded."""
    return request.client.host if request.client else "unknown"


router = APIRouter()


@router.get("/", include_in_schema=False)
def front_page(request: Request) -> Response:
    """Each role starts on its own page."""
    viewer = optional_viewer(request)
    if viewer is None:
        return RedirectResponse("/login", status_code=303)
    return RedirectResponse(HOME_BY_ROLE[viewer.role], status_code=303)


@router.get("/login")
def login_page(request: Request, next: str | None = None, logged_out: bool = False) -> Response:
    """The login form."""
    token = csrf.login_token(request)
    response = render(
        request, "login.html", login_csrf=token, next=i18n.safe_next(next, ""), message="logged_out" if logged_out else None
    )
    _set_login_cookie(request, response, token)
    return response


@router.post("/login")
async def login(request: Request) -> Response:
    """Check the password, start a session and go to the page asked for; failures are counted and logged."""
    form = await request.form()
    username = str(form.get("username", "")).strip().lower()[:100]
    password = str(form.get("password", ""))
    next_page = i18n.safe_next(str(form.get("next", "")), "")
    cookie_token = request.cookies.get(csrf.LOGIN_COOKIE, "")
    try:
        await csrf.check_form(request, cookie_token)
    except csrf.CsrfFailed:
        return _login_again(request, "error.csrf", username, next_page, 403)
    store = accounts(request)
    known = store.get_user(username) if username else None
    wait = store.login_wait(username, client_of(request))
    if wait > timedelta(0):
        # Refused without checking the password, and not counted: waiting is all it takes.
        _log(request, LoginFailed(known.username if known else None, "throttled"), known)
        seconds = math.ceil(wait.total_seconds())
        response = _login_again(request, "login.throttled", username, next_page, 429, wait=seconds)
        response.headers["Retry-After"] = str(seconds)
        return response
    user = store.authenticate(username, password, client_of(request)) if username else None
    if user is None:
        reason = "unknown_user" if known is None else ("locked" if not known.active else "wrong_password")
        _log(request, LoginFailed(known.username if known else None, reason), known)
        return _login_again(request, "login.failed", username, next_page, 401)
    _log(request, LoginSucceeded(user.username, "password"), user)
    token = store.start_session(user)
    response = RedirectResponse(next_page or HOME_BY_ROLE[user.role], status_code=303)
    response.set_cookie(
        SESSION_COOKIE, token, httponly=True, samesite="lax", secure=request.app.state.secure_cookies, path="/"
    )
    response.delete_cookie(csrf.LOGIN_COOKIE, path="/")
    return response


@router.post("/logout")
async def logout(request: Request, viewer: Viewer = Depends(require_form("caseworker", "teamlead", "auditor", "admin"))) -> Response:
    """End the session at once, on the server too."""
    accounts(request).end_session(request.cookies.get(SESSION_COOKIE, ""))
    response = RedirectResponse("/login?logged_out=1", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


def _login_again(
    request: Request, error_key: str, username: str, next_page: str, status: int, wait: int | None = None
) -> Response:
    token = csrf.login_token(request)
    response = render(
        request, "login.html", status_code=status, login_csrf=token, error=error_key, username=username, next=next_page,
        wait=wait,
    )
    _set_login_cookie(request, response, token)
    return response


def _set_login_cookie(request: Request, response: Response, token: str) -> None:
    response.set_cookie(
        csrf.LOGIN_COOKIE, token, httponly=True, samesite="strict", secure=request.app.state.secure_cookies,
        max_age=3600, path="/",
    )


def _log(request: Request, event: Any, user: User | None) -> None:
    # A failed login by an unknown name has no actor to name; the typed text is not recorded.
    with accounts(request).engine.begin() as conn:
        append(conn, event, actor=user.username if user else "unknown")
