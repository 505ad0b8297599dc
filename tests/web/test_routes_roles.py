"""Every route × every role: what each may read, what each may change, and that a refusal changes nothing."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from fastapi.routing import APIRoute

from audit.log import audit_events
from casework.accounts import notes, teams, users
from casework.store import decisions

ROLES = ("anonymous", "caseworker", "other_team", "teamlead", "auditor", "admin")
ACCOUNT = {"caseworker": "mette", "other_team": "sofie", "teamlead": "lars", "auditor": "anna", "admin": "admin"}
OK, DENIED, LOGIN, REDIRECT, MISSING = "ok", "denied", "login", "redirect", "missing"
EVERYONE = dict.fromkeys(ROLES, OK)


def only(*roles: str, otherwise: str = DENIED) -> dict[str, str]:
    return {role: OK if role in roles else (LOGIN if role == "anonymous" else otherwise) for role in ROLES}


TEAM = ("caseworker", "other_team", "teamlead")

# path template -> expected outcome per role. {nord}, {syd}, {queued} are flags of the teams.
READS: dict[str, dict[str, str]] = {
    "/": {role: REDIRECT for role in ROLES},
    "/login": EVERYONE,
    "/language/{language}": {role: REDIRECT for role in ROLES},
    "/flags": only(*TEAM),
    "/flags/{nord}": only("caseworker", "teamlead"),
    "/flags/{syd}": only("other_team"),
    "/flags/{queued}": only("teamlead"),
    "/team": only("teamlead"),
    "/audit": only("auditor"),
    "/audit/verify": only("auditor"),
    "/quality": only("auditor"),
    # No Data Docs are built in the tests: the auditor gets "not found", everyone else is refused first.
    "/quality/docs/{path}": {**only("auditor"), "auditor": MISSING},
    "/rules": only("auditor"),
    "/models": only("auditor"),
    "/access": only("auditor"),
    "/admin/users": only("admin"),
}

# path template -> (expected outcome per role, form fields, how to see whether anything changed)
WRITES: dict[str, dict[str, str]] = {
    "/logout": only(*ROLES[1:]),
    "/flags/{nord}/decision": only("caseworker", "teamlead"),
    "/flags/{syd}/decision": only("other_team"),
    "/flags/{queued}/decision": only("teamlead"),
    "/flags/{nord}/notes": only("caseworker", "teamlead"),
    "/team/capacity": only("teamlead"),
    "/access": only("auditor"),
    "/admin/users": only("admin"),
    "/admin/users/{username}/active": only("admin"),
}
# Open to everyone by design, with its own tests (CSRF, throttling) in test_login.py.
PUBLIC_FORMS = {("POST", "/login")}
FORMS = {
    "decision": {"decision": "accept"},
    "notes": {"note": "Ringet til skolen; afventer svar."},
    "capacity": {"weekly_capacity": "11"},
    "/access": {"person": "{nord_person}", "reference": "2026-0042", "format": "html"},
    "/admin/users": {"username": "ny.bruger", "display_name": "Ny Bruger", "role": "auditor", "team": "", "password": "et-langt-kodeord-42"},
    "active": {"active": "0"},
}


@pytest.fixture(scope="module")
def read_app(tmp_path_factory, web):
    """One app for all read checks: reading changes nothing but the audit log."""
    seeded = web.seed_store(f"sqlite:///{tmp_path_factory.mktemp('roles') / 'tidlig.db'}")
    app = web.make_app(seeded.url)
    clients = {role: web.logged_in(app, ACCOUNT[role]) if role != "anonymous" else web.client_for(app) for role in ROLES}
    yield app, seeded, clients, web
    app.state.store.close()


@pytest.fixture
def write_app(tmp_path, web):
    seeded = web.seed_store(f"sqlite:///{tmp_path / 'tidlig.db'}")
    app = web.make_app(seeded.url)
    yield app, seeded, web
    app.state.store.close()


def fill(template: str, flag_ids: dict[str, int], web) -> str:
    return template.format(
        nord=flag_ids[web.NORD_FIRST], syd=flag_ids[web.SYD_FIRST], queued=flag_ids[web.NORD_QUEUED],
        language="en", path="index.html", username="mette", nord_person=web.NORD_FIRST,
    )


def test_every_route_is_in_the_matrix(read_app):
    app, _, _, _ = read_app
    declared = {(method, route.path) for route in _api_routes(app.routes) for method in route.methods}
    templates = {("GET", path.replace("{nord}", "{flag_id}").replace("{syd}", "{flag_id}").replace("{queued}", "{flag_id}").replace("{path}", "{path:path}")) for path in READS}
    templates |= {("POST", path.replace("{nord}", "{flag_id}").replace("{syd}", "{flag_id}").replace("{queued}", "{flag_id}")) for path in WRITES}
    templates |= PUBLIC_FORMS
    assert declared - templates == set(), "a route is missing from the route × role matrix: add what each role may do"
    assert templates - declared == set(), "the matrix names a route the app no longer has"


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("template", list(READS))
def test_read_access(read_app, template, role):
    app, seeded, clients, web = read_app
    expected = READS[template][role]
    response = clients[role].get(fill(template, seeded.flag_ids, web))
    if expected == OK:
        assert response.status_code == 200, response.text[:300]
    elif expected == DENIED:
        assert response.status_code == 403
        # A refusal shows no one's data.
        assert not any(person in response.text for person in (web.NORD_FIRST, web.NORD_QUEUED, web.SYD_FIRST))
    elif expected == LOGIN:
        assert response.status_code == 303 and response.headers["location"].startswith("/login?next=")
    elif expected == MISSING:
        assert response.status_code == 404
    else:
        assert response.status_code == 303


def test_a_refused_read_of_a_flag_is_not_logged_as_a_view(read_app):
    app, seeded, clients, web = read_app
    before = _count(app, audit_events)
    assert clients["other_team"].get(f"/flags/{seeded.flag_ids[web.NORD_FIRST]}").status_code == 403
    assert clients["auditor"].get(f"/flags/{seeded.flag_ids[web.NORD_FIRST]}").status_code == 403
    assert _count(app, audit_events) == before


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("template", list(WRITES))
def test_write_access(write_app, template, role):
    app, seeded, web = write_app
    expected = WRITES[template][role]
    client = web.logged_in(app, ACCOUNT[role]) if role != "anonymous" else web.client_for(app)
    token = web.token_of(client) if role != "anonymous" else "no-session"
    form = {key: fill(value, seeded.flag_ids, web) for key, value in _form_for(template).items()}
    form["csrf_token"] = token
    state_before = _state(app)
    response = client.post(fill(template, seeded.flag_ids, web), data=form)
    if expected == OK:
        assert response.status_code in (200, 303), response.text[:500]
        if template != "/logout" and template != "/access":
            assert _state(app) != state_before, "an allowed change changed nothing"
    else:
        assert response.status_code == (303 if expected == LOGIN else 403)
        if expected == LOGIN:
            assert response.headers["location"].startswith("/login")
        assert _state(app) == state_before, "a refused request changed something"


def _api_routes(routes) -> list[APIRoute]:
    # FastAPI keeps included routers as they are (no prefixes are used here); walk into them.
    found = []
    for route in routes:
        if isinstance(route, APIRoute):
            found.append(route)
        elif hasattr(route, "original_router"):
            found.extend(_api_routes(route.original_router.routes))
    return found


def _form_for(template: str) -> dict[str, str]:
    for key, form in FORMS.items():
        if key in template if not key.startswith("/") else key == template:
            return form
    return {}


def _state(app) -> tuple:
    """Everything a write could change, apart from the audit log that logins and reads append to."""
    engine = app.state.store.engine
    with engine.connect() as conn:
        return (
            conn.execute(sa.select(sa.func.count()).select_from(decisions)).scalar_one(),
            conn.execute(sa.select(sa.func.count()).select_from(notes)).scalar_one(),
            tuple(conn.execute(sa.select(teams.c.id, teams.c.weekly_capacity).order_by(teams.c.id)).all()),
            tuple(conn.execute(sa.select(users.c.username, users.c.active).order_by(users.c.username)).all()),
            conn.execute(
                sa.select(sa.func.count()).select_from(audit_events).where(audit_events.c.kind == "citizen.access_exported")
            ).scalar_one(),
        )


def _count(app, table) -> int:
    with app.state.store.engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()

