"""The rule engine: load and check rule files, evaluate them over all persons at once, run their own tests."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import polars as pl

from rules.conditions import (
    PERSON_SCHEMA,
    SUPPRESSION_SCHEMA,
    TARGETS,
    ConditionError,
    column_kind,
    fits_column,
    parse_condition,
)
from rules.families import FAMILY_SCHEMA, MEMBER_COLUMNS, family_table
from rules.texts import TemplateError, fill, template_fields
from rules.yamlfile import load_yaml

RULES_DIR = Path(__file__).parent
PRIORITIES = (1, 2, 3)
_FILE_KEYS = {"version", "owner"}
# A file holds flag rules or suppression rules, never both: they read different columns.
_FILE_KINDS = ("rules", "suppressions")
_FILE_OPTIONAL = {"description", *_FILE_KINDS}
_RULE_KEYS = {
    "id", "title_da", "title_en", "rationale", "owner", "legal_basis", "valid_from",
    "target", "priority", "condition", "reason_da", "reason_en", "tests",
}
# A rule that must always reach a person (a legal duty) says so, and why; it passes the capacity cut.
_RULE_OPTIONAL = {"legal_duty", "why"}
_SUPPRESSION_KEYS = _RULE_KEYS - {"target", "priority"}
_CASE_KEYS = {"case", "given", "fires"}
_CASE_OPTIONAL = {"reason_da", "reason_en"}
# Ids end up in the casework store and in URLs: keep them plain.
_RULE_ID = re.compile(r"^[a-z][a-z0-9-]*$")
# family: for a family rule's hits (one per member), the family it fired for; null for a person's rule.
# legal_duty: the hit must reach a person whatever the team's capacity (the rule's legal_duty).
_EMPTY_HITS = pl.DataFrame(
    schema={"person": pl.String, "rule_id": pl.String, "priority": pl.Int8, "legal_duty": pl.Boolean, "family": pl.String}
)
_EMPTY_SUPPRESSIONS = pl.DataFrame(schema={"person": pl.String, "rule_id": pl.String})


class RuleError(ValueError):
    """A rule file or its use is wrong; the message names the file, the rule and the key."""


@dataclass(frozen=True)
class RuleCase:
    """One embedded test: a person's values (the rest unknown) and whether the rule must fire."""

    name: str
    given: dict[str, Any]
    fires: bool
    reason_da: str | None = None
    reason_en: str | None = None


@dataclass(frozen=True)
class Rule:
    """One rule as written in its file, with the columns its condition and texts read."""

    file: str
    id: str
    title_da: str
    title_en: str
    rationale: str
    owner: str
    legal_basis: str
    valid_from: date
    target: str
    priority: int
    condition: str
    reason_da: str
    reason_en: str
    tests: tuple[RuleCase, ...]
    value_columns: tuple[str, ...]  # the evidence a reason shows: condition columns, then text fields
    legal_duty: str | None = None  # why the law says a hit must reach a person, whatever the team's capacity

    def fires(self) -> pl.Expr:
        """True for rows of this rule's target whose condition holds; unknown (null) never fires."""
        return (pl.col("target") == self.target) & pl.sql_expr(self.condition).fill_null(False)

    def reason_text(self, values: dict[str, Any], language: str) -> str:
        """The reason in Danish ("da") or English ("en"), filled from the person's values."""
        template = self.reason_da if language == "da" else self.reason_en
        return fill(template, {c: values.get(c) for c in self.value_columns}, language)

    def case_row(self, given: dict[str, Any]) -> dict[str, Any]:
        """A row of the rule's input with the case's values; everything else unknown."""
        key = "family" if self.target == "family" else "person"
        return dict.fromkeys(self.schema) | {key: "case", "target": self.target} | given

    @property
    def schema(self) -> dict[str, pl.DataType]:
        """What the rule reads: a family's values for a family rule, else a person's columns."""
        return FAMILY_SCHEMA if self.target == "family" else PERSON_SCHEMA


