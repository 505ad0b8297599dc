"""route: the right team by open case, age band, district and benefit; one flag per person; one ranking cut at capacity."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import polars as pl
import pytest
import yaml

from routing.flags import FlagDraft
from routing.route import RankingPolicy, assign_teams, route
from routing.table import TEAMS_FILE, RoutingError, RoutingTable, load_routing_table
from rules.conditions import PERSON_SCHEMA
from rules.engine import evaluate, load_rules
from tidlig.settings import load_config

AS_OF = date(2025, 6, 2)
RULESET = load_rules()
TABLE = load_routing_table()
POLICY = load_config().ranking.policy()


def persons(*rows: dict) -> pl.DataFrame:
    """A persons frame in the feature stage's schema; columns not given are unknown (null)."""
    return pl.DataFrame([dict.fromkeys(PERSON_SCHEMA) | row for row in rows], schema=PERSON_SCHEMA)


def child(person: str, age: int = 10, district: str = "Nord", **values) -> dict:
    return {"person": person, "target": "child", "age_years": age, "district": district, **values}


def adult(person: str, **values) -> dict:
    base = {"person": person, "target": "adult", "age_years": 40, "district": "Syd",
            "substance_treatment_365d": 0, "benefit_weeks_365d": 0, "children_in_household": 0}
    return base | values


def routed(frame: pl.DataFrame, table=TABLE, policy=POLICY):
    return route(evaluate(RULESET, frame), frame, RULESET, table, as_of=AS_OF, policy=policy)


def flags_for(frame: pl.DataFrame, table=TABLE) -> dict[str, FlagDraft]:
    return {flag.person: flag for flag in routed(frame, table).flags}


def teams_of(*rows: dict) -> dict[str, str]:
    routed = assign_teams(persons(*rows), TABLE)
    return dict(routed.select("person", "team").iter_rows())


def test_children_by_age_band_and_school_district():
    assert teams_of(
        child("newborn", age=0), child("five", age=5), child("six", age=6, district="Syd"),
        child("ten", age=10, district="Øst"), child("seventeen", age=17, district="Vest"), child("north", district="Nord"),
    ) == {
        "newborn": "sundhedsplejen", "five": "sundhedsplejen", "six": "familie-syd",
        "ten": "familie-oest", "seventeen": "familie-vest", "north": "familie-nord",
    }


def test_adults_to_job_centre_or_adult_department():
    assert teams_of(
        adult("long-benefit", benefit_weeks_365d=26),
        adult("short-benefit", benefit_weeks_365d=25),
        adult("benefit-and-treatment", benefit_weeks_365d=40, substance_treatment_365d=1),
        adult("benefit-unknown", benefit_weeks_365d=None),
    ) == {
        "long-benefit": "jobcenter", "short-benefit": "voksen",
        "benefit-and-treatment": "voksen", "benefit-unknown": "voksen",
    }


def test_open_case_goes_to_its_own_team_before_age_or_district():
    assert teams_of(
        child("toddler-with-case", age=2, case_team="familie-vest"),
        adult("adult-with-case", benefit_weeks_365d=52, case_team="voksen"),
    ) == {"toddler-with-case": "familie-vest", "adult-with-case": "voksen"}


def test_open_case_with_a_team_not_in_the_table_stops_routing():
    with pytest.raises(RoutingError, match=r"team\(s\) \['gammelt-team'\] of 1 person\(s\) are not in the routing table; teams: \["):
        assign_teams(persons(child("c", case_team="gammelt-team")), TABLE)


def test_person_no_route_matches_stops_routing_without_naming_anyone():
    with pytest.raises(RoutingError, match=r"2 person\(s\) match no route \(2 with target='child', district=None\)") as error:
        assign_teams(persons(child("no-district-1", district=None), child("no-district-2", district=None)), TABLE)
    assert "no-district-" not in str(error.value)


def test_one_flag_per_person_with_all_reasons_most_urgent_first():
    frame = persons(
        child("c", parent_substance_treatment_365d=1, notifications_365d=3, days_since_last_notification=12,
              school_absence_pct_90d=18.0, score=19, probability=0.41, model_version="child-v3"),
    )
    [flag] = flags_for(frame).values()
    assert [r.rule_id for r in flag.reasons] == [
        "child-parent-substance", "child-repeated-notifications", "child-school-absence", "child-high-score",
    ]
    assert flag.priority == 1 and [r.priority for r in flag.reasons] == [1, 2, 2, 3]
    assert (flag.as_of, flag.target, flag.team, flag.rank, flag.queued) == (AS_OF, "child", "familie-nord", 1, False)
    assert (flag.score, flag.probability, flag.model_version) == (19, 0.41, "child-v3")
    assert flag.rules_version == RULESET.version
    absence = flag.reasons[2]
    assert absence.text_da == "18 % fravær fra skolen de seneste 90 dage"
    assert absence.text_en == "18% absence from school in the last 90 days"
    assert absence.values == {"school_absence_pct_90d": 18.0}
    assert flag.reasons[1].values == {"notifications_365d": 3, "days_since_last_notification": 12}


