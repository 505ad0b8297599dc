"""The kinds of event the audit log records, one frozen dataclass per kind."""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from datetime import date, datetime
from enum import Enum
from typing import Any, ClassVar

# DDMMYY-SSSS with or without the dash; bounded by non-digits so longer numbers don't match.
CPR_PATTERN = re.compile(r"(?<!\d)(?:0[1-9]|[12]\d|3[01])(?:0[1-9]|1[0-2])\d{2}-?\d{4}(?!\d)")


def looks_like_cpr(text: str) -> bool:
    """True when the text holds something shaped like a Danish CPR number."""
    return bool(CPR_PATTERN.search(text))


def redact_cpr(text: str) -> str:
    """The text with every CPR-shaped number replaced by a marker."""
    return CPR_PATTERN.sub("[CPR fjernet]", text)


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


@dataclass(frozen=True)
class Event:
    """Base of all audit events: a kind and a JSON-able payload."""

    kind: ClassVar[str]
    # Fields typed by people or copied from exceptions: CPR-shaped numbers are blanked out of them.
    free_text: ClassVar[tuple[str, ...]] = ()

    def __post_init__(self) -> None:
        person = getattr(self, "person", None)
        if isinstance(person, str) and looks_like_cpr(person):
            raise ValueError(f"{type(self).__name__}.person looks like a CPR number; pass the pseudonym")

    def payload(self) -> dict[str, Any]:
        """The event's fields as a JSON-able dict (without the kind)."""
        fields = {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}
        for name in self.free_text:
            if isinstance(fields[name], str):
                fields[name] = redact_cpr(fields[name])
        return jsonable(fields)


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
    free_text: ClassVar[tuple[str, ...]] = ("error",)
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


@dataclass(frozen=True)
class ModelRegistered(Event):
    kind: ClassVar[str] = "model.registered"
    name: str
    version: str
    metrics: dict[str, Any]


@dataclass(frozen=True)
class ModelPromoted(Event):
    kind: ClassVar[str] = "model.promoted"
    free_text: ClassVar[tuple[str, ...]] = ("reason",)
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
    free_text: ClassVar[tuple[str, ...]] = ("purpose",)
    flag_id: int
    person: str
    purpose: str


@dataclass(frozen=True)
class FlagDecided(Event):
    kind: ClassVar[str] = "flag.decided"
    free_text: ClassVar[tuple[str, ...]] = ("reason",)
    flag_id: int
    person: str
    decision: str
    reason: str | None
    defer_until: date | None


EVENT_TYPES: dict[str, type[Event]] = {
    cls.kind: cls
    for cls in (
        RunStarted,
        RunFinished,
        RunFailed,
        SourceValidated,
        ModelRegistered,
        ModelPromoted,
        FlagCreated,
        FlagViewed,
        FlagDecided,
    )
}
