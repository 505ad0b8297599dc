"""load_rules refuses every kind of bad rule file with a message naming the file, the rule and the key."""

from __future__ import annotations

import copy
import shutil
from datetime import date
from pathlib import Path

import polars as pl
import pytest
import yaml

from features.catalogue import FEATURE_NAMES
from rules.conditions import PERSON_SCHEMA
from rules.engine import RULES_DIR, RuleError, TestFailure, evaluate, load_rules, run_embedded_tests

GOOD_RULE = {
    "id": "test-rule",
    "title_da": "Prøveregel",
    "title_en": "Test rule",
    "rationale": "Only for tests.",
    "owner": "Testteamet",
    "legal_basis": "Ingen",
    "valid_from": date(2025, 1, 1),
    "target": "child",
    "priority": 2,
    "condition": "score >= 17",
    "reason_da": "Risikoscore {score}",
    "reason_en": "Risk score {score}",
    "tests": [
        {"case": "fires at 17", "given": {"score": 17}, "fires": True, "reason_da": "Risikoscore 17"},
        {"case": "quiet at 16", "given": {"score": 16}, "fires": False},
    ],
}
GOOD_FILE = {"version": "1", "owner": "Testteamet", "rules": [GOOD_RULE]}


def write(folder: Path, data: dict, name: str = "bad.yaml") -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def with_rule(**changes) -> dict:
    data = copy.deepcopy(GOOD_FILE)
    for key, value in changes.items():
        if value is ...:
            del data["rules"][0][key]
        else:
            data["rules"][0][key] = value
    return data


def with_case(**changes) -> dict:
    data = copy.deepcopy(GOOD_FILE)
    data["rules"][0]["tests"][0].update(changes)
    return data


def test_good_file_loads(tmp_path):
    ruleset = load_rules(write(tmp_path, GOOD_FILE, "good.yaml").parent)
    assert [r.id for r in ruleset.rules] == ["test-rule"]
    assert ruleset.rules[0].legal_duty is None
    assert run_embedded_tests(ruleset) == []


@pytest.mark.parametrize("feature", FEATURE_NAMES)
def test_a_rule_may_read_every_catalogue_feature(tmp_path, feature):
    data = with_rule(condition=f"{feature} >= 2", reason_da="Værdi {%s}" % feature, reason_en="Value {%s}" % feature,
                     tests=[{"case": "fires at 2", "given": {feature: 2}, "fires": True},
                            {"case": "quiet at 1", "given": {feature: 1}, "fires": False}])
    ruleset = load_rules(write(tmp_path, data, "features.yaml").parent)
    assert ruleset.rules[0].value_columns == (feature,)
    assert run_embedded_tests(ruleset) == []


def test_a_legal_duty_rule_keeps_its_why_and_marks_its_hits(tmp_path):
    ruleset = load_rules(write(tmp_path, with_rule(legal_duty=True, why="Loven kræver, at en person ser det"), "good.yaml").parent)
    assert ruleset.rules[0].legal_duty == "Loven kræver, at en person ser det"
    frame = pl.DataFrame([dict.fromkeys(PERSON_SCHEMA) | {"person": "c", "target": "child", "score": 18}], schema=PERSON_SCHEMA)
    assert evaluate(ruleset, frame)["legal_duty"].to_list() == [True]


