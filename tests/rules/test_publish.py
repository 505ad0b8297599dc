"""Rules versions in the audit log: a run records a version it meets first; a publisher names themself."""

from __future__ import annotations

import pytest

from audit.log import read, verify
from casework.store import Store
from rules.engine import RULES_DIR, load_rules
from rules.publish import history, record_version


@pytest.fixture
def engine(tmp_path):
    store = Store.from_url(f"sqlite:///{tmp_path / 'tidlig.db'}")
    store.create_schema()
    yield store.engine
    store.close()


def edited(tmp_path, text_from: str, text_to: str):
    folder = tmp_path / "rules"
    folder.mkdir()
    for path in RULES_DIR.glob("*.yaml"):
        (folder / path.name).write_text(path.read_text(encoding="utf-8").replace(text_from, text_to), encoding="utf-8")
    return load_rules(folder)


def test_a_run_records_a_new_version_once_with_nobody_named(engine):
    rules = load_rules()
    first = record_version(engine, rules, run_id="run-1")
    assert (first.version, first.published_by, first.run_id) == (rules.version, None, "run-1")
    assert record_version(engine, rules, run_id="run-2") is None
    [entry] = read(engine, kind="rules.changed")
    assert entry.actor == "system"
    assert [f["name"] for f in entry.payload["files"]] == ["adults.yaml", "children.yaml", "families.yaml", "suppression.yaml"]
    assert entry.payload["files"][1]["owner"] == "Familieafdelingen, Børne- og Ungerådgivningen"


def test_a_publisher_is_named_even_after_a_run_met_the_version_and_only_once(engine):
    rules = load_rules()
    record_version(engine, rules, run_id="run-1")
    published = record_version(engine, rules, by="Mette Jensen")
    assert (published.published_by, published.run_id) == ("Mette Jensen", None)
    assert record_version(engine, rules, by="Someone Else") is None
    assert read(engine, kind="rules.changed")[-1].actor == "Mette Jensen"
    assert verify(engine).ok


def test_a_changed_rule_is_a_new_version_that_names_the_one_before(engine, tmp_path):
    before = load_rules()
    after = edited(tmp_path, "school_absence_pct_90d >= 15", "school_absence_pct_90d >= 12")
    record_version(engine, before, run_id="run-1")
    record_version(engine, after, by="Mette Jensen")
    assert [(r.version, r.published_by) for r in history(engine)] == [(before.version, None), (after.version, "Mette Jensen")]
    assert read(engine, kind="rules.changed")[-1].payload["previous_version"] == before.version


def test_publishing_needs_a_name(engine):
    with pytest.raises(ValueError, match="publisher's name"):
        record_version(engine, load_rules(), by="  ")