@dataclass(frozen=True)
class SuppressionRule:
    """A reason to keep a flag off the team's list (it is still stored, with this reason)."""

    file: str
    id: str
    title_da: str
    title_en: str
    rationale: str
    owner: str
    legal_basis: str
    valid_from: date
    condition: str
    reason_da: str
    reason_en: str
    tests: tuple[RuleCase, ...]
    value_columns: tuple[str, ...]

    def fires(self) -> pl.Expr:
        """True for flags whose condition holds; unknown (null) never suppresses."""
        return pl.sql_expr(self.condition).fill_null(False)

    def reason_text(self, values: dict[str, Any], language: str) -> str:
        """Why the flag was suppressed, in Danish ("da") or English ("en")."""
        template = self.reason_da if language == "da" else self.reason_en
        return fill(template, {c: values.get(c) for c in self.value_columns}, language)

    def case_row(self, given: dict[str, Any]) -> dict[str, Any]:
        """A row of the suppression input with the case's values; everything else unknown."""
        return dict.fromkeys(SUPPRESSION_SCHEMA) | {"person": "case"} | given

    schema = SUPPRESSION_SCHEMA


@dataclass(frozen=True)
class RuleFile:
    name: str
    version: str
    owner: str
    sha256: str


@dataclass(frozen=True)
class RuleSet:
    """All rules in force, and one version string that changes with any edit of any file."""

    files: tuple[RuleFile, ...]
    rules: tuple[Rule, ...]
    version: str
    suppressions: tuple[SuppressionRule, ...] = ()

    def rule(self, rule_id: str) -> Rule:
        """The rule with this id, or RuleError listing the ids there are."""
        for rule in self.rules:
            if rule.id == rule_id:
                return rule
        raise RuleError(f"no rule '{rule_id}'; rules: {[r.id for r in self.rules]}")

    def suppression(self, rule_id: str) -> SuppressionRule:
        """The suppression rule with this id, or RuleError listing the ids there are."""
        for rule in self.suppressions:
            if rule.id == rule_id:
                return rule
        raise RuleError(f"no suppression rule '{rule_id}'; suppression rules: {[r.id for r in self.suppressions]}")


@dataclass(frozen=True)
class TestFailure:
    """An embedded case whose outcome differs from what its file says."""

    __test__ = False  # not a pytest class, despite the name

    file: str
    rule_id: str
    case: str
    problem: str

    def __str__(self) -> str:
        return f"{self.file}: rule '{self.rule_id}', case '{self.case}': {self.problem}"


def _check_keys(spec: Any, required: set[str], optional: set[str], where: str) -> dict[str, Any]:
    if not isinstance(spec, dict):
        raise RuleError(f"{where}: expected a mapping with keys {sorted(required)}, got {spec!r}")
    missing = required - spec.keys()
    if missing:
        raise RuleError(f"{where}: missing key(s) {sorted(missing)}")
    unknown = spec.keys() - required - optional
    if unknown:
        raise RuleError(f"{where}: unknown key(s) {sorted(map(str, unknown))}; allowed: {sorted(required | optional)}")
    return spec


def _text(spec: dict[str, Any], key: str, where: str) -> str:
    value = spec[key]
    if not isinstance(value, str) or not value.strip():
        raise RuleError(f"{where}, key '{key}': expected a non-empty text, got {value!r}")
    return value.strip()


def _case(spec: Any, index: int, rule_where: str, schema: dict[str, pl.DataType]) -> RuleCase:
    name = spec.get("case") if isinstance(spec, dict) else None
    where = f"{rule_where}, case '{name}'" if isinstance(name, str) else f"{rule_where}, case #{index + 1}"
    _check_keys(spec, _CASE_KEYS, _CASE_OPTIONAL, where)
    _text(spec, "case", where)
    given = spec["given"]
    if not isinstance(given, dict):
        raise RuleError(f"{where}, key 'given': expected a mapping of column: value, got {given!r}")
    readable = [c for c in schema if c != "person"]
    for column, value in given.items():
        if column not in readable:
            raise RuleError(f"{where}, key 'given': unknown column '{column}'; allowed: {readable}")
        if not fits_column(column, value, schema):
            raise RuleError(f"{where}, key 'given': {column}: {value!r} is not {column_kind(column, schema)} or null")
    if not isinstance(spec["fires"], bool):
        raise RuleError(f"{where}, key 'fires': expected true or false, got {spec['fires']!r}")
    for key in _CASE_OPTIONAL & spec.keys():
        _text(spec, key, where)
        if not spec["fires"]:
            raise RuleError(f"{where}, key '{key}': a case that does not fire has no reason text")
    return RuleCase(spec["case"].strip(), dict(given), spec["fires"], spec.get("reason_da"), spec.get("reason_en"))


