"""The shipped rule files: they load, and every case they carry behaves as written."""

from __future__ import annotations

import pytest

from rules.engine import RULES_DIR, load_rules, run_case, run_embedded_tests

RULESET = load_rules()
CASES = [(rule, case) for rule in (*RULESET.rules, *RULESET.suppressions) for case in rule.tests]


@pytest.mark.parametrize(
    ("rule", "case"), CASES, ids=[f"{rule.file}::{rule.id}::{case.name}" for rule, case in CASES]
)
def test_embedded_case(rule, case):
    failure = run_case(rule, case)
    assert failure is None, str(failure)


def test_run_embedded_tests_finds_no_failure():
    assert run_embedded_tests(RULESET) == []


def test_default_folder_holds_the_flag_and_suppression_rule_files():
    assert {f.name for f in RULESET.files} == {"children.yaml", "adults.yaml", "families.yaml", "suppression.yaml"}
    assert {r.file for r in RULESET.suppressions} == {"suppression.yaml"}
    assert RULES_DIR.name == "rules"


def test_every_target_and_priority_is_covered():
    assert {r.target for r in RULESET.rules} == {"child", "adult", "family"}
    assert {r.priority for r in RULESET.rules} == {1, 2, 3}


def test_the_score_rule_lets_the_top_quarter_into_the_ranking_and_capacity_decides_the_rest():
    score_rules = [r for r in RULESET.rules if r.value_columns == ("score",)]
    # Only children are scored; a score rule for adults would wait for an adult model.
    assert {r.target for r in score_rules} == {"child"}
    assert all(r.condition == "score >= 16" for r in score_rules)


def test_a_new_notification_about_a_child_notified_about_before_is_a_legal_duty_and_says_why():
    duties = {r.id: r.legal_duty for r in RULESET.rules if r.legal_duty}
    assert list(duties) == ["child-new-repeated-notification"]
    assert "underretning" in duties["child-new-repeated-notification"]


def test_danish_texts_are_danish():
    titles = " ".join(r.title_da + r.reason_da for r in RULESET.rules)
    assert "æ" in titles and "ø" in titles and "å" in titles
