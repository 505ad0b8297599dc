"""Suppression: open case, recent decisions, moved away or deceased; suppressed flags are kept with the reason."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import polars as pl
import pytest

from routing.route import route
from routing.suppression import HISTORY_SCHEMA, latest_decisions, suppress
from routing.table import RoutingError, load_routing_table
from rules.conditions import PERSON_SCHEMA
from rules.engine import evaluate, load_rules
from tidlig.settings import load_config

AS_OF = date(2025, 6, 2)
RULESET = load_rules()
TABLE = load_routing_table()
POLICY = load_config().ranking.policy()


def persons(*rows: dict) -> pl.DataFrame:
    return pl.DataFrame([dict.fromkeys(PERSON_SCHEMA) | row for row in rows], schema=PERSON_SCHEMA)


def child(person: str, **values) -> dict:
    return {"person": person, "target": "child", "age_years": 10, "district": "Nord", **values}


def decided(person: str, decision: str, days_ago: int, priority: int, defer_until: date | None = None) -> dict:
    # Noon in Copenhagen, so the local day is the day meant.
    at = datetime.combine(AS_OF - timedelta(days=days_ago), datetime.min.time(), timezone.utc) + timedelta(hours=10)
    return {"person": person, "decision": decision, "decided_at": at, "priority": priority, "defer_until": defer_until}


def history(*rows: dict) -> pl.DataFrame:
    return pl.DataFrame(list(rows), schema=HISTORY_SCHEMA)


def flags(frame: pl.DataFrame, past: pl.DataFrame | None = None, table=TABLE) -> dict:
    drafts = route(evaluate(RULESET, frame), frame, RULESET, table, as_of=AS_OF, policy=POLICY, history=past).flags
    return {d.person: d for d in drafts}


def suppressed_by(frame: pl.DataFrame, past: pl.DataFrame | None = None) -> dict[str, list[str]]:
    return {p: [s.rule_id for s in f.suppressed_by] for p, f in flags(frame, past).items()}


def test_open_case_in_the_receiving_department_is_kept_with_its_reason_and_off_the_list():
    [flag] = flags(persons(child("c", score=20, case_team="familie-syd"))).values()
    assert flag.suppressed and (flag.team, flag.rank, flag.queued) == ("familie-syd", 0, False)
    assert [r.rule_id for r in flag.reasons] == ["child-high-score"]
    [why] = flag.suppressed_by
    assert why.rule_id == "suppress-open-case"
    assert why.text_da == "Har allerede en åben sag i Familieafdelingen hos teamet familie-syd, som modtager flaget"
    assert why.values == {"case_department": "Familieafdelingen", "department": "Familieafdelingen", "case_team": "familie-syd"}


def test_open_case_in_another_department_does_not_suppress():
    # A child whose case sits in the job centre (as a routing table might allow) but whose flag goes to a family team.
    routed = persons(child("c", case_team="jobcenter")).with_columns(team=pl.lit("familie-nord"), priority=pl.lit(2))
    assert suppress(routed, RULESET, TABLE, history(), AS_OF) == {}


def test_dismissed_within_90_days_is_suppressed_unless_more_severe():
    frame = persons(
        child("same-priority", school_absence_pct_90d=20.0),
        child("too-long-ago", school_absence_pct_90d=20.0),
        child("now-more-severe", school_absence_pct_90d=20.0, parent_substance_treatment_365d=1),
        child("never-decided", school_absence_pct_90d=20.0),
    )
    past = history(
        decided("same-priority", "dismiss", 90, 2),
        decided("too-long-ago", "dismiss", 91, 2),
        decided("now-more-severe", "dismiss", 10, 2),
    )
    assert suppressed_by(frame, past) == {
        "same-priority": ["suppress-recently-dismissed"], "too-long-ago": [],
        "now-more-severe": [], "never-decided": [],
    }
    why = flags(frame, past)["same-priority"].suppressed_by[0]
    assert why.text_da == (
        "Afvist af en sagsbehandler for 90 dage siden ved prioritet 2; intet nyt, mere alvorligt tegn siden (prioritet nu 2)"
    )


def test_the_latest_decision_counts_and_later_ones_are_not_seen_in_a_replay():
    frame = persons(child("dismissed-then-deferred", score=20), child("decided-after-as-of", score=20))
    past = history(
        decided("dismissed-then-deferred", "dismiss", 30, 3),
        decided("dismissed-then-deferred", "defer", 5, 3, defer_until=AS_OF),
        decided("decided-after-as-of", "dismiss", -1, 3),
    )
    # The deferral ran out today, and it replaced the dismissal: the flag is back on the list.
    assert suppressed_by(frame, past) == {"dismissed-then-deferred": [], "decided-after-as-of": []}


def test_deferred_and_accepted_hold_the_flag_back():
    frame = persons(child("deferred", score=20), child("accepted", score=20))
    past = history(
        decided("deferred", "defer", 3, 3, defer_until=AS_OF + timedelta(days=14)),
        decided("accepted", "accept", 40, 3),
    )
    assert suppressed_by(frame, past) == {"deferred": ["suppress-deferred"], "accepted": ["suppress-recently-accepted"]}
    assert flags(frame, past)["deferred"].suppressed_by[0].text_en.startswith("Deferred by a caseworker, who looks at it again in 14 days")


def test_a_decision_late_in_the_evening_counts_on_the_local_day():
    # 22:30 UTC on 1 June is 00:30 on 2 June in Copenhagen: decided today, 0 days ago.
    at = datetime(2025, 6, 1, 22, 30, tzinfo=timezone.utc)
    summary = latest_decisions(history({"person": "p", "decision": "dismiss", "decided_at": at, "priority": 2, "defer_until": None}), AS_OF)
    assert summary.row(0, named=True)["days_since_decision"] == 0


def test_moved_away_or_deceased_suppress_and_unknown_does_not():
    frame = persons(
        child("moved", score=20, moved_away=True),
        child("died", score=20, deceased=True),
        child("here", score=20, moved_away=False, deceased=False),
        child("unknown", score=20),
    )
    assert suppressed_by(frame) == {
        "moved": ["suppress-moved-away"], "died": ["suppress-deceased"], "here": [], "unknown": [],
    }


def test_persons_without_the_register_columns_are_not_suppressed_for_them():
    frame = persons(child("c", score=20)).drop("moved_away", "deceased")
    assert suppressed_by(frame) == {"c": []}


def test_every_suppression_that_holds_is_recorded():
    frame = persons(child("c", score=20, case_team="familie-nord", deceased=True))
    assert suppressed_by(frame) == {"c": ["suppress-open-case", "suppress-deceased"]}


def test_suppressed_flags_take_no_capacity(tmp_path):
    import yaml

    from routing.table import TEAMS_FILE

    data = yaml.safe_load(TEAMS_FILE.read_text(encoding="utf-8"))
    for team in data["teams"]:
        team["weekly_capacity"] = 1
    path = tmp_path / "teams.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    frame = persons(child("suppressed", score=20, case_team="familie-nord"), child("a", score=19), child("b", score=19))
    result = route(evaluate(RULESET, frame), frame, RULESET, load_routing_table(path), as_of=AS_OF, policy=POLICY)
    assert {f.person: (f.rank, f.suppressed) for f in result.flags} == {"a": (1, False), "suppressed": (0, True)}
    assert [(b.person, b.rank) for b in result.below] == [("b", 2)]


def test_a_history_without_its_columns_is_refused():
    with pytest.raises(RoutingError, match=r"decision history lacks column\(s\) \['defer_until'\]"):
        flags(persons(child("c", score=20)), history().drop("defer_until"))


def still_open(person: str, flag_id: int, days_ago: int, priority: int) -> dict:
    return {"person": person, "decision": None, "priority": priority, "flag_id": flag_id, "flag_as_of": AS_OF - timedelta(days=days_ago)}


def test_an_open_undecided_flag_holds_a_new_one_back_naming_it_unless_the_new_one_is_more_severe():
    frame = persons(
        child("waiting", score=20),  # priority 3
        child("now-more-severe", score=20, parent_substance_treatment_365d=1),  # priority 1
        child("open-since-tonight", score=20),
    )
    past = history(
        still_open("waiting", 41, 3, 3),
        still_open("waiting", 17, 20, 2),  # the most urgent open flag is the one named
        still_open("now-more-severe", 42, 1, 2),
        still_open("open-since-tonight", 43, 0, 3),  # a rerun of tonight is not an earlier flag
    )
    assert suppressed_by(frame, past) == {"waiting": ["suppress-open-flag"], "now-more-severe": [], "open-since-tonight": []}
    flag = flags(frame, past)["waiting"]
    assert (flag.rank, flag.queued, [r.rule_id for r in flag.reasons]) == (0, False, ["child-high-score"])
    [why] = flag.suppressed_by
    assert why.values == {"open_flag_id": 17, "priority": 3, "open_flag_priority": 2, "open_flag_as_of": date(2025, 5, 13)}
    assert why.text_da == (
        "Har allerede et åbent flag (nr. 17 fra 2025-05-13, prioritet 2), som ingen sagsbehandler har taget stilling til "
        "endnu; intet mere alvorligt tegn siden (prioritet nu 3)"
    )


def test_an_open_flag_neither_hides_nor_replaces_the_latest_decision():
    frame = persons(child("dismissed-and-open", score=20))
    past = history(decided("dismissed-and-open", "dismiss", 10, 3), still_open("dismissed-and-open", 9, 5, 1))
    assert suppressed_by(frame, past) == {"dismissed-and-open": ["suppress-open-flag", "suppress-recently-dismissed"]}
