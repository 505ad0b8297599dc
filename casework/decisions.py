"""What a decision on a flag may be: the choices, the reason codes and the checks, for the web and the CLI alike.

A problem names the field it is about, the text key the web shows in Danish or English, and an
English message for the command line and for errors raised by the store.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from audit.events import looks_like_cpr

DECISIONS = {"accept": "accepted", "dismiss": "dismissed", "defer": "deferred"}
NEEDS_REASON = ("dismiss", "defer")
# Why a flag was dismissed, so auditors and rule owners can count it; stored as "code: explanation".
REASON_CODES = ("known_case", "no_concern", "data_error", "moved", "other")
# Deferral dates are the caseworker's calendar dates, not the server's.
LOCAL_ZONE = ZoneInfo("Europe/Copenhagen")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a decision: the field, the web's text key and a message in English."""

    field: str  # decision, reason_code, reason_text or defer_until
    key: str
    message: str


class DecisionRefused(ValueError):
    """A decision was refused as given; `problems` says what to change, field by field."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(problem.message for problem in problems))
        self.problems = problems


@dataclass(frozen=True)
class Conflict:
    """Who decided the flag since the version a second decision was made on."""

    flag_id: int
    seen_version: int | None
    current_version: int
    decision: str | None
    by: str | None
    at: datetime | None


class DecisionConflict(Exception):
    """The flag changed since the version the decision was made on; nothing was recorded."""

    def __init__(self, conflict: Conflict) -> None:
        self.conflict = conflict
        if conflict.by is None:
            told = f"flag {conflict.flag_id} changed since version {conflict.seen_version} (it is now at version {conflict.current_version})"
        else:
            told = f"flag {conflict.flag_id} was already decided by {conflict.by} at {local_time(conflict.at)} ({conflict.decision})"
        super().__init__(f"{told}; nothing was changed")


def problems(
    decision: str, *, reason_code: str | None, reason: str | None, defer_until: date | None, today: date | None = None,
) -> list[Problem]:
    """Everything wrong with a decision as given; an empty list when it may be recorded."""
    today = today or datetime.now(LOCAL_ZONE).date()
    found: list[Problem] = []
    if decision not in DECISIONS:
        found.append(Problem("decision", "decision.choose", f"unknown decision {decision!r}; use one of: {', '.join(DECISIONS)}"))
    if decision == "dismiss" and reason_code not in REASON_CODES:
        told = "to dismiss a flag, give a reason code" if not reason_code else f"unknown reason code {reason_code!r}"
        found.append(Problem("reason_code", "decision.need_code", f"{told}; use one of: {', '.join(REASON_CODES)}"))
    if decision != "dismiss" and reason_code:
        found.append(Problem("reason_code", "decision.code_only_dismiss", f"a reason code only goes with 'dismiss', not with {decision!r}; leave it out"))
    if decision in NEEDS_REASON and not reason:
        found.append(Problem("reason_text", "decision.need_text", f"to {decision} a flag, give a reason: the next caseworker and the auditors need it"))
    if reason and looks_like_cpr(reason):
        found.append(Problem("reason_text", "decision.no_cpr", "the reason seems to contain a CPR number; describe the person without it"))
    if decision == "defer" and defer_until is None:
        found.append(Problem("defer_until", "decision.need_date", "to defer a flag, give the date to look at it again"))
    elif decision == "defer" and defer_until <= today:
        found.append(Problem("defer_until", "decision.need_date", f"the date to look again, {defer_until}, is not in the future (today is {today}); pick a later date"))
    if decision != "defer" and defer_until is not None:
        found.append(Problem("defer_until", "decision.date_only_defer", f"a date to look again only goes with 'defer', not with {decision!r}; leave it out"))
    return found


def stored_reason(decision: str, reason_code: str | None, reason: str | None) -> str | None:
    """The reason as stored: a dismissal's code leads, so auditors can count reasons; the caseworker's words follow."""
    if decision == "dismiss" and reason_code:
        return f"{reason_code}: {reason}" if reason else reason_code
    return reason


def split_reason(reason: str | None) -> tuple[str | None, str]:
    """A stored reason as (code, text); reasons without a known code have none."""
    if reason:
        code, _, rest = reason.partition(":")
        if code in REASON_CODES:
            return code, rest.strip()
    return None, reason or ""


def local_time(at: datetime | None) -> str:
    """A moment as the caseworker's clock shows it."""
    return "" if at is None else f"{at.astimezone(LOCAL_ZONE):%Y-%m-%d %H:%M %Z}"
