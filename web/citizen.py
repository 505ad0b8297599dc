"""The citizen's right of access (GDPR art. 15): everything Tidlig holds on one person, as JSON or print.

The request is made by staff handling the citizen's letter (the auditor role, which includes the
data-protection officer). A CPR number typed in is turned into the pseudonym at once and is
neither stored, logged, nor shown.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from audit.cpr import canonical_cpr
from audit.events import AccessRequestExported, jsonable
from audit.log import append
from casework.store import DECISIONS, Store
from web import queries
from web.i18n import register_title
from web.auth import Viewer, accounts, require, require_form
from web.flags import REVIEW_PURPOSE, sources_behind, split_reason
from web.templating import render

router = APIRouter()
AUDITOR = "auditor"
PSEUDONYM = re.compile(r"^[0-9a-f]{16}$")


@router.get("/access")
def access_form(request: Request, viewer: Viewer = Depends(require(AUDITOR))) -> Response:
    """The form for a citizen's access request."""
    return render(request, "access_form.html", errors={}, form={})


@router.post("/access")
async def access_export(request: Request, viewer: Viewer = Depends(require_form(AUDITOR))) -> Response:
    """Everything held on one person, why they were flagged and who accessed their data; the export is logged."""
    form = await request.form()
    typed = str(form.get("person", "")).strip()
    reference = str(form.get("reference", "")).strip()[:100]
    output = "json" if form.get("format") == "json" else "html"
    errors: dict[str, str] = {}
    person = pseudonym_of(request, typed, errors)
    if not reference:
        errors["reference"] = "access.need_reference"
    if errors:
        # The CPR number is not sent back into the page.
        return render(request, "access_form.html", status_code=422, errors=errors, form={"reference": reference})
    with request.app.state.store.engine.begin() as conn:
        append(conn, AccessRequestExported(person, output, reference), actor=viewer.username)
    report = access_report(request.app.state.store, request, person)
    made = dict(at=datetime.now(timezone.utc), by=viewer.username, reference=reference)
    if output == "json":
        body = json.dumps(jsonable({"export": made, **report}), ensure_ascii=False, indent=2)
        return Response(
            body, media_type="application/json",
            headers={"Content-Disposition": f'attachment; filename="tidlig-indsigt-{person}.json"'},
        )
    return render(
        request, "access_report.html", report=report, made=made, person=person, reference=reference,
        decided=DECISIONS, review_purpose=REVIEW_PURPOSE,
    )


def access_report(store: Store, request: Request, person: str) -> dict[str, Any]:
    """What Tidlig holds on a person: flags with reasons, scores, decisions and notes; every access; the registers."""
    flag_ids = queries.flags_of(store.engine, person)
    flags = []
    # Read straight from the tables: going through get_flag would log each read as a caseworker's view.
    by_id = {flag.id: flag for flag in _flags_by_ids(store, flag_ids)}
    notes = accounts(request).list_notes(flag_ids)
    team_names = {team.id: team.name for team in accounts(request).list_teams()}
    for flag_id in flag_ids:
        flag = by_id[flag_id]
        flags.append(
            dict(
                id=flag.id,
                as_of=flag.as_of,
                team=flag.team,
                team_name=team_names.get(flag.team, flag.team),
                status=flag.status,
                priority=flag.priority,
                score=flag.score,
                model_version=flag.model_version,
                rules_version=flag.rules_version,
                reasons=[asdict(reason) for reason in flag.reasons],
                sources=[asdict(use) for use in sources_behind(flag)],
                # The register rows behind the reasons and signals: which register, when, known when.
                evidence=[
                    dict(row, title_da=register_title(row["source"], "da"), title_en=register_title(row["source"], "en"))
                    for row in flag.evidence
                ],
                decisions=[
                    dict(decision=d.decision, reason=split_reason(d.reason)[1], reason_code=split_reason(d.reason)[0],
                         by=d.by, at=d.at, defer_until=d.defer_until)
                    for d in flag.decisions
                ],
                notes=[dict(author=n.author, at=n.at, text=n.text) for n in notes if n.flag_id == flag.id],
            )
        )
    names = {user.username: user.display_name for user in accounts(request).list_users()}
    accesses = [
        dict(
            at=entry.at, kind=entry.kind, actor=entry.actor, actor_name=names.get(entry.actor, entry.actor),
            purpose=entry.payload.get("purpose") or "",
            decision=entry.payload.get("decision"),
            flag_id=entry.payload.get("flag_id"), seq=entry.seq,
        )
        for entry in queries.events_about(store.engine, person)
    ]
    return dict(person=person, flags=flags, accesses=accesses, registers=_registers())


def _flags_by_ids(store: Store, flag_ids: list[int]) -> list[Any]:
    import sqlalchemy as sa

    from casework.store import _decisions_by_flag, _flag, decisions, flags

    if not flag_ids:
        return []
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(flags).where(flags.c.id.in_(flag_ids))).all()
        decided = _decisions_by_flag(conn, decisions.c.flag_id.in_(flag_ids))
    return [_flag(row, decided.get(row.id, ())) for row in rows]


def pseudonym_of(request: Request, typed: str, errors: dict[str, str]) -> str:
    """The person's pseudonym from a typed pseudonym or CPR number (any spelling); errors["person"] says why not."""
    lowered = typed.strip().lower()
    if PSEUDONYM.match(lowered):
        return lowered
    if cpr := canonical_cpr(typed):
        key = _pseudonym_key(request)
        if key is None:
            errors["person"] = "access.no_key"
            return ""
        from sources.pseudonym import pseudonym

        # The registers hold CPR numbers with the dash; pseudonyms were made from that spelling.
        return pseudonym(key, cpr)
    errors["person"] = "access.bad_person"
    return ""


def _pseudonym_key(request: Request) -> bytes | None:
    # Never create a key here (load_key would): a new key would silently match nobody.
    if hex_key := os.environ.get("TIDLIG_PSEUDONYM_KEY"):
        try:
            return bytes.fromhex(hex_key)
        except ValueError:
            return None
    home = request.app.state.home
    path = Path(home) / "pseudonym.key" if home else None
    return bytes.fromhex(path.read_text().strip()) if path and path.is_file() else None


def _registers() -> list[dict[str, str]]:
    try:
        from sources.registry import load_registry

        return [
            dict(name=s.name, title_da=s.title_in("da"), title_en=s.title_in("en"), sector=s.sector, owner=s.owner,
                 legal_basis=s.legal_basis)
            for s in load_registry().values()
        ]
    except Exception:  # the export must still be made if the registry file is being edited
        return []
