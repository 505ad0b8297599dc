"""The team's flag list, a flag's detail (why, from what), the decision and notes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response

from audit.events import FlagListViewed
from audit.log import append
from casework.accounts import AccountError
from casework.decisions import DECISIONS, REASON_CODES, DecisionConflict, DecisionRefused, split_reason
from casework.store import FLAG_STATUSES, LOCAL_ZONE, Flag, Store
from web import i18n, queries
from web.auth import Forbidden, Viewer, accounts, require, require_form
from web.templating import render

TEAM_ROLES = ("caseworker", "teamlead")
TARGETS = ("child", "adult", "family")
# Logged with every view of a flag: caseworkers open a flag to assess it.
REVIEW_PURPOSE = "vurdering af markering"
MAX_SIGNALS = 5

router = APIRouter()


def store(request: Request) -> Store:
    """The casework store of the running app."""
    return request.app.state.store


@router.get("/flags")
def flag_list(
    request: Request,
    viewer: Viewer = Depends(require(*TEAM_ROLES)),
    status: str = "open",
    target: str = "",
    priority: str = "",
    as_of: str = "",
    queue: str = "",
    page: int = 1,
) -> Response:
    """The viewer's team's flags in priority order; the persons shown are logged as viewed."""
    team = accounts(request).get_team(viewer.user.team)
    statuses = [s for s in FLAG_STATUSES if s != "suppressed" or viewer.role == "teamlead"]
    filters = dict(
        status=status if status in statuses else None,
        target=target if target in TARGETS else None,
        priority=int(priority) if priority in ("1", "2", "3") else None,
        as_of=_date_or_none(as_of),
        include_queued=viewer.role == "teamlead" and queue == "1",
    )
    today = datetime.now(LOCAL_ZONE).date()
    listing = queries.worklist(store(request).engine, team.id, page=page, today=today, **filters)
    if listing.rows:
        with store(request).engine.begin() as conn:
            persons = list(dict.fromkeys(member for row in listing.rows for member in row.members))
            event = FlagListViewed(team.id, [row.id for row in listing.rows], persons)
            append(conn, event, actor=viewer.username)
    return render(
        request,
        "flags.html",
        team=team,
        listing=listing,
        run_dates=queries.run_dates(store(request).engine),
        statuses=statuses,
        targets=TARGETS,
        chosen=dict(status=status if status in statuses else "", target=target, priority=priority, as_of=as_of, queue=queue == "1"),
        query_without_page=_query_without_page(request),
        today=today,
    )


@router.get("/flags/{flag_id}")
def flag_detail(flag_id: int, request: Request, viewer: Viewer = Depends(require(*TEAM_ROLES)), saved: str = "") -> Response:
    """Everything about one flag: rules with values, score and model, signals, sources, decisions, notes."""
    flag = _viewable_flag(request, viewer, flag_id)
    return _detail_page(request, flag, message={"decision": "decision.saved", "note": "notes.saved"}.get(saved))


@router.post("/flags/{flag_id}/decision")
async def decide(flag_id: int, request: Request, viewer: Viewer = Depends(require_form(*TEAM_ROLES))) -> Response:
    """Record the caseworker's decision: accept (a contact is opened), dismiss with a reason, or defer."""
    _check_scope(request, viewer, flag_id)
    form = await request.form()
    decision = str(form.get("decision", ""))
    # The form posts every field; a code only counts for a dismissal and a date only for a deferral.
    try:
        store(request).decide(
            flag_id,
            decision,
            reason=str(form.get("reason_text", "")),
            reason_code=str(form.get("reason_code", "")) if decision == "dismiss" else None,
            defer_until=_date_or_none(str(form.get("defer_until", ""))) if decision == "defer" else None,
            by=viewer.username,
            version=_int_or_none(str(form.get("version", ""))),
        )
    except DecisionRefused as refused:
        flag = store(request).get_flag(flag_id, viewer=viewer.username, purpose=REVIEW_PURPOSE)
        errors = {problem.field: problem.key for problem in reversed(refused.problems)}  # a field's first problem shows
        return _detail_page(request, flag, errors=errors, form=dict(form), status_code=422)
    except DecisionConflict as conflict:
        # The page comes back with the decision made meanwhile and the flag's new version in the form.
        flag = store(request).get_flag(flag_id, viewer=viewer.username, purpose=REVIEW_PURPOSE)
        return _detail_page(request, flag, conflict=_conflict_text(request, conflict), form=dict(form), status_code=409)
    return RedirectResponse(f"/flags/{flag_id}?saved=decision", status_code=303)


