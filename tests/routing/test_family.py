"""Family dedup: a flagged parent and a flagged child become one family flag, routed by the youngest child."""

from __future__ import annotations

from datetime import date

import polars as pl

from routing.family import family_groups
from routing.route import route
from routing.table import load_routing_table
from rules.conditions import PERSON_SCHEMA
from rules.engine import evaluate, load_rules
from tidlig.settings import load_config

AS_OF = date(2025, 6, 2)
RULESET = load_rules()
TABLE = load_routing_table()
POLICY = load_config().ranking.policy()
PARENT_SIGNALS = {"substance_treatment_365d": 1, "benefit_weeks_365d": 40, "children_in_household": 2}


def persons(*rows: dict) -> pl.DataFrame:
    return pl.DataFrame([dict.fromkeys(PERSON_SCHEMA) | row for row in rows], schema=PERSON_SCHEMA)


def child(person: str, age: int = 10, district: str = "Øst", **values) -> dict:
    return {"person": person, "target": "child", "age_years": age, "district": district, **values}


def adult(person: str, **values) -> dict:
    return {"person": person, "target": "adult", "age_years": 38, "district": "Øst", **values}


def links(*pairs: tuple[str, str]) -> pl.DataFrame:
    return pl.DataFrame(list(pairs), schema={"parent": pl.String, "child": pl.String}, orient="row")


def drafts(frame: pl.DataFrame, families: pl.DataFrame) -> dict:
    return {d.person: d for d in route(evaluate(RULESET, frame), frame, RULESET, TABLE, as_of=AS_OF, policy=POLICY, families=families).flags}


def test_parent_and_children_flagged_become_one_family_flag_with_every_member_and_reason():
    frame = persons(
        child("toddler", age=3, parent_substance_treatment_365d=1, notifications_365d=1, score=11),
        child("pupil", age=12, score=19, probability=0.3, model_version="m/2"),
        adult("mother", **PARENT_SIGNALS),
    )
    [flag] = drafts(frame, links(("mother", "toddler"), ("mother", "pupil"), ("father", "toddler"))).values()
    assert (flag.person, flag.target, flag.members) == ("toddler", "family", ("toddler", "pupil", "mother"))
    assert [(r.person, r.rule_id) for r in flag.reasons] == [
        ("toddler", "child-parent-substance"), ("pupil", "child-high-score"), ("mother", "adult-substance-benefit-children"),
    ]
    # The family department of the youngest child's district leads, also for a child under 6.
    assert (flag.team, flag.rank, flag.queued) == ("familie-oest", 1, False)
    # Ranked by its most urgent reason and its highest score.
    assert (flag.priority, flag.score, flag.probability, flag.model_version) == (1, 19, 0.3, "m/2")


def test_a_parent_flagged_without_a_flagged_child_keeps_a_flag_of_their_own():
    frame = persons(child("quiet", score=3), adult("mother", **PARENT_SIGNALS))
    result = drafts(frame, links(("mother", "quiet")))
    assert {p: (f.target, f.team) for p, f in result.items()} == {"mother": ("adult", "voksen")}


def test_two_flagged_parents_of_an_unflagged_child_are_not_merged():
    frame = persons(child("quiet", score=3), adult("mother", **PARENT_SIGNALS), adult("father", **PARENT_SIGNALS))
    result = drafts(frame, links(("mother", "quiet"), ("father", "quiet")))
    assert {p: f.target for p, f in result.items()} == {"mother": "adult", "father": "adult"}


def test_separate_families_stay_separate_and_each_takes_one_place_in_the_list():
    frame = persons(
        child("a-child", score=20), adult("a-parent", **PARENT_SIGNALS),
        child("b-child", score=19), adult("b-parent", **PARENT_SIGNALS),
        child("alone", score=20),
    )
    result = drafts(frame, links(("a-parent", "a-child"), ("b-parent", "b-child")))
    assert {p: (f.target, f.members, f.rank) for p, f in result.items()} == {
        "a-child": ("family", ("a-child", "a-parent"), 1),
        "b-child": ("family", ("b-child", "b-parent"), 2),
        "alone": ("child", ("alone",), 3),
    }


def test_a_suppressed_member_is_not_merged_into_the_family_flag():
    frame = persons(child("kid", score=20), adult("mother", deceased=True, **PARENT_SIGNALS))
    result = drafts(frame, links(("mother", "kid")))
    assert {p: (f.target, f.suppressed) for p, f in result.items()} == {"kid": ("child", False), "mother": ("adult", True)}