BAD = {
    "unknown rule key": (with_rule(colour="red"), ["rule 'test-rule'", "'colour'", "allowed"]),
    "missing rule key": (with_rule(legal_basis=...), ["rule 'test-rule'", "missing", "'legal_basis'"]),
    "empty text": (with_rule(rationale="  "), ["rule 'test-rule'", "key 'rationale'"]),
    "priority too high": (with_rule(priority=4), ["key 'priority'", "[1, 2, 3]"]),
    "priority zero": (with_rule(priority=0), ["key 'priority'", "[1, 2, 3]"]),
    "priority as text": (with_rule(priority="1"), ["key 'priority'"]),
    "priority as boolean": (with_rule(priority=True), ["key 'priority'"]),
    "bad target": (with_rule(target="elderly"), ["key 'target'", "'elderly'", "['child', 'adult', 'family']"]),
    "bad id": (with_rule(id="Test Rule"), ["rule 'Test Rule'", "key 'id'"]),
    "bad date": (with_rule(valid_from="soon"), ["key 'valid_from'", "'soon'"]),
    "unparseable condition": (with_rule(condition="score >="), ["key 'condition'", "cannot parse"]),
    "unknown column": (with_rule(condition="shoe_size > 40"), ["key 'condition'", "shoe_size", "allowed"]),
    "person column": (with_rule(condition="person = 'p1'"), ["key 'condition'", "'person'"]),
    "type error": (with_rule(condition="district >= 15"), ["key 'condition'", "cannot be evaluated"]),
    "not boolean": (with_rule(condition="score + 1"), ["key 'condition'", "true or false"]),
    "no column": (with_rule(condition="1 = 1"), ["key 'condition'", "reads no column"]),
    "fires on unknown": (with_rule(condition="score IS NULL"), ["key 'condition'", "unknown values must never make it true"]),
    "fires on unknown via coalesce": (with_rule(condition="COALESCE(score, 20) >= 17"), ["key 'condition'", "unknown"]),
    "template unknown field": (with_rule(reason_da="{shoe_size} sko"), ["key 'reason_da'", "{shoe_size}", "allowed"]),
    "template format": (with_rule(reason_en="{score:.1f}"), ["key 'reason_en'", "has a format"]),
    "template broken brace": (with_rule(reason_da="score {score"), ["key 'reason_da'"]),
    "choice before any field": (with_rule(reason_da="{underretning|underretninger}: {score}"), ["key 'reason_da'", "field before it"]),
    "choice of three forms": (with_rule(reason_en="{score} {a|b|c}"), ["key 'reason_en'", "two forms"]),
    "ago on a conversion": (with_rule(reason_en="{score!r:ago}"), ["key 'reason_en'", "has a format"]),
    "legal duty without why": (with_rule(legal_duty=True), ["rule 'test-rule'", "key 'why'", "legal_duty: true"]),
    "why without legal duty": (with_rule(why="Loven siger det"), ["rule 'test-rule'", "key 'why'", "add legal_duty: true"]),
    "legal duty as text": (with_rule(legal_duty="yes", why="x"), ["rule 'test-rule'", "key 'legal_duty'", "true or false"]),
    "empty why": (with_rule(legal_duty=True, why=" "), ["rule 'test-rule'", "key 'why'", "non-empty"]),
    "tests not a list": (with_rule(tests="yes"), ["key 'tests'"]),
    "tests never quiet": (
        with_rule(tests=[GOOD_RULE["tests"][0]]), ["key 'tests'", "fires: false"]
    ),
    "case unknown key": (with_case(expected="x"), ["case 'fires at 17'", "'expected'"]),
    "case unknown column": (with_case(given={"shoe_size": 40}), ["case 'fires at 17'", "key 'given'", "shoe_size"]),
    "case wrong type": (with_case(given={"score": "high"}), ["case 'fires at 17'", "key 'given'", "'high' is not a whole number"]),
    "case fires not boolean": (with_case(fires="yes"), ["case 'fires at 17'", "key 'fires'"]),
    "reason on a quiet case": (
        with_rule(tests=[GOOD_RULE["tests"][0], {**GOOD_RULE["tests"][1], "reason_da": "x"}]),
        ["case 'quiet at 16'", "key 'reason_da'"],
    ),
    "unknown file key": ({**GOOD_FILE, "editor": "x"}, ["'editor'", "allowed"]),
    "missing file key": ({"version": "1", "rules": [GOOD_RULE]}, ["missing", "'owner'"]),
    "version as number": ({**GOOD_FILE, "version": 2025.1}, ["key 'version'", "quoted"]),
    "no rules": ({**GOOD_FILE, "rules": []}, ["key 'rules'"]),
}


@pytest.mark.parametrize(("data", "expected"), BAD.values(), ids=BAD.keys())
def test_bad_rule_file_is_refused_with_file_rule_and_key(tmp_path, data, expected):
    assert_refused(tmp_path, data, expected)


def assert_refused(folder: Path, data: dict, expected: list[str]) -> None:
    """Loading data as bad.yaml fails with a message naming the file and every expected part."""
    write(folder, data)
    with pytest.raises(RuleError) as error:
        load_rules(folder)
    message = str(error.value)
    assert message.startswith("bad.yaml"), message
    for part in expected:
        assert part in message, message