def _conflict_text(request: Request, conflict: DecisionConflict) -> str:
    language, found = i18n.language_of(request), conflict.conflict
    if found.by is None:
        return i18n.text("decision.changed", language)
    return i18n.text(
        "decision.conflict",
        language,
        who=_display_names(request).get(found.by, found.by),
        at=i18n.format_datetime(found.at, language),
        decision=i18n.text(f"status.{DECISIONS[found.decision]}", language),
    )


@router.post("/flags/{flag_id}/notes")
async def add_note(flag_id: int, request: Request, viewer: Viewer = Depends(require_form(*TEAM_ROLES))) -> Response:
    """Add a note to a flag; the audit log records that it was written, by whom and when."""
    scope = _check_scope(request, viewer, flag_id)
    form = await request.form()
    try:
        accounts(request).add_note(flag_id, scope.person, str(form.get("note", "")), by=viewer.username)
    except AccountError as exc:
        flag = store(request).get_flag(flag_id, viewer=viewer.username, purpose=REVIEW_PURPOSE)
        return _detail_page(request, flag, errors={"note": str(exc)}, form=dict(form), status_code=422)
    return RedirectResponse(f"/flags/{flag_id}?saved=note#notes", status_code=303)


def _viewable_flag(request: Request, viewer: Viewer, flag_id: int) -> Flag:
    _check_scope(request, viewer, flag_id)
    return store(request).get_flag(flag_id, viewer=viewer.username, purpose=REVIEW_PURPOSE)


def _check_scope(request: Request, viewer: Viewer, flag_id: int) -> queries.FlagScope:
    # Checked before the flag is read through the store, whose read logs a view.
    scope = queries.flag_scope(store(request).engine, flag_id)
    if scope is None:
        raise LookupError(f"no flag {flag_id}")
    if scope.team != viewer.user.team:
        raise Forbidden("not_in_team")
    if scope.queued and viewer.role != "teamlead":
        raise Forbidden("queued_for_lead")
    return scope


def _detail_page(
    request: Request,
    flag: Flag,
    *,
    message: str | None = None,
    errors: dict[str, str] | None = None,
    form: dict[str, Any] | None = None,
    conflict: str | None = None,
    status_code: int = 200,
) -> Response:
    language = i18n.language_of(request)
    today = datetime.now(LOCAL_ZONE).date()
    return render(
        request,
        "flag.html",
        status_code=status_code,
        flag=flag,
        team=accounts(request).get_team(flag.team),
        signals=signals(flag, language),
        members=members(flag, language),
        sources=sources_behind(flag),
        evidence_of=lambda person, names: evidence_of(flag, person, names),
        today=today,
        notes=accounts(request).list_notes([flag.id]),
        names=_display_names(request),
        reason_codes=REASON_CODES,
        message=message,
        conflict=conflict,
        errors=errors or {},
        form=form or {},
        tomorrow=(today + timedelta(days=1)).isoformat(),
        split_reason=split_reason,
    )


@dataclass(frozen=True)
class Signal:
    """One signal behind a flag, in plain words."""

    feature: str
    text: str
    person: str | None = None  # the family member it is about, when not the flag's person


@dataclass(frozen=True)
class Member:
    """A person a flag is about, with their own score and what it means in words."""

    person: str
    target: str | None
    age_years: int | None  # context for the caseworker, never a signal
    score: int | None
    risk: str | None  # "omkring 6 ud af 100 børn med denne score ..." from the model's calibration


def members(flag: Flag, language: str) -> list[Member]:
    """Everyone the flag is about, each with their own score (a family flag's score is its highest member's)."""
    from models.explain import risk_in_words

    stored = getattr(flag, "member_scores", ()) or ()
    return [
        Member(m["person"], m.get("target"), m.get("age_years"), m.get("score"),
               risk_in_words(m.get("level_risk"), language) if m.get("score") is not None else None)
        for m in stored
    ]