def _rule(file: str, spec: Any, index: int, kind: str = "rules") -> Rule | SuppressionRule:
    suppression = kind == "suppressions"
    noun = "suppression rule" if suppression else "rule"
    rule_id = spec.get("id") if isinstance(spec, dict) else None
    where = f"{file}: {noun} '{rule_id}'" if isinstance(rule_id, str) else f"{file}: {noun} #{index + 1}"
    _check_keys(spec, _SUPPRESSION_KEYS if suppression else _RULE_KEYS, set() if suppression else _RULE_OPTIONAL, where)
    if not isinstance(rule_id, str) or not _RULE_ID.match(rule_id):
        raise RuleError(
            f"{where}, key 'id': {rule_id!r} must be lowercase letters, digits and '-', like 'child-school-absence'"
        )
    texts = {k: _text(spec, k, where) for k in ("title_da", "title_en", "rationale", "owner", "legal_basis")}
    if type(spec["valid_from"]) is not date:  # a datetime is a date too, but a rule starts on a day
        raise RuleError(f"{where}, key 'valid_from': expected a date like 2025-01-01, got {spec['valid_from']!r}")
    if not suppression and spec["target"] not in TARGETS:
        raise RuleError(f"{where}, key 'target': {spec['target']!r} is not one of {list(TARGETS)}")
    family = not suppression and spec["target"] == "family"
    schema = SUPPRESSION_SCHEMA if suppression else FAMILY_SCHEMA if family else PERSON_SCHEMA
    # A family rule that names a person's column is the likeliest slip; say where the family values are.
    hint = "; a family rule reads only the family values declared in rules/families.py" if family else ""
    if not suppression and (isinstance(spec["priority"], bool) or spec["priority"] not in PRIORITIES):
        raise RuleError(
            f"{where}, key 'priority': {spec['priority']!r} is not one of {list(PRIORITIES)} (1 is most urgent)"
        )
    try:
        _, condition_columns = parse_condition(spec["condition"], schema)
    except ConditionError as exc:
        raise RuleError(f"{where}, key 'condition': {exc}{hint}") from None
    fields: list[str] = []
    for key in ("reason_da", "reason_en"):
        try:
            fields += template_fields(spec[key], tuple(c for c in schema if c != "person"))
        except TemplateError as exc:
            raise RuleError(f"{where}, key '{key}': {exc}{hint}") from None
    cases = spec["tests"]
    if not isinstance(cases, list):
        raise RuleError(f"{where}, key 'tests': expected a list of cases, got {cases!r}")
    tests = tuple(_case(case, i, where, schema) for i, case in enumerate(cases))
    # A rule is only shown to work when a case makes it fire and another keeps it quiet.
    if {True, False} - {case.fires for case in tests}:
        raise RuleError(f"{where}, key 'tests': needs at least one case with fires: true and one with fires: false")
    names = [case.name for case in tests]
    if len(set(names)) < len(names):
        raise RuleError(f"{where}, key 'tests': case names must differ, got {names}")
    if suppression:
        return SuppressionRule(
            file=file, id=rule_id, **texts, valid_from=spec["valid_from"], condition=spec["condition"].strip(),
            reason_da=spec["reason_da"].strip(), reason_en=spec["reason_en"].strip(), tests=tests,
            value_columns=tuple(dict.fromkeys([*condition_columns, *fields])),
        )
    return Rule(
        file=file, id=rule_id, **texts, legal_duty=_legal_duty(spec, where), valid_from=spec["valid_from"], target=spec["target"],
        priority=spec["priority"], condition=spec["condition"].strip(), reason_da=spec["reason_da"].strip(),
        reason_en=spec["reason_en"].strip(), tests=tests,
        value_columns=tuple(dict.fromkeys([*condition_columns, *fields])),
    )


