"""The kinds of event the audit log records, one frozen dataclass per kind."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from datetime import date, datetime
from enum import Enum
from typing import Any, ClassVar

from audit.cpr import looks_like_cpr, redact_cpr


def jsonable(value: Any) -> Any:
    """The value as plain JSON types: dates as ISO strings, numpy scalars as Python numbers."""
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Enum):
        return jsonable(value.value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return jsonable(dataclasses.asdict(value))
    if isinstance(value, dict):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(item) for item in value]
    if isinstance(value, (set, frozenset)):
        return sorted(jsonable(item) for item in value)
    if isinstance(value, (str, bool, int)) or value is None:
        return value
    if isinstance(value, float):
        # JSON has no NaN or infinity; an undefined metric is recorded as null.
        return value if math.isfinite(value) else None
    if hasattr(value, "item"):  # numpy and polars scalars
        return jsonable(value.item())
    raise TypeError(f"cannot record a {type(value).__name__} in JSON; convert it to str, int or float")


def _redacted(value: Any) -> Any:
    if isinstance(value, str):
        return redact_cpr(value)
    if isinstance(value, dict):
        return {redact_cpr(key): _redacted(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_redacted(item) for item in value]
    return value


@dataclass(frozen=True)
class Event:
    """Base of all audit events: a kind and a JSON-able payload."""

    kind: ClassVar[str]

    def __post_init__(self) -> None:
        person = getattr(self, "person", None)
        if isinstance(person, str) and looks_like_cpr(person):
            raise ValueError(f"{type(self).__name__}.person looks like a CPR number; pass the pseudonym")

    def payload(self) -> dict[str, Any]:
        """The event's fields as a JSON-able dict (without the kind); CPR numbers blanked out of every text.

        Not only the fields people type: a search filter, an error copied from an exception or a
        reference may hold one, and the log cannot be edited afterwards.
        """
        fields = {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}
        return _redacted(jsonable(fields))


@dataclass(frozen=True)
class RunStarted(Event):
    kind: ClassVar[str] = "run.started"
    run_id: str
    as_of: date
    flow: str


@dataclass(frozen=True)
class RunFinished(Event):
    kind: ClassVar[str] = "run.finished"
    run_id: str
    as_of: date
    status: str
    counts: dict[str, Any]


@dataclass(frozen=True)
class RunFailed(Event):
    kind: ClassVar[str] = "run.failed"
    run_id: str
    as_of: date
    stage: str
    error: str


@dataclass(frozen=True)
class SourceValidated(Event):
    kind: ClassVar[str] = "source.validated"
    run_id: str
    source: str
    rows_in: int
    rows_valid: int
    rows_quarantined: int
    rows_trimmed: int = 0  # rows with a value delivered with spaces around it, trimmed and then checked


@dataclass(frozen=True)
class DeliveryAccepted(Event):
    """An operator let a run use an extract that failed its completeness or freshness checks."""

    kind: ClassVar[str] = "delivery.accepted"
    free_text: ClassVar[tuple[str, ...]] = ("reason",)
    run_id: str
    as_of: date
    source: str
    file: str
    problems: list[str]  # each failed check and what it found: counts and dates, never a row
    by: str
    reason: str


@dataclass(frozen=True)
class ModelRegistered(Event):
    kind: ClassVar[str] = "model.registered"
    name: str
    version: str
    metrics: dict[str, Any]


@dataclass(frozen=True)
class ModelPromoted(Event):
    kind: ClassVar[str] = "model.promoted"
    name: str
    version: str
    alias: str
    by: str
    reason: str


@dataclass(frozen=True)
class FlagCreated(Event):
    kind: ClassVar[str] = "flag.created"
    flag_id: int
    as_of: date
    person: str
    team: str
    rule_ids: list[str]
    score: int | None


@dataclass(frozen=True)
class FlagViewed(Event):
    kind: ClassVar[str] = "flag.viewed"
    flag_id: int
    person: str
    purpose: str


@dataclass(frozen=True)
class FlagDecided(Event):
    kind: ClassVar[str] = "flag.decided"
    flag_id: int
    person: str
    decision: str
    reason: str | None
    defer_until: date | None


@dataclass(frozen=True)
class FlagListViewed(Event):
    kind: ClassVar[str] = "flag.list_viewed"
    team: str
    flag_ids: list[int]
    persons: list[str]  # pseudonyms shown, so a citizen's access request finds list views too

    def __post_init__(self) -> None:
        if any(looks_like_cpr(person) for person in self.persons):
            raise ValueError("FlagListViewed.persons holds a CPR number; pass the pseudonyms")


@dataclass(frozen=True)
class NoteAdded(Event):
    kind: ClassVar[str] = "flag.note_added"
    flag_id: int
    person: str
    note_id: int  # the note's text stays in the store; the log proves it existed and when


@dataclass(frozen=True)
class LoginSucceeded(Event):
    kind: ClassVar[str] = "login.succeeded"
    username: str
    method: str  # "password" now; "oidc" once the municipality's single sign-on is connected


@dataclass(frozen=True)
class LoginFailed(Event):
    kind: ClassVar[str] = "login.failed"
    # The typed username only when it names an account: a mistyped password in the username
    # field must not end up in a log that cannot be edited.
    username: str | None
    reason: str  # "wrong_password", "unknown_user", "locked", "throttled"


@dataclass(frozen=True)
class AuditLogViewed(Event):
    kind: ClassVar[str] = "audit.viewed"
    filters: dict[str, Any]


@dataclass(frozen=True)
class AuditLogVerified(Event):
    kind: ClassVar[str] = "audit.verified"
    ok: bool
    checked: int
    first_broken_seq: int | None


@dataclass(frozen=True)
class AccessRequestExported(Event):
    kind: ClassVar[str] = "citizen.access_exported"
    person: str
    format: str  # "html" or "json"
    reference: str  # the request's journal number, so the export can be matched to the letter


@dataclass(frozen=True)
class CapacityChanged(Event):
    kind: ClassVar[str] = "team.capacity_changed"
    team: str
    old_capacity: int
    new_capacity: int


@dataclass(frozen=True)
class CapacityCut(Event):
    """Where a team's weekly capacity cut the night's ranking; who fell below it is kept in the store."""

    kind: ClassVar[str] = "team.capacity_cut"
    run_id: str
    as_of: date
    team: str
    capacity: int
    shown: int
    legal_duty: int
    below: int
    cutoff_score: int | None


@dataclass(frozen=True)
class UserCreated(Event):
    kind: ClassVar[str] = "user.created"
    username: str
    role: str
    team: str | None


@dataclass(frozen=True)
class UserStatusChanged(Event):
    kind: ClassVar[str] = "user.status_changed"
    username: str
    active: bool


@dataclass(frozen=True)
class RulesChanged(Event):
    """A rules version met for the first time, or published by a named person."""

    kind: ClassVar[str] = "rules.changed"
    version: str
    previous_version: str | None
    files: list[dict[str, str]]  # name, declared version, owning office and SHA-256 of each rule file
    published_by: str | None  # who published it (`tidlig rules publish --by`); None when a run met it first
    run_id: str | None  # the run that met it first, when it was not published before


@dataclass(frozen=True)
class CandidateRejected(Event):
    """A person looked at a retrained candidate and chose not to promote it."""

    kind: ClassVar[str] = "model.candidate_rejected"
    name: str
    version: str
    by: str
    reason: str


@dataclass(frozen=True)
class ModelPromotionRefused(Event):
    """A promotion the fairness gate refused, and who asked for it."""

    kind: ClassVar[str] = "model.promotion_refused"
    name: str
    version: str
    alias: str
    by: str
    reason: str
    gate_failures: list[str]


@dataclass(frozen=True)
class FairnessGateOverridden(Event):
    """A person promoted a model despite its fairness findings; written with the promotion itself."""

    kind: ClassVar[str] = "model.gate_overridden"
    name: str
    version: str
    by: str
    reason: str
    gate_failures: list[str]


@dataclass(frozen=True)
class RetentionApplied(Event):
    """Rows past a source's retention were deleted; counts only, never what the rows held."""

    kind: ClassVar[str] = "retention.applied"
    source: str
    cutoff: date  # rows with an event date before it, and quarantine entries of runs before it, were deleted
    rows_deleted: int  # extract rows (files or tables)
    quarantine_rows_deleted: int  # quarantine entries in the casework store


@dataclass(frozen=True)
class StoredResultsDeleted(Event):
    """Prefect's stored task and flow results from before the cutoff were deleted; a count, never their contents."""

    kind: ClassVar[str] = "retention.results_deleted"
    cutoff: date
    files_deleted: int


EVENT_TYPES: dict[str, type[Event]] = {
    cls.kind: cls
    for cls in (
        RunStarted,
        RunFinished,
        RunFailed,
        SourceValidated,
        DeliveryAccepted,
        ModelRegistered,
        ModelPromoted,
        FlagCreated,
        FlagViewed,
        FlagDecided,
        FlagListViewed,
        NoteAdded,
        LoginSucceeded,
        LoginFailed,
        AuditLogViewed,
        AuditLogVerified,
        AccessRequestExported,
        CapacityChanged,
        CapacityCut,
        UserCreated,
        UserStatusChanged,
        RulesChanged,
        ModelPromotionRefused,
        CandidateRejected,
        FairnessGateOverridden,
        RetentionApplied,
        StoredResultsDeleted,
    )
}
