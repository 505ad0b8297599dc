"""Audit events: kinds, JSON payloads, and no CPR numbers."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import numpy as np
import pytest

from audit.cpr import looks_like_cpr
from audit.events import (
    EVENT_TYPES,
    AuditLogViewed,
    FlagCreated,
    FlagDecided,
    FlagViewed,
    ModelRegistered,
    RunFailed,
    jsonable,
)


def test_every_event_class_is_registered_under_a_distinct_dotted_kind():
    import audit.events as module

    defined = {cls for cls in vars(module).values() if isinstance(cls, type) and issubclass(cls, module.Event) and cls is not module.Event}
    assert set(EVENT_TYPES.values()) == defined
    assert all("." in kind and cls.kind == kind for kind, cls in EVENT_TYPES.items())


def test_payload_is_plain_json():
    event = FlagDecided(7, "P00042", "defer", "venter på skoleudtalelse", date(2026, 12, 1))

    assert event.payload() == {
        "flag_id": 7,
        "person": "P00042",
        "decision": "defer",
        "reason": "venter på skoleudtalelse",
        "defer_until": "2026-12-01",
    }


def test_numpy_metrics_and_undefined_values_become_json():
    event = ModelRegistered("risk", "3", {"auc": np.float64(0.81), "n": np.int64(1200), "precision@k": float("nan")})

    assert event.payload()["metrics"] == {"auc": 0.81, "n": 1200, "precision@k": None}
    assert isinstance(event.payload()["metrics"]["n"], int)


def test_unknown_types_are_refused_with_a_hint():
    with pytest.raises(TypeError, match="convert it"):
        jsonable({"amount": Decimal("1.5")})


def test_a_cpr_number_as_person_is_refused():
    with pytest.raises(ValueError, match="pseudonym"):
        FlagViewed(1, "0101901234", "review")
    with pytest.raises(ValueError, match="pseudonym"):
        FlagCreated(1, date(2026, 1, 1), "010190-1234", "familie-nord", ["r1"], 12)


def test_cpr_numbers_are_blanked_out_of_free_text():
    event = RunFailed("run-1", date(2026, 1, 1), "validate", "bad key 311299-4321 in row 7")

    assert event.payload()["error"] == "bad key [CPR fjernet] in row 7"


def test_cpr_numbers_are_blanked_out_of_every_text_an_event_holds():
    """Also search filters and texts nested in dicts: what was typed must not reach a log that cannot be edited."""
    event = AuditLogViewed({"person": "040313 1001", "actor": "040313\u20131001"})

    assert event.payload() == {"filters": {"person": "[CPR fjernet]", "actor": "[CPR fjernet]"}}


@pytest.mark.parametrize(
    ("text", "expected"),
    [("0101901234", True), ("010190-1234", True), ("P00042", False), ("3201901234", False), ("20260101123456", False),
     ("row 7: 010190-1234.", True), ("3850e9a1501901234f", False), ("a0101901234", False)],
)
def test_cpr_shape(text, expected):
    assert looks_like_cpr(text) is expected
