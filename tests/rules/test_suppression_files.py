"""Suppression rule files: loaded beside the flag rules, checked key by key, tested by their own cases."""

from __future__ import annotations

import copy
from datetime import date
from pathlib import Path

import polars as pl
import pytest
import yaml

from rules.conditions import SUPPRESSION_SCHEMA
from rules.engine import RuleError, evaluate_suppressions, load_rules, run_embedded_tests

GOOD = {
    "id": "suppress-test",
    "title_da": "Prøve",
    "title_en": "Test",
    "rationale": "Only for tests.",
    "owner": "Testteamet",
    "legal_basis": "Ingen",
    "valid_from": date(2025, 1, 1),
    "condition": "last_decision = 'dismiss' AND days_since_decision <= 30",
    "reason_da": "Afvist for {days_since_decision} dage siden",
    "reason_en": "Dismissed {days_since_decision} days ago",
    "tests": [
        {"case": "holds", "given": {"last_decision": "dismiss", "days_since_decision": 3}, "fires": True,
         "reason_da": "Afvist for 3 dage siden"},
        {"case": "too old", "given": {"last_decision": "dismiss", "days_since_decision": 31}, "fires": False},
    ],
}
FILE = {"version": "1", "owner": "Testteamet", "suppressions": [GOOD]}


def write(folder: Path, data: dict, name: str = "bad.yaml") -> Path:
    (folder / name).write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return folder


def changed(**changes) -> dict:
    data = copy.deepcopy(FILE)
    data["suppressions"][0].update(changes)
    return data


def test_a_suppression_file_loads_and_its_cases_pass(tmp_path):
    ruleset = load_rules(write(tmp_path, FILE, "s.yaml"))
    assert (ruleset.rules, [r.id for r in ruleset.suppressions]) == ((), ["suppress-test"])
    assert run_embedded_tests(ruleset) == []
    assert ruleset.version.startswith("s@1#")


BAD = {
    "flag-rule key": (changed(priority=2), ["suppression rule 'suppress-test'", "'priority'"]),
    "person column": (changed(condition="moved_away = TRUE AND shoe_size > 2"), ["key 'condition'", "shoe_size"]),
    "holds on unknown": (changed(condition="last_decision IS NULL"), ["key 'condition'", "unknown"]),
    "boolean column given text": (
        changed(tests=[GOOD["tests"][0], {"case": "x", "given": {"deceased": "yes"}, "fires": False}]),
        ["case 'x'", "'yes' is not true or false"],
    ),
    "both kinds in one file": ({**FILE, "rules": []}, ["exactly one of", "'rules'", "'suppressions'"]),
    "neither kind": ({"version": "1", "owner": "x"}, ["exactly one of", "neither"]),
}


@pytest.mark.parametrize(("data", "expected"), BAD.values(), ids=BAD.keys())
def test_bad_suppression_file_is_refused_naming_file_rule_and_key(tmp_path, data, expected):
    with pytest.raises(RuleError) as error:
        load_rules(write(tmp_path, data))
    message = str(error.value)
    assert message.startswith("bad.yaml"), message
    for part in expected:
        assert part in message, message


def test_failing_suppression_case_is_reported(tmp_path):
    data = changed(tests=[{**GOOD["tests"][0], "given": {"last_decision": "accept", "days_since_decision": 3}}, GOOD["tests"][1]])
    [failure] = run_embedded_tests(load_rules(write(tmp_path, data)))
    assert (failure.rule_id, failure.case) == ("suppress-test", "holds")


def test_evaluate_suppressions_names_missing_columns_and_skips_rules_not_yet_valid():
    ruleset = load_rules()
    frame = pl.DataFrame([dict.fromkeys(SUPPRESSION_SCHEMA) | {"person": "p", "deceased": True}], schema=SUPPRESSION_SCHEMA)
    assert evaluate_suppressions(ruleset, frame)["rule_id"].to_list() == ["suppress-deceased"]
    assert evaluate_suppressions(ruleset, frame, as_of=date(2024, 12, 31)).is_empty()
    with pytest.raises(RuleError, match=r"lack column\(s\) \['deceased'\]"):
        evaluate_suppressions(ruleset, frame.drop("deceased"))