def _legal_duty(spec: dict[str, Any], where: str) -> str | None:
    """The rule's `why` when it is marked legal_duty: true; a duty without a why, or a why without a duty, is refused."""
    duty = spec.get("legal_duty", False)
    if not isinstance(duty, bool):
        raise RuleError(f"{where}, key 'legal_duty': expected true or false, got {duty!r}")
    if duty and "why" not in spec:
        raise RuleError(f"{where}, key 'why': a rule with legal_duty: true must say why the law requires that every hit reaches a person")
    if not duty and "why" in spec:
        raise RuleError(f"{where}, key 'why': only a rule with legal_duty: true has a why; add legal_duty: true or remove why")
    return _text(spec, "why", where) if duty else None


def _rule_paths(source: Path | str | Iterable[Path | str]) -> list[Path]:
    if isinstance(source, (str, Path)):
        source = Path(source)
        paths = sorted([*source.glob("*.yaml"), *source.glob("*.yml")]) if source.is_dir() else [source]
        if not paths:
            raise RuleError(f"{source.name}: no rule files (*.yaml) in this folder")
    else:
        paths = [Path(p) for p in source]
        if not paths:
            raise RuleError("no rule files given")
    names = [p.name for p in paths]
    if len(set(names)) < len(names):
        raise RuleError(f"rule file names must differ, since the version is built from them; got {names}")
    return paths


def load_rules(source: Path | str | Iterable[Path | str] | None = None) -> RuleSet:
    """Every rule in a folder of rule files (None: the files beside this module, as the config's unset rules.folder) or a list of files."""
    files, rules, suppressions, defined_in = [], [], [], {}
    for path in _rule_paths(RULES_DIR if source is None else source):
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise RuleError(f"{path.name}: cannot read the rule file: {exc.strerror}") from None
        data = _check_keys(load_yaml(raw, path.name, RuleError), _FILE_KEYS, _FILE_OPTIONAL, path.name)
        if not isinstance(data["version"], str):
            raise RuleError(f"{path.name}, key 'version': expected quoted text like '2025.1', got {data['version']!r}")
        owner = _text(data, "owner", path.name)
        kinds = [kind for kind in _FILE_KINDS if kind in data]
        if len(kinds) != 1:
            raise RuleError(
                f"{path.name}: give exactly one of the keys 'rules' (rules that flag) or 'suppressions' "
                f"(rules that keep a flag off the list), got {kinds or 'neither'}"
            )
        kind = kinds[0]
        if not isinstance(data[kind], list) or not data[kind]:
            raise RuleError(f"{path.name}, key '{kind}': expected a non-empty list of rules")
        for index, spec in enumerate(data[kind]):
            rule = _rule(path.name, spec, index, kind)
            noun = "suppression rule" if kind == "suppressions" else "rule"
            if rule.id in defined_in:
                raise RuleError(f"{path.name}: {noun} '{rule.id}', key 'id': already defined in {defined_in[rule.id]}")
            defined_in[rule.id] = path.name
            (suppressions if kind == "suppressions" else rules).append(rule)
        files.append(RuleFile(path.name, data["version"], owner, hashlib.sha256(raw).hexdigest()))
    files.sort(key=lambda f: f.name)
    digest = hashlib.sha256("".join(f"{f.name}\0{f.sha256}\0" for f in files).encode()).hexdigest()
    declared = "+".join(f"{Path(f.name).stem}@{f.version}" for f in files)
    return RuleSet(
        files=tuple(files), rules=tuple(rules), version=f"{declared}#{digest[:12]}", suppressions=tuple(suppressions)
    )


