"""Family rules: one row per family built from its members, and rule files that may read only the family values."""

from __future__ import annotations

import copy

import polars as pl
import pytest

from rules.conditions import PERSON_SCHEMA
from rules.engine import RuleError, evaluate, load_rules
from rules.families import FAMILY_SCHEMA, FAMILY_VALUES, family_table
from tests.rules.test_loader import GOOD_FILE, assert_refused, write

RULESET = load_rules()
FAMILY_RULE = {
    **copy.deepcopy(GOOD_FILE["rules"][0]),
    "target": "family",
    "condition": "children_with_notification_365d >= 2",
    "reason_da": "{children_with_notification_365d} børn med underretning",
    "reason_en": "{children_with_notification_365d} children notified about",
    "tests": [
        {"case": "two", "given": {"children_with_notification_365d": 2}, "fires": True},
        {"case": "one", "given": {"children_with_notification_365d": 1}, "fires": False},
    ],
}


def persons(*rows: dict) -> pl.DataFrame:
    return pl.DataFrame([dict.fromkeys(PERSON_SCHEMA) | row for row in rows], schema=PERSON_SCHEMA)


def child(person: str, **values) -> dict:
    return {"person": person, "target": "child", "age_years": 8, "district": "Nord", **values}


def adult(person: str, **values) -> dict:
    return {"person": person, "target": "adult", "age_years": 40, "district": "Nord", **values}


def links(*pairs: tuple[str, str]) -> pl.DataFrame:
    return pl.DataFrame(list(pairs), schema={"parent": pl.String, "child": pl.String}, orient="row")


def test_family_values_are_declared_once_with_why_and_never_shadow_a_person_column():
    names = [v.name for v in FAMILY_VALUES]
    assert len(set(names)) == len(names)
    assert not set(names) & set(PERSON_SCHEMA)
    assert all(v.why.strip() and (v.column is None or v.column in PERSON_SCHEMA) for v in FAMILY_VALUES)


def test_one_row_per_family_with_values_from_its_members_and_unknown_kept_unknown():
    frame = persons(
        child("k1", notifications_365d=2, school_absence_pct_90d=20.0, score=12),
        child("k2", notifications_365d=1, score=17),
        child("k3", notifications_365d=0),  # a half-sibling through the father: same family
        adult("mother", substance_treatment_365d=1, benefit_weeks_365d=30),
        adult("father", substance_treatment_365d=0),
        child("other-child"), adult("other-parent"),  # nothing known about them
        adult("grown-up", notifications_365d=5), adult("grandmother"),  # an adult child does not join a household
    )
    table, members = family_table(
        frame,
        links(("mother", "k1"), ("mother", "k2"), ("father", "k2"), ("father", "k3"),
              ("other-parent", "other-child"), ("grandmother", "grown-up"), ("mother", "nobody-known")),
    )
    assert table.schema == FAMILY_SCHEMA
    by_family = {row["family"]: row for row in table.iter_rows(named=True)}
    assert dict(members.sort("person").iter_rows()) == {
        "father": "father", "k1": "father", "k2": "father", "k3": "father", "mother": "father",
        "other-child": "other-child", "other-parent": "other-child",
    }
    assert by_family["father"] == {
        "family": "father", "target": "family", "children": 3, "children_with_notification_365d": 2,
        "notifications_365d_all_children": 3, "children_absent_15pct_90d": 1, "max_child_score": 17,
        "parents_in_substance_treatment_365d": 1, "parents_on_benefit_26w_365d": 1,
    }
    unknown = by_family["other-child"]
    assert unknown["children"] == 1 and all(unknown[v.name] is None for v in FAMILY_VALUES if v.agg != "count")


def test_a_family_rule_gives_every_member_a_hit_with_the_family_and_its_values():
    frame = persons(
        child("k1", notifications_365d=1), child("k2", notifications_365d=3), adult("mother"),
        child("lonely", notifications_365d=4), child("k9", notifications_365d=1), adult("p9"),
    )
    hits = evaluate(RULESET, frame, families=links(("mother", "k1"), ("mother", "k2"), ("p9", "k9")))
    family = hits.filter(pl.col("rule_id") == "family-several-children-notified")
    assert family.select("person", "family", "priority", "children_with_notification_365d", "children").sort("person").rows() == [
        ("k1", "k1", 2, 2, 2), ("k2", "k1", 2, 2, 2), ("mother", "k1", 2, 2, 2),
    ]
    assert hits.filter(pl.col("rule_id").str.starts_with("child-"))["family"].is_null().all()
    # Without the parent-child links no family is known, so no family rule fires.
    assert evaluate(RULESET, frame).filter(pl.col("family").is_not_null()).is_empty()


def test_links_without_their_columns_are_refused():
    with pytest.raises(RuleError, match=r"families lack column\(s\) \['child'\]"):
        evaluate(RULESET, persons(child("k")), families=links().drop("child"))


BAD = {
    "person column in a family rule": (
        {"condition": "notifications_365d >= 2"}, ["rule 'test-rule', key 'condition'", "notifications_365d", "rules/families.py"]
    ),
    "person field in a family text": (
        {"reason_en": "{score} score"}, ["rule 'test-rule', key 'reason_en'", "{score}", "rules/families.py"]
    ),
    "person column in a family case": (
        {"tests": [{"case": "x", "given": {"score": 2}, "fires": True}, FAMILY_RULE["tests"][1]]},
        ["rule 'test-rule', case 'x', key 'given'", "'score'", "children_with_notification_365d"],
    ),
}


@pytest.mark.parametrize(("change", "expected"), BAD.values(), ids=BAD.keys())
def test_a_family_rule_may_read_only_the_family_values(tmp_path, change, expected):
    assert_refused(tmp_path, {**GOOD_FILE, "rules": [{**FAMILY_RULE, **change}]}, expected)


def test_a_person_rule_may_not_read_a_family_value(tmp_path):
    write(tmp_path, {**GOOD_FILE, "rules": [{**GOOD_FILE["rules"][0], "condition": "max_child_score >= 17"}]})
    with pytest.raises(RuleError, match=r"bad.yaml: rule 'test-rule', key 'condition': .*max_child_score"):
        load_rules(tmp_path)


def test_a_family_rule_file_loads_and_runs_its_cases(tmp_path):
    from rules.engine import run_embedded_tests

    ruleset = load_rules(write(tmp_path, {**GOOD_FILE, "rules": [FAMILY_RULE]}, "good.yaml").parent)
    assert [r.target for r in ruleset.rules] == ["family"] and run_embedded_tests(ruleset) == []


def test_every_family_value_has_a_short_label_in_danish_and_english():
    unlabelled = [v.name for v in FAMILY_VALUES if not (v.label and v.label.get("da", "").strip() and v.label.get("en", "").strip())]
    assert unlabelled == []
