"""route: the right team by open case, age band, district and benefit; one flag per person; capacity queues."""

from __future__ import annotations

from datetime import date

import polars as pl
import pytest
import yaml

from routing.flags import FlagDraft
from routing.route import assign_teams, route
from routing.table import TEAMS_FILE, RoutingError, RoutingTable, load_routing_table
from rules.conditions import PERSON_SCHEMA
from rules.engine import evaluate, load_rules

AS_OF = date(2025, 6, 2)
RULESET = load_rules()
TABLE = load_routing_table()


def persons(*rows: dict) -> pl.DataFrame:
    """A persons frame in the feature stage's schema; columns not given are unknown (null)."""
    return pl.DataFrame([dict.fromkeys(PERSON_SCHEMA) | row for row in rows], schema=PERSON_SCHEMA)


def child(person: str, age: int = 10, district: str = "Nord", **values) -> dict:
    return {"person": person, "target": "child", "age_years": age, "district": district, **values}


def adult(person: str, **values) -> dict:
    base = {"person": person, "target": "adult", "age_years": 40, "district": "Syd",
            "substance_treatment_365d": 0, "benefit_weeks_365d": 0, "children_in_household": 0}
    return base | values


def flags_for(frame: pl.DataFrame, table=TABLE) -> dict[str, FlagDraft]:
    flags = route(evaluate(RULESET, frame), frame, RULESET, table, as_of=AS_OF)
    return {flag.person: flag for flag in flags}


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
    frame = persons(child("quiet", score=3), child("flagged", score=19))
    assert list(flags_for(frame)) == ["flagged"]
    assert route(evaluate(RULESET, persons()), persons(), RULESET, TABLE, as_of=AS_OF) == []


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


def test_capacity_queues_in_priority_then_score_order_and_drops_nobody(table_with):
    frame = persons(
        child("p3-score19", score=19),
        child("p3-score20", score=20),
        child("p2-unscored", school_absence_pct_90d=30.0),
        child("p2-score17", school_absence_pct_90d=16.0, score=17),
        child("p1-score9", parent_substance_treatment_365d=1, notifications_365d=1, score=9),
        child("b-tie", score=20),
        child("a-tie", score=20),
        child("other-team", district="Syd", score=20),
    )
    flags = route(evaluate(RULESET, frame), frame, RULESET, table_with(familie_nord=2), as_of=AS_OF)
    nord = [f for f in flags if f.team == "familie-nord"]
    assert [(f.person, f.rank, f.queued) for f in nord] == [
        ("p1-score9", 1, False),
        ("p2-score17", 2, False),
        ("p2-unscored", 3, True),
        ("a-tie", 4, True),
        ("b-tie", 5, True),
        ("p3-score20", 6, True),
        ("p3-score19", 7, True),
    ]
    [syd] = [f for f in flags if f.team == "familie-syd"]
    assert (syd.rank, syd.queued) == (1, False)
    assert len(flags) == frame.height


def test_zero_capacity_queues_everyone(table_with):
    table = table_with(familie_nord=0, voksen=0)
    flags = flags_for(persons(child("a", score=20), adult("b", benefit_weeks_365d=30, substance_treatment_365d=1, children_in_household=1)), table)
    assert {p: (f.team, f.rank, f.queued) for p, f in flags.items()} == {
        "a": ("familie-nord", 1, True), "b": ("voksen", 1, True),
    }


def test_hits_for_a_person_not_in_persons_are_refused():
    hits = evaluate(RULESET, persons(child("ghost", score=20)))
    with pytest.raises(RoutingError, match=r"hits name 1 person\(s\) that are not in persons"):
        route(hits, persons(child("someone-else")), RULESET, TABLE, as_of=AS_OF)


def test_a_person_twice_in_persons_is_refused():
    frame = persons(child("twice", score=20), child("twice", score=20))
    with pytest.raises(RoutingError, match=r"one row per person; 1 flagged person\(s\) have more"):
        route(evaluate(RULESET, frame), frame, RULESET, TABLE, as_of=AS_OF)


def test_hits_from_another_rule_set_are_refused():
    hits = pl.DataFrame({"person": ["c"], "rule_id": ["retired-rule"], "priority": [1]})
    with pytest.raises(RoutingError, match=r"rule\(s\) \['retired-rule'\]"):
        route(hits, persons(child("c")), RULESET, TABLE, as_of=AS_OF)
