"""The store keeps suppressed flags with their reasons, and hands routing the recent decisions per person."""

from __future__ import annotations

from datetime import date, timedelta

import polars as pl
import pytest

from casework.store import Store
from routing.flags import FlagDraft, Reason, Suppression
from routing.suppression import HISTORY_SCHEMA

AS_OF = date(2026, 11, 1)
SUPPRESSED = Suppression("suppress-deceased", "Død", "Deceased", "Død ifølge CPR", "Deceased according to the CPR register", {"deceased": True})


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
    assert [f.person for f in store.list_flags()] == ["P2", "P1"], "what suppression held back comes after the list"


def test_decision_history_has_one_row_per_person_the_flag_was_about(store):
    family = (reason("K1"), reason("M1"))
    [single, fam] = store.save_flags("run-1", [draft("P1", priority=2), draft("K1", reasons=family)])
    store.decide(single, "dismiss", reason="Kendt af skolen", reason_code="known_case", by="Mette")
    store.decide(fam, "defer", reason="Venter på udtalelse", by="Mette", defer_until=date.today() + timedelta(days=10))
    history = store.decision_history(date.today())
    assert history.schema == HISTORY_SCHEMA
    rows = {(r["person"], r["decision"], r["priority"]) for r in history.iter_rows(named=True)}
    assert rows == {("P1", "dismiss", 2), ("K1", "defer", 3), ("M1", "defer", 3)}
    assert store.decision_history(date.today() - timedelta(days=400)).is_empty()


def test_decision_history_names_flags_still_open_for_every_member_but_not_decided_suppressed_or_tonights(store):
    family_rule = Reason("family-several-children-notified", "x", "x", "x", "x", 2, {"children": 2}, None, ("K1", "K2", "M1"))
    [open_family, decided, _] = store.save_flags(
        "run-1", [draft("K1", reasons=(family_rule,), priority=2), draft("P1"), draft("P2", suppressed_by=(SUPPRESSED,))]
    )
    store.decide(decided, "accept", reason=None, by="Mette")
    history = store.decision_history(AS_OF + timedelta(days=1))
    still_open = history.filter(pl.col("decision").is_null())
    assert sorted(still_open.select("person", "flag_id", "flag_as_of", "priority").rows()) == [
        ("K1", open_family, AS_OF, 2), ("K2", open_family, AS_OF, 2), ("M1", open_family, AS_OF, 2),
    ]
    decisions = store.decision_history(date.today()).filter(pl.col("decision").is_not_null())
    assert decisions.select("person", "decision", "flag_id").rows() == [("P1", "accept", decided)]
    # A rerun of the flags' own night sees no earlier open flag.
    assert store.decision_history(AS_OF).filter(pl.col("decision").is_null()).is_empty()