def evaluate(
    ruleset: RuleSet, persons: pl.DataFrame, *, as_of: date | None = None, families: pl.DataFrame | None = None
) -> pl.DataFrame:
    """One row per rule that fired for a person: person, rule_id, priority, legal_duty, family and the values it read.

    A family rule is evaluated over one row per family, built from `families` (parent-child links)
    and the members' rows; when it fires, every member gets a hit carrying the family's id and values.
    Without links no family is known, so family rules fire for nobody. Given as_of, rules not yet
    valid on that day are left out.
    """
    rules = [r for r in ruleset.rules if as_of is None or r.valid_from <= as_of]
    person_rules = [r for r in rules if r.target != "family"]
    family_rules = [r for r in rules if r.target == "family"] if families is not None else []
    needed = {"person", "target"} | {c for r in person_rules for c in r.value_columns}
    needed |= set(MEMBER_COLUMNS) if family_rules else set()
    missing = sorted(needed - set(persons.columns))
    if missing:
        raise RuleError(f"persons lack column(s) {missing} that the rules read; expected: {list(PERSON_SCHEMA)}")
    people = persons.lazy()
    # One filter per rule over everybody; polars runs the concatenated plans in parallel.
    per_rule = [
        people.filter(rule.fires()).select(
            "person",
            pl.lit(rule.id).alias("rule_id"),
            pl.lit(rule.priority, dtype=pl.Int8).alias("priority"),
            pl.lit(rule.legal_duty is not None).alias("legal_duty"),
            *rule.value_columns,
        )
        for rule in person_rules
    ]
    if family_rules:
        missing = sorted({"parent", "child"} - set(families.columns))
        if missing:
            raise RuleError(f"families lack column(s) {missing}; expected parent-child pairs (parent, child)")
        table, members = family_table(persons, families)
        rows, members = table.lazy(), members.lazy()
        per_rule += [
            rows.filter(rule.fires())
            .select(
                "family",
                pl.lit(rule.id).alias("rule_id"),
                pl.lit(rule.priority, dtype=pl.Int8).alias("priority"),
                pl.lit(rule.legal_duty is not None).alias("legal_duty"),
                *rule.value_columns,
            )
            .join(members, on="family")
            for rule in family_rules
        ]
    hits = pl.concat([_EMPTY_HITS.lazy(), *per_rule], how="diagonal_relaxed")
    return hits.sort("person", "priority", "rule_id").collect()


def evaluate_suppressions(ruleset: RuleSet, flags: pl.DataFrame, *, as_of: date | None = None) -> pl.DataFrame:
    """One row per suppression rule that holds for a flagged person: person, rule_id and the values it read."""
    rules = [r for r in ruleset.suppressions if as_of is None or r.valid_from <= as_of]
    needed = {"person"} | {c for r in rules for c in r.value_columns}
    missing = sorted(needed - set(flags.columns))
    if missing:
        raise RuleError(f"flags lack column(s) {missing} that the suppression rules read; expected: {list(SUPPRESSION_SCHEMA)}")
    frame = flags.lazy()
    per_rule = [
        frame.filter(rule.fires()).select("person", pl.lit(rule.id).alias("rule_id"), *rule.value_columns)
        for rule in rules
    ]
    return pl.concat([_EMPTY_SUPPRESSIONS.lazy(), *per_rule], how="diagonal_relaxed").collect()


def run_case(rule: Rule | SuppressionRule, case: RuleCase) -> TestFailure | None:
    """Run one embedded case through the rule's own expression; None when it behaves as written."""
    row = rule.case_row(case.given)
    fired = pl.DataFrame([row], schema=rule.schema).select(rule.fires()).item()
    if fired != case.fires:
        outcome = "fired" if fired else "did not fire"
        problem = f"expected fires: {case.fires}, but it {outcome} on {case.given}"
        return TestFailure(rule.file, rule.id, case.name, problem)
    for language, expected in (("da", case.reason_da), ("en", case.reason_en)):
        if expected is not None and (text := rule.reason_text(row, language)) != expected.strip():
            return TestFailure(rule.file, rule.id, case.name, f"reason_{language}: expected {expected!r}, got {text!r}")
    return None


def run_embedded_tests(ruleset: RuleSet) -> list[TestFailure]:
    """Every embedded case of every rule that does not behave as its file says."""
    every = (*ruleset.rules, *ruleset.suppressions)
    return [failure for rule in every for case in rule.tests if (failure := run_case(rule, case))]
