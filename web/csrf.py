"""Cross-site request forgery protection: every form that changes something carries a secret token.

Signed-in users' forms carry their session's token. The login form, which has no session yet,
uses a double-submit cookie. A request whose Origin header names another site is refused as well.
"""

from __future__ import annotations

import hmac
import secrets
from urllib.parse import urlsplit

from fastapi import Request

LOGIN_COOKIE = "tidlig_login_csrf"


class CsrfFailed(Exception):
    """A changing request without a valid token, or from another site."""


def same_origin(request: Request) -> bool:
    """False when the browser says the request came from a page on another site."""
    origin = request.headers.get("origin")
    if not origin or origin == "null":
        return origin is None
    return urlsplit(origin).netloc == request.headers.get("host", request.url.netloc)


async def check_form(request: Request, expected: str) -> None:
    """Refuse the request unless its form's csrf_token equals the expected one and it came from this site."""
    form = await request.form()
    sent = form.get("csrf_token")
    if not same_origin(request) or not isinstance(sent, str) or not expected or not hmac.compare_digest(sent, expected):
        raise CsrfFailed()


def login_token(request: Request) -> str:
    """The login form's token: the one in the browser's cookie, or a new one to set."""
    return request.cookies.get(LOGIN_COOKIE) or secrets.token_urlsafe(32)
