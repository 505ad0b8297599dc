"""The polars features equal a slow, obvious row-by-row reference, and ignore the future."""

from __future__ import annotations

from datetime import date, timedelta

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from features.catalogue import CATALOGUE, Feature
from features.compute import compute

AS_OF = date(2025, 6, 1)
PEOPLE = ["p1", "p2", "p3", "c1", "c2"]
FAMILIES = [("p1", "c1"), ("p2", "c1"), ("p3", "c2")]
CODES = {"notifier": ["school", "police"], "benefit": ["cash_benefit", "sickness", "unemployment"], "substance": ["alcohol", "drugs"]}


def reference(feature: Feature, events: list[dict], person: str, as_of: date):
    """What a caseworker would count by hand for one person."""
    def own_value(who: str):
        rows = []
        for row in events:
            if row["person_id"] != who or row["known_date"] > as_of or row["event_date"] > as_of:
                continue
            if feature.window_days is not None and row["event_date"] <= as_of - timedelta(days=feature.window_days):
                continue
            if any(row[c] not in allowed for c, allowed in feature.where.items()):
                continue
            rows.append(row)
        if feature.agg == "count":
            return len(rows)
        if not rows:
            return None
        if feature.agg == "mean":
            return sum(r[feature.column] for r in rows) / len(rows)
        return (as_of - max(r["event_date"] for r in rows)).days

    if feature.of == "self":
        value = own_value(person)
    else:
        parents = [own_value(p) for p, c in FAMILIES if c == person]
        parents = [v for v in parents if v is not None]
        if not parents:
            value = None
        elif feature.over_parents == "parents_with_any":
            value = sum(1 for v in parents if v > 0)
        else:
            value = max(parents)
    if feature.agg == "count" and value is None:
        return 0
    return value


event = st.fixed_dictionaries({
    "person_id": st.sampled_from(PEOPLE),
    # Window edges and the as-of date itself are where off-by-one bugs live.
    "event_offset": st.one_of(st.integers(-800, 30), st.sampled_from([-366, -365, -364, -91, -90, -89, -1, 0, 1])),
    "delay": st.one_of(st.integers(0, 90), st.just(0)),
    "absence_pct": st.floats(0, 100, allow_nan=False),
    "notifier": st.sampled_from(CODES["notifier"]),
    "benefit": st.sampled_from(CODES["benefit"]),
    "substance": st.sampled_from(CODES["substance"]),
})


def _frame(rows: list[dict]) -> pl.DataFrame:
    schema = {"person_id": pl.Utf8, "event_date": pl.Date, "known_date": pl.Date, "absence_pct": pl.Float64,
              "notifier": pl.Utf8, "benefit": pl.Utf8, "substance": pl.Utf8}
    return pl.DataFrame(rows, schema=schema)


def _events(raw: list[dict]) -> list[dict]:
    out = []
    for r in raw:
        event_date = AS_OF + timedelta(days=r["event_offset"])
        out.append({**{k: v for k, v in r.items() if k not in ("event_offset", "delay")},
                    "event_date": event_date, "known_date": event_date + timedelta(days=r["delay"])})
    return out


def _persons() -> pl.DataFrame:
    return pl.DataFrame({"person": PEOPLE})


def _families() -> pl.DataFrame:
    return pl.DataFrame({"parent": [p for p, _ in FAMILIES], "child": [c for _, c in FAMILIES]})


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(event, max_size=40))
def test_every_feature_matches_the_row_by_row_reference(raw):
    events = _events(raw)
    frame = _frame(events)
    sources = {name: frame for name in {f.source for f in CATALOGUE}}
    table = compute(_persons(), sources, _families(), AS_OF).sort("person")
    for feature in CATALOGUE:
        for person, got in zip(table["person"], table[feature.name]):
            expected = reference(feature, events, person, AS_OF)
            if isinstance(expected, float) and got is not None:
                assert abs(got - expected) < 1e-9, (feature.name, person)
            else:
                assert got == expected, (feature.name, person, got, expected)


@settings(max_examples=40, deadline=None)
@given(st.lists(event, max_size=30), st.lists(event, min_size=1, max_size=10))
def test_rows_known_after_the_as_of_date_change_nothing(raw, late_raw):
    events = _events(raw)
    late = [dict(e, known_date=AS_OF + timedelta(days=1 + i)) for i, e in enumerate(_events(late_raw))]
    before = compute(_persons(), {n: _frame(events) for n in {f.source for f in CATALOGUE}}, _families(), AS_OF)
    after = compute(_persons(), {n: _frame(events + late) for n in {f.source for f in CATALOGUE}}, _families(), AS_OF)
    assert before.sort("person").equals(after.sort("person"))


def test_every_feature_says_why_and_names_are_unique():
    names = [f.name for f in CATALOGUE]
    assert len(names) == len(set(names))
    for feature in CATALOGUE:
        assert feature.why.strip(), feature.name
        assert (feature.of == "parents") == (feature.over_parents is not None), feature.name
