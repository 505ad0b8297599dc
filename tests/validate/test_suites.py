"""Suites are derived from the registry: every rule there becomes a GX expectation."""

from __future__ import annotations

import re
from datetime import date, timedelta

import pytest

from validate.suites import DATE, ISO_DATE, NUMBER, build_suite


def kinds(suite) -> set[tuple[str, str]]:
    return {(e.meta["check"], str(e.meta["column"])) for e in suite.expectations}


def test_school_absence_suite_holds_every_registry_rule(registry):
    suite = build_suite(registry["school_absence"])
    assert suite.name == "school_absence"
    assert kinds(suite) == {
        ("missing", "person_id"), ("pattern", "person_id"), ("cpr_date", "person_id"), ("reference", "person_id"),
        ("missing", "event_date"), ("date", "event_date"), ("future", "event_date"),
        ("missing", "absence_pct"), ("float", "absence_pct"), ("range", "absence_pct"),
        ("missing", "known_date"), ("date", "known_date"), ("future", "known_date"),
        ("missing", "version"), ("int", "version"), ("range", "version"),
        ("unique", "['person_id', 'event_date']"), ("duplicate", "['person_id', 'event_date']"),
        ("superseded", "version"), ("order", "known_date"),
    }
    between = next(e for e in suite.expectations if e.meta["check"] == "range")
    assert (between.column, between.min_value, between.max_value) == ("absence_pct__number", 0, 100)


def test_nullable_column_has_no_not_null_rule_and_sets_become_in_set(registry):
    suite = build_suite(registry["support_measures"])
    assert ("missing", "team") not in kinds(suite)
    in_set = next(e for e in suite.expectations if e.meta["check"] == "in_set")
    assert in_set.value_set == ["family_treatment", "contact_person", "placement"]


def test_every_registered_source_builds_a_suite(registry):
    for source in registry.values():
        assert build_suite(source).expectations, source.name


def test_date_rule_accepts_exactly_the_real_calendar_dates():
    day, rule = date(1996, 1, 1), re.compile(ISO_DATE)
    while day < date(2030, 1, 1):
        assert rule.search(day.isoformat()), day
        day += timedelta(days=1)
    for text in ["2024-02-30", "2023-02-29", "2100-02-29", "2024-04-31", "2024-13-01", "2024-00-10",
                 "31-02-2024", "2024-1-5", "20240105", "2024-01-05 ", "0224-01-05", "2024-01-05\n"]:
        assert not rule.search(text), text
    assert rule.search("2000-02-29") and rule.search("2024-02-29")


def test_danish_dates_are_real_calendar_dates_too():
    day, rule = date(1996, 1, 1), re.compile(DATE)
    while day < date(2030, 1, 1):
        assert rule.search(day.strftime("%d-%m-%Y")) and rule.search(day.isoformat()), day
        day += timedelta(days=1)
    for text in ["31-02-2024", "29-02-2023", "29-02-2100", "31-04-2024", "01-13-2024", "1-1-2024", "01.01.2024", "01-01-24"]:
        assert not rule.search(text), text


@pytest.mark.parametrize(("text", "ok"), [("12", True), ("12.5", True), ("12,5", True), ("-1e3", True),
                                          ("NaN", False), ("inf", False), ("1.2.3", False), ("", False), ("12 %", False)])
def test_number_rule(text, ok):
    assert bool(re.search(NUMBER, text)) is ok