def test_three_generations_joined_through_flagged_persons_are_one_family():
    flagged = pl.DataFrame(
        {"person": ["grandmother", "mother", "child"], "target": ["adult", "adult", "child"], "age_years": [70, 40, 8]}
    )
    groups = family_groups(flagged, links(("grandmother", "mother"), ("mother", "child")))
    assert groups.sort("member").select("person", "member").rows() == [("child", 1), ("mother", 2), ("grandmother", 3)]
    assert groups["family"].n_unique() == 1


def test_no_families_frame_means_no_merging():
    frame = persons(child("kid", score=20), adult("mother", **PARENT_SIGNALS))
    assert {f.target for f in route(evaluate(RULESET, frame), frame, RULESET, TABLE, as_of=AS_OF, policy=POLICY).flags} == {"child", "adult"}


def family_drafts(frame: pl.DataFrame, families: pl.DataFrame) -> dict:
    hits = evaluate(RULESET, frame, families=families)
    return {d.person: d for d in route(hits, frame, RULESET, TABLE, as_of=AS_OF, policy=POLICY, families=families).flags}


def test_a_family_rule_makes_one_family_flag_listing_every_member_and_the_family_values():
    frame = persons(
        child("older", age=12, notifications_365d=1), child("younger", age=7, district="Syd", notifications_365d=1),
        adult("mother"), child("neighbour", notifications_365d=1),
    )
    [flag] = family_drafts(frame, links(("mother", "older"), ("mother", "younger"))).values()
    # Routed like every family flag: by the youngest child, to the family team of its district.
    assert (flag.person, flag.target, flag.team, flag.priority) == ("younger", "family", "familie-syd", 2)
    assert flag.members == ("mother", "older", "younger")
    assert [(m["person"], m["age_years"]) for m in flag.member_scores] == [("mother", 38), ("older", 12), ("younger", 7)]
    [reason] = flag.reasons
    assert (reason.rule_id, reason.person, reason.members) == ("family-several-children-notified", None, ("mother", "older", "younger"))
    assert reason.values == {
        "children_with_notification_365d": 2, "children": 2, "notifications_365d_all_children": 2, "max_child_score": None,
    }
    assert reason.text_da == (
        "2 af familiens 2 børn har fået en underretning det seneste år (2 i alt); højeste risikoscore blandt børnene: ukendt"
    )


def test_a_family_rule_merges_with_the_members_own_flags_into_one_flag():
    frame = persons(
        child("kid", age=9, notifications_365d=1, score=20), child("sibling", age=14, notifications_365d=1),
        adult("mother", **PARENT_SIGNALS),
    )
    [flag] = family_drafts(frame, links(("mother", "kid"), ("mother", "sibling"))).values()
    assert (flag.person, flag.target, flag.priority, flag.score) == ("kid", "family", 1, 20)
    # Each family rule's reason once, however many members it names; a person's own reasons name the person.
    assert [(r.person, r.rule_id) for r in flag.reasons] == [
        (None, "family-parent-substance-and-child-signs"),
        (None, "family-several-children-notified"),
        ("kid", "child-high-score"),
        ("mother", "adult-substance-benefit-children"),
    ]
    assert flag.members == ("kid", "mother", "sibling")


def test_a_family_flag_carries_each_members_own_score_and_age():
    frame = persons(
        child("toddler", age=3, parent_substance_treatment_365d=1, notifications_365d=1, score=11, probability=0.02),
        child("pupil", age=12, score=19, probability=0.3, model_version="m/2"),
        adult("mother", **PARENT_SIGNALS),
    ).with_columns(level_risk=pl.Series([0.015, 0.28, None]))
    [flag] = drafts(frame, links(("mother", "toddler"), ("mother", "pupil"))).values()
    assert flag.score == 19  # the family is ranked by its highest member's score ...
    own = {m["person"]: (m["target"], m["age_years"], m["score"], m["level_risk"]) for m in flag.member_scores}
    # ... and every member keeps their own
    assert own == {"toddler": ("child", 3, 11, 0.015), "pupil": ("child", 12, 19, 0.28), "mother": ("adult", 38, None, None)}
    assert [m["person"] for m in flag.member_scores] == list(flag.members)


def test_a_single_flag_carries_the_persons_own_score():
    frame = persons(child("kid", notifications_365d=3, score=14, probability=0.05))
    [flag] = drafts(frame, links()).values()
    assert [(m["person"], m["score"], m["age_years"]) for m in flag.member_scores] == [("kid", 14, 10)]
