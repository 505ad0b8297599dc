"""The store keeps suppressed flags with their reasons, and hands routing the recent decisions per person."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from casework.store import Store
from routing.flags import FlagDraft, Reason, Suppression
from routing.suppression import HISTORY_SCHEMA

AS_OF = date(2026, 11, 1)


@pytest.fixture
def store(database_url):
    store = Store.from_url(database_url)
    store.create_schema()
    store.start_run("run-1", AS_OF, "nightly")
    yield store
    store.close()


def reason(person=None):
    return Reason("child-high-score", "Høj risikoscore", "High risk score", "Score 19", "Score 19", 3, {"score": 19}, person)


def draft(person, *, suppressed_by=(), reasons=None, priority=3):
    return FlagDraft(
        as_of=AS_OF, person=person, target="child", team="familie-nord", priority=priority,
        rank=0 if suppressed_by else 1, queued=False, score=19, probability=0.2, model_version="m/1",
        rules_version="r#1", reasons=reasons or (reason(),), suppressed_by=suppressed_by,
    )


def test_a_suppressed_flag_is_stored_with_its_status_and_reasons(store):
    why = Suppression("suppress-deceased", "Død", "Deceased", "Død ifølge CPR", "Deceased according to the CPR register", {"deceased": True})
    store.save_flags("run-1", [draft("P1", suppressed_by=(why,)), draft("P2")])
    flags = {f.person: f for f in store.list_flags()}
    assert (flags["P1"].status, flags["P1"].suppressed_by) == ("suppressed", (why,))
    assert (flags["P2"].status, flags["P2"].suppressed_by) == ("open", ())
    assert [f.person for f in store.list_flags(status="suppressed")] == ["P1"]


def test_decision_history_has_one_row_per_person_the_flag_was_about(store):
    family = (reason("K1"), reason("M1"))
    [single, fam] = store.save_flags("run-1", [draft("P1", priority=2), draft("K1", reasons=family)])
    store.decide(single, "dismiss", reason="Kendt af skolen", by="Mette")
    store.decide(fam, "defer", reason="Venter på udtalelse", by="Mette", defer_until=date.today() + timedelta(days=10))
    history = store.decision_history(date.today())
    assert history.schema == HISTORY_SCHEMA
    rows = {(r["person"], r["decision"], r["priority"]) for r in history.iter_rows(named=True)}
    assert rows == {("P1", "dismiss", 2), ("K1", "defer", 3), ("M1", "defer", 3)}
    assert store.decision_history(date.today() - timedelta(days=400)).is_empty()