def test_persons_without_hits_get_no_flag_and_no_hits_give_no_flags():
    frame = persons(child("quiet", notifications_365d=0), child("flagged", score=19))
    assert list(flags_for(frame)) == ["flagged"]
    nothing = routed(persons())
    assert (nothing.flags, nothing.below) == ([], [])
    assert [(c.team, c.shown, c.below, c.cutoff_score) for c in nothing.cuts] == [(t.id, 0, 0, None) for t in TABLE.teams]


@pytest.fixture
def table_with(tmp_path):
    """A routing table like the shipped one, with the given team capacities."""

    def make(**capacities: int) -> RoutingTable:
        data = yaml.safe_load(TEAMS_FILE.read_text(encoding="utf-8"))
        for team in data["teams"]:
            team["weekly_capacity"] = capacities.get(team["id"].replace("-", "_"), team["weekly_capacity"])
        path = tmp_path / "teams.yaml"
        path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
        return load_routing_table(path)

    return make


def test_one_ranking_mixes_urgency_and_risk_as_the_policy_says_and_cuts_at_capacity(table_with):
    frame = persons(
        child("p3-score20", score=20, probability=0.45),
        child("p3-score19", score=19, probability=0.30),
        child("p2-low-score", school_absence_pct_90d=30.0, score=1, probability=0.01),
        child("p2-mid-score", school_absence_pct_90d=16.0, score=14, probability=0.12),
        child("p1-score9", parent_substance_treatment_365d=1, notifications_365d=1, score=9, probability=0.08),
        child("p2-unscored", school_absence_pct_90d=20.0),
        child("other-team", district="Syd", score=20, probability=0.5),
    )
    policy = RankingPolicy(risk_weight=1.0, urgency={1: 0.2, 2: 0.1, 3: 0.0})
    result = routed(frame, table_with(familie_nord=3), policy)
    nord = [f for f in result.flags if f.team == "familie-nord"]
    # values: 0.45, 0.30, 0.1 + 0.01, 0.1 + 0.12, 0.2 + 0.08, 0.1 + 0 (unscored)
    assert [(f.person, f.rank) for f in nord] == [("p3-score20", 1), ("p3-score19", 2), ("p1-score9", 3)]
    assert [round(f.ranking_value, 2) for f in nord] == [0.45, 0.30, 0.28]
    assert [(b.person, b.rank, b.team) for b in result.below] == [
        ("p2-mid-score", 4, "familie-nord"), ("p2-low-score", 5, "familie-nord"), ("p2-unscored", 6, "familie-nord"),
    ]
    cut = {c.team: c for c in result.cuts}
    assert (cut["familie-nord"].candidates, cut["familie-nord"].shown, cut["familie-nord"].below) == (6, 3, 3)
    # The score a child needed follows from capacity: the capacity-th ranked flag's.
    assert (cut["familie-nord"].cutoff_score, round(cut["familie-nord"].cutoff_value, 2)) == (9, 0.28)
    assert (cut["familie-syd"].shown, cut["familie-syd"].below, cut["familie-syd"].cutoff_score) == (1, 0, None)

    # Urgency weighed heavier than risk puts every rule hit first, as the policy then says.
    urgent = routed(frame, table_with(familie_nord=3), RankingPolicy(risk_weight=1.0, urgency={1: 2.0, 2: 1.0, 3: 0.0}))
    assert [f.person for f in urgent.flags if f.team == "familie-nord"] == ["p1-score9", "p2-mid-score", "p2-low-score"]


def test_a_low_score_rule_hit_no_longer_outranks_a_high_risk_child(table_with):
    frame = persons(
        child("absent-score-1", school_absence_pct_90d=25.0, score=1, probability=0.01),
        child("score-20", score=20, probability=0.40),
    )
    result = routed(frame, table_with(familie_nord=1))
    assert [f.person for f in result.flags] == ["score-20"]
    [below] = result.below
    assert (below.person, below.rank, below.rule_ids, below.score) == ("absent-score-1", 2, ("child-school-absence",), 1)


