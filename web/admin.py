"""The administrator's pages: accounts and teams."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response

from casework.accounts import ROLES, AccountError
from web import i18n
from web.auth import Viewer, accounts, require, require_form
from web.templating import render

router = APIRouter()


@router.get("/admin/users")
def users_page(request: Request, viewer: Viewer = Depends(require("admin")), created: str = "") -> Response:
    """Every account and team, and the form to add an account."""
    return _page(request, message=created or None)


@router.post("/admin/users")
async def add_user(request: Request, viewer: Viewer = Depends(require_form("admin"))) -> Response:
    """Create an account with an initial password; the creation is logged (the password never is)."""
    form = await request.form()
    team = str(form.get("team", "")).strip() or None
    try:
        user = accounts(request).add_user(
            str(form.get("username", "")), str(form.get("display_name", "")), str(form.get("role", "")), team,
            str(form.get("password", "")), by=viewer.username,
        )
    except AccountError as exc:
        values = {key: value for key, value in form.items() if key != "password"}
        return _page(request, error=str(exc), form=values, status_code=422)
    return RedirectResponse(f"/admin/users?created={user.username}", status_code=303)


@router.post("/admin/users/{username}/active")
async def set_active(username: str, request: Request, viewer: Viewer = Depends(require_form("admin"))) -> Response:
    """Lock an account (its sessions end at once) or unlock it."""
    form = await request.form()
    if username == viewer.username:
        return _page(request, error=i18n.text("users.not_self", i18n.language_of(request)), status_code=422)
    accounts(request).set_active(username, form.get("active") == "1", by=viewer.username)
    return RedirectResponse("/admin/users", status_code=303)


def _page(request: Request, *, message: str | None = None, error: str | None = None, form: dict | None = None, status_code: int = 200) -> Response:
    return render(
        request, "users.html", status_code=status_code, users=accounts(request).list_users(),
        teams=accounts(request).list_teams(), roles=ROLES, message=message, error=error, form=form or {},
    )
