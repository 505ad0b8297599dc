"""evaluate: one filter per rule over all persons; target filtering; unknown values never fire."""

from __future__ import annotations

from datetime import date

import polars as pl
import pytest

from rules.conditions import PERSON_SCHEMA
from rules.engine import RuleError, evaluate, load_rules
from rules.texts import fill, format_value

RULESET = load_rules()


def persons(*rows: dict) -> pl.DataFrame:
    """A persons frame in the feature stage's schema; columns not given are unknown (null)."""
    return pl.DataFrame([dict.fromkeys(PERSON_SCHEMA) | row for row in rows], schema=PERSON_SCHEMA)


def fired(hits: pl.DataFrame) -> set[tuple[str, str]]:
    return set(hits.select("person", "rule_id").iter_rows())


def test_hits_carry_person_rule_priority_and_the_values_read():
    hits = evaluate(RULESET, persons({"person": "c1", "target": "child", "school_absence_pct_90d": 21.0}))
    assert hits.columns[:3] == ["person", "rule_id", "priority"]
    row = hits.row(0, named=True)
    assert (row["person"], row["rule_id"], row["priority"]) == ("c1", "child-school-absence", 2)
    assert row["school_absence_pct_90d"] == 21.0


def test_rules_apply_only_to_their_target():
    adult_signals = {"substance_treatment_365d": 1, "benefit_weeks_365d": 52, "children_in_household": 2, "score": 20}
    child_signals = {"parent_substance_treatment_365d": 1, "notifications_365d": 4, "school_absence_pct_90d": 40.0, "score": 20}
    hits = evaluate(
        RULESET,
        persons(
            {"person": "child-with-adult-signals", "target": "child", **adult_signals},
            {"person": "adult-with-child-signals", "target": "adult", **child_signals},
        ),
    )
    assert fired(hits) == {("child-with-adult-signals", "child-high-score")}


def test_a_person_of_no_known_target_fires_nothing():
    assert evaluate(RULESET, persons({"person": "x", "target": None, "score": 20})).is_empty()


@pytest.mark.parametrize("target", ["child", "adult"])
def test_unknown_values_never_fire(target):
    assert evaluate(RULESET, persons({"person": "unknown", "target": target})).is_empty()


def test_an_unknown_value_does_not_block_a_known_one():
    # Parent in treatment, absence unknown, but a notification: the child signal is there.
    row = {"person": "c", "target": "child", "parent_substance_treatment_365d": 1, "notifications_365d": 1}
    assert fired(evaluate(RULESET, persons(row))) == {("c", "child-parent-substance")}


def test_every_rule_fires_for_a_person_meeting_it():
    hits = evaluate(
        RULESET,
        persons(
            {"person": "a", "target": "adult", "substance_treatment_365d": 1, "benefit_weeks_365d": 30,
             "children_in_household": 1},
            {"person": "c", "target": "child", "parent_substance_treatment_365d": 1, "notifications_365d": 2,
             "days_since_last_notification": 2, "school_absence_pct_90d": 15.0, "score": 19},
        ),
    )
    assert {rule_id for _, rule_id in fired(hits)} == {r.id for r in RULESET.rules if r.target != "family"}
    assert hits.filter(pl.col("person") == "c")["priority"].to_list() == [1, 2, 2, 2, 3]
    assert hits.filter(pl.col("legal_duty"))["rule_id"].to_list() == ["child-new-repeated-notification"]


def test_no_person_and_no_hit_give_an_empty_frame_with_the_columns():
    hits = evaluate(RULESET, persons())
    assert hits.is_empty() and hits.columns[:3] == ["person", "rule_id", "priority"]


def test_narrower_column_types_from_upstream_are_fine():
    frame = persons({"person": "c", "target": "child", "score": 19}).with_columns(pl.col("score").cast(pl.Int8))
    assert fired(evaluate(RULESET, frame)) == {("c", "child-high-score")}


def test_missing_input_column_is_named():
    frame = persons({"person": "c", "target": "child"}).drop("school_absence_pct_90d")
    with pytest.raises(RuleError, match=r"lack column\(s\) \['school_absence_pct_90d'\]"):
        evaluate(RULESET, frame)


def test_rules_not_yet_valid_are_left_out_on_an_earlier_as_of_date():
    frame = persons({"person": "c", "target": "child", "score": 20})
    assert evaluate(RULESET, frame, as_of=date(2024, 12, 31)).is_empty()
    assert not evaluate(RULESET, frame, as_of=date(2025, 1, 1)).is_empty()


def test_many_persons_at_once():
    n = 50_000
    frame = pl.DataFrame(
        {
            "person": [f"p{i}" for i in range(n)],
            "target": ["child"] * n,
            "score": [i % 20 + 1 for i in range(n)],
        }
    ).with_columns(**{c: pl.lit(None, dtype) for c, dtype in PERSON_SCHEMA.items() if c not in ("person", "target", "score")})
    # The top quarter enters the week's ranking; routing cuts it at each team's capacity.
    assert evaluate(RULESET, frame).height == n * 5 // 20  # scores 16 to 20


@pytest.mark.parametrize(
    ("value", "da", "en"),
    [(3, "3", "3"), (1234567, "1.234.567", "1,234,567"), (17.46, "17,5", "17.5"), (15.0, "15", "15"),
     (14.96, "15", "15"), (None, "ukendt", "unknown"), ("Øst", "Øst", "Øst")],
)
def test_values_are_formatted_for_the_reader(value, da, en):
    assert (format_value(value, "da"), format_value(value, "en")) == (da, en)


def test_percent_columns_carry_their_unit_only_when_known():
    template = "fravær {school_absence_pct_90d}"
    assert fill(template, {"school_absence_pct_90d": 17.5}, "da") == "fravær 17,5 %"
    assert fill(template, {"school_absence_pct_90d": 17.5}, "en") == "fravær 17.5%"
    assert fill(template, {"school_absence_pct_90d": None}, "da") == "fravær ukendt"


@pytest.mark.parametrize(
    ("values", "da", "en"),
    [({"n": 1, "d": 1}, "1 underretning, den seneste for 1 dag siden", "1 notification, the latest 1 day ago"),
     ({"n": 2.0, "d": 41}, "2 underretninger, den seneste for 6 uger siden", "2 notifications, the latest 6 weeks ago"),
     ({"n": 1234, "d": 95}, "1.234 underretninger, den seneste for 3 måneder siden", "1,234 notifications, the latest 3 months ago"),
     ({"n": None, "d": None}, "ukendt underretninger, den seneste ukendt", "unknown notifications, the latest unknown")],
)
def test_words_agree_with_the_value_before_them_and_days_are_said_as_a_person_would(values, da, en):
    template = {"da": "{n} {underretning|underretninger}, den seneste {d:ago}", "en": "{n} {notification|notifications}, the latest {d:ago}"}
    assert (fill(template["da"], values, "da"), fill(template["en"], values, "en")) == (da, en)