@dataclass(frozen=True)
class SourceUse:
    """A register a flag's signals were computed from, and the period looked at."""

    name: str
    title_da: str
    title_en: str
    sector: str
    owner: str
    legal_basis: str
    start: date | None  # None: all history known on the run date
    end: date
    features: tuple[str, ...]


def signals(flag: Flag, language: str) -> list[Signal]:
    """The top signals in plain words: the model's explanation when the flag carries one, else the rules' values."""
    carried = getattr(flag, "signals", None)
    if carried:
        key = "text_en" if language == "en" else "text_da"
        return [Signal(s.get("feature", ""), s.get(key) or s.get("text_da", ""), s.get("person")) for s in carried[:MAX_SIGNALS]]
    from features.texts import say
    from models.explain import CONTEXT
    from rules.texts import format_column

    found: list[Signal] = []
    seen: set[str] = set()
    catalogue = _catalogue()
    for reason in sorted(flag.reasons, key=lambda r: r.priority):
        for feature, value in reason.values.items():
            # An unknown or zero value is no signal; the rule's text already says it was absent.
            if feature in seen or value in (None, 0, 0.0) or feature == "score" or feature in CONTEXT:
                continue
            seen.add(feature)
            declared = catalogue.get(feature)
            text = None
            if declared is not None and isinstance(value, int | float):
                text = say(declared.texts, value, language, parents_counted=declared.over == "parents_with_any")
            if text:
                text = text[0].upper() + text[1:]
            else:
                text = f"{i18n.pick(i18n.FEATURE_LABELS.get(feature), language, feature)}: {format_column(feature, value, language)}"
            found.append(Signal(feature, text))
    if flag.score is not None:
        found.append(Signal("score", i18n.pick(i18n.FEATURE_LABELS["score"], language) + f": {flag.score}"))
    return found[:MAX_SIGNALS]


def evidence_of(flag: Flag, person: str | None, features: Any) -> list[dict]:
    """The flag's stored source rows about a person (the flag's own when None) for the named features."""
    person, wanted = person or flag.person, set(features)
    return [row for row in flag.evidence if row["person"] == person and row["feature"] in wanted]


def sources_behind(flag: Flag) -> list[SourceUse]:
    """The registers behind the features in the flag's reasons, each with the window looked at."""
    catalogue, registry = _catalogue(), i18n.registry()
    windows: dict[str, list[Any]] = {}
    for reason in flag.reasons:
        for name in reason.values:
            feature = catalogue.get(name)
            if feature is None:
                continue
            window = windows.setdefault(feature.source, [0, []])
            window[0] = None if feature.window_days is None or window[0] is None else max(window[0], feature.window_days)
            if name not in window[1]:
                window[1].append(name)
    uses = []
    for source_name, (days, features) in windows.items():
        source = registry.get(source_name)
        uses.append(
            SourceUse(
                source_name,
                source.title_in("da") if source else source_name,
                source.title_in("en") if source else source_name,
                source.sector if source else "",
                source.owner if source else "",
                source.legal_basis if source else "",
                None if days is None else flag.as_of - timedelta(days=days),
                flag.as_of,
                tuple(features),
            )
        )
    return uses


def warm_up() -> None:
    """Read the feature catalogue and source registry now, so no caseworker's first page waits for it."""
    _catalogue()
    i18n.registry()


@lru_cache(maxsize=1)
def _catalogue() -> dict[str, Any]:
    from features.catalogue import CATALOGUE

    return {feature.name: feature for feature in CATALOGUE}


def _display_names(request: Request) -> dict[str, str]:
    return {user.username: user.display_name for user in accounts(request).list_users()}


def _date_or_none(text: str) -> date | None:
    try:
        return date.fromisoformat(text) if text else None
    except ValueError:
        return None


def _int_or_none(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None


def _query_without_page(request: Request) -> str:
    from urllib.parse import urlencode

    return urlencode([(key, value) for key, value in request.query_params.multi_items() if key != "page"])