def test_each_team_gets_exactly_its_capacity_and_everyone_else_is_recorded_below_it(table_with):
    frame = persons(
        *(child(f"nord-{i}", score=20, probability=i / 100) for i in range(1, 11)),
        *(child(f"syd-{i}", district="Syd", score=20, probability=i / 100) for i in range(1, 6)),
        *(child(f"baby-{i}", age=1, score=20, probability=i / 100) for i in range(1, 4)),
    )
    result = routed(frame, table_with(familie_nord=4, familie_syd=2, sundhedsplejen=5))
    shown = {team: sorted(f.person for f in result.flags if f.team == team) for team in ("familie-nord", "familie-syd", "sundhedsplejen")}
    assert shown == {
        "familie-nord": ["nord-10", "nord-7", "nord-8", "nord-9"],
        "familie-syd": ["syd-4", "syd-5"],
        "sundhedsplejen": ["baby-1", "baby-2", "baby-3"],
    }
    assert len(result.flags) + len(result.below) == frame.height  # nobody dropped
    assert all(not f.queued for f in result.flags)
    below_nord = [b for b in result.below if b.team == "familie-nord"]
    assert [b.rank for b in below_nord] == [5, 6, 7, 8, 9, 10] and below_nord[0].person == "nord-6"
    assert (below_nord[0].score, below_nord[0].probability, below_nord[0].members) == (20, 0.06, ("nord-6",))


def test_zero_capacity_shows_nobody_but_records_everyone(table_with):
    table = table_with(familie_nord=0, voksen=0)
    result = routed(persons(child("a", score=20), adult("b", benefit_weeks_365d=30, substance_treatment_365d=1, children_in_household=1)), table)
    assert result.flags == []
    assert {b.person: (b.team, b.rank) for b in result.below} == {"a": ("familie-nord", 1), "b": ("voksen", 1)}


def test_a_legal_duty_passes_the_cut_says_why_and_takes_capacity_first(table_with):
    frame = persons(
        child("notified", notifications_365d=2, days_since_last_notification=5, score=2, probability=0.01),
        child("score-20", score=20, probability=0.40),
        child("score-19", score=19, probability=0.30),
    )
    result = routed(frame, table_with(familie_nord=2))
    flags = {f.person: f for f in result.flags}
    assert set(flags) == {"notified", "score-20"} and [b.person for b in result.below] == ["score-19"]
    assert flags["notified"].legal_duty and not flags["score-20"].legal_duty
    [duty] = [r for r in flags["notified"].reasons if r.legal_duty]
    assert duty.rule_id == "child-new-repeated-notification" and "underretning" in duty.legal_duty
    [cut] = [c for c in result.cuts if c.team == "familie-nord"]
    assert (cut.shown, cut.legal_duty, cut.below, cut.cutoff_score) == (2, 1, 1, 20)

    # With no room left, a legal duty still reaches a person.
    full = routed(frame, table_with(familie_nord=0))
    assert [f.person for f in full.flags] == ["notified"]
    [cut] = [c for c in full.cuts if c.team == "familie-nord"]
    assert (cut.shown, cut.legal_duty, cut.below, cut.cutoff_score) == (1, 1, 2, None)


def test_hits_for_a_person_not_in_persons_are_refused():
    hits = evaluate(RULESET, persons(child("ghost", score=20)))
    with pytest.raises(RoutingError, match=r"hits name 1 person\(s\) that are not in persons"):
        route(hits, persons(child("someone-else")), RULESET, TABLE, as_of=AS_OF, policy=POLICY)


def test_a_person_twice_in_persons_is_refused():
    frame = persons(child("twice", score=20), child("twice", score=20))
    with pytest.raises(RoutingError, match=r"one row per person; 1 flagged person\(s\) have more"):
        routed(frame)


def test_hits_from_another_rule_set_are_refused():
    hits = pl.DataFrame({"person": ["c"], "rule_id": ["retired-rule"], "priority": [1]})
    with pytest.raises(RoutingError, match=r"rule\(s\) \['retired-rule'\]"):
        route(hits, persons(child("c")), RULESET, TABLE, as_of=AS_OF, policy=POLICY)


def test_signals_go_to_the_flags_of_the_persons_they_explain_and_name_the_member_on_a_family_flag():
    from routing.route import with_signals

    signal = {"feature": "notifications_365d", "value": 3.0, "contribution": 0.2, "text_da": "3 underretninger", "text_en": "3 notifications"}
    child_flag = flags_for(persons(child("kid", score=20, probability=0.3)))["kid"]
    family_flag = replace(child_flag, person="lead", target="family", reasons=tuple(
        replace(r, person=m) for m in ("lead", "mother") for r in child_flag.reasons
    ))
    explained = {"kid": [signal], "lead": [signal], "mother": [dict(signal, feature="benefit_weeks_365d")]}
    single, family = with_signals([child_flag, family_flag], explained)
    assert single.signals == (signal,)
    assert [(s["person"], s["feature"]) for s in family.signals] == [("lead", "notifications_365d"), ("mother", "benefit_weeks_365d")]
    assert with_signals([child_flag], {})[0].signals == ()
