"""The team lead's page: the team's load, its weekly capacity and where it cut the week's ranking."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response

from casework.accounts import AccountError
from web import queries
from web.auth import Viewer, accounts, require, require_form
from web.templating import render

router = APIRouter()


@router.get("/team")
def team_page(request: Request, viewer: Viewer = Depends(require("teamlead")), saved: str = "") -> Response:
    """Load, capacity and queue of the team lead's own team."""
    return _page(request, viewer, message="team.capacity_saved" if saved else None)


@router.post("/team/capacity")
async def set_capacity(request: Request, viewer: Viewer = Depends(require_form("teamlead"))) -> Response:
    """Change the team's weekly capacity; the old and new values go to the audit log."""
    form = await request.form()
    try:
        capacity = int(str(form.get("weekly_capacity", "")).strip())
        accounts(request).set_capacity(viewer.user.team, capacity, by=viewer.username)
    except (ValueError, AccountError):
        return _page(request, viewer, error="team.capacity_bad", status_code=422)
    return RedirectResponse("/team?saved=1", status_code=303)


def _page(request: Request, viewer: Viewer, *, message: str | None = None, error: str | None = None, status_code: int = 200) -> Response:
    team = accounts(request).get_team(viewer.user.team)
    load = queries.team_load(request.app.state.store.engine, team.id)
    cut = queries.weekly_cut(request.app.state.store.engine, team.id)
    members = [user for user in accounts(request).list_users() if user.team == team.id]
    return render(
        request, "team.html", status_code=status_code, team=team, load=load, cut=cut, members=members, message=message, error=error,
        names={user.username: user.display_name for user in accounts(request).list_users()},
    )