def test_case_missing_key_is_named(tmp_path):
    data = copy.deepcopy(GOOD_FILE)
    del data["rules"][0]["tests"][1]["fires"]
    write(tmp_path, data)
    with pytest.raises(RuleError, match=r"bad.yaml: rule 'test-rule', case 'quiet at 16': missing key\(s\) \['fires'\]"):
        load_rules(tmp_path)


def test_duplicate_rule_id_names_both_files(tmp_path):
    write(tmp_path, GOOD_FILE, "first.yaml")
    write(tmp_path, GOOD_FILE, "second.yaml")
    with pytest.raises(RuleError, match=r"second.yaml: rule 'test-rule', key 'id': already defined in first.yaml"):
        load_rules(tmp_path)


def test_key_written_twice_is_refused(tmp_path):
    text = yaml.safe_dump(GOOD_FILE, allow_unicode=True, sort_keys=False)
    (tmp_path / "bad.yaml").write_text(text.replace("  priority: 2\n", "  priority: 2\n  priority: 1\n"))
    with pytest.raises(RuleError, match=r"bad.yaml: not valid YAML: .*'priority' appears twice"):
        load_rules(tmp_path)


def test_empty_folder_and_missing_file_are_named(tmp_path):
    with pytest.raises(RuleError, match="no rule files"):
        load_rules(tmp_path)
    with pytest.raises(RuleError, match="nowhere.yaml: cannot read"):
        load_rules([tmp_path / "nowhere.yaml"])
    with pytest.raises(RuleError, match="no rule files given"):
        load_rules([])


def test_failing_case_is_reported_with_file_rule_and_case(tmp_path):
    data = with_case(given={"score": 12})
    write(tmp_path, data, "wrong.yaml")
    failures = run_embedded_tests(load_rules(tmp_path))
    assert failures == [
        TestFailure("wrong.yaml", "test-rule", "fires at 17", "expected fires: True, but it did not fire on {'score': 12}")
    ]
    assert str(failures[0]).startswith("wrong.yaml: rule 'test-rule', case 'fires at 17':")


def test_wrong_reason_text_is_reported(tmp_path):
    write(tmp_path, with_case(reason_da="Risikoscore sytten"), "wrong.yaml")
    [failure] = run_embedded_tests(load_rules(tmp_path))
    assert failure.case == "fires at 17"
    assert "reason_da" in failure.problem and "'Risikoscore 17'" in failure.problem


class TestVersion:
    def copy_rules(self, folder: Path) -> Path:
        folder.mkdir()
        for name in ("children.yaml", "adults.yaml", "families.yaml", "suppression.yaml"):
            shutil.copy(RULES_DIR / name, folder / name)
        return folder

    def test_same_files_anywhere_give_the_same_version(self, tmp_path):
        here = load_rules(self.copy_rules(tmp_path / "a")).version
        assert here == load_rules(self.copy_rules(tmp_path / "b")).version == load_rules().version

    def test_version_names_each_file_and_its_declared_version(self):
        assert load_rules().version.startswith("adults@2025.2+children@2025.2+families@2025.1+suppression@2025.2#")

    def test_any_edit_changes_the_version(self, tmp_path):
        folder = self.copy_rules(tmp_path / "rules")
        before = load_rules(folder).version
        children = folder / "children.yaml"
        children.write_text(children.read_text(encoding="utf-8") + "# a comment\n", encoding="utf-8")
        after_comment = load_rules(folder).version
        assert after_comment != before
        children.write_text(
            children.read_text(encoding="utf-8").replace("school_absence_pct_90d >= 15", "school_absence_pct_90d >= 12"),
            encoding="utf-8",
        )
        assert load_rules(folder).version not in (before, after_comment)

    def test_declared_version_shows_in_the_version(self, tmp_path):
        folder = self.copy_rules(tmp_path / "rules")
        adults = folder / "adults.yaml"
        adults.write_text(adults.read_text(encoding="utf-8").replace('version: "2025.2"', 'version: "2025.3"'), encoding="utf-8")
        assert load_rules(folder).version.startswith("adults@2025.3+children@2025.2+families@2025.1+suppression@2025.2#")
