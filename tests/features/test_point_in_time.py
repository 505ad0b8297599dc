"""The polars features equal a slow, obvious row-by-row reference, and ignore the future."""

from __future__ import annotations

from datetime import date, timedelta

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from features.catalogue import CATALOGUE, COUNT_LIKE, SPELL_GAP_DAYS, Feature
from features.compute import compute, feature_schema

AS_OF = date(2025, 6, 1)
PEOPLE = ["p1", "p2", "p3", "c1", "c2", "c3", "c4"]
# c1 and c3 share both parents (siblings once, not twice); c4 is a half-sibling of c1 and c3
# through p1 and of c2 through p3; p3 is a father with two mothers' children.
FAMILIES = [("p1", "c1", "mother"), ("p2", "c1", "father"), ("p1", "c3", "mother"), ("p2", "c3", "father"),
            ("p3", "c2", "father"), ("p1", "c4", "mother"), ("p3", "c4", "father")]
CODES = {
    "notifier": ["school", "police"], "benefit": ["cash_benefit", "sickness", "unemployment"], "substance": ["alcohol", "drugs"],
    "service": ["health_visitor", "dental"], "outcome": ["attended", "missed"], "stage": ["notice", "executed"],
}
SOURCES = {f.source for f in CATALOGUE}


def rows_of(feature: Feature, events: list[dict], who: str, as_of: date, *, windows_back: int = 0) -> list[dict]:
    """The person's rows known before as_of (the extract ends the day before) and happened by then, in the
    feature's window (or one further back)."""
    end = as_of - timedelta(days=(feature.window_days or 0) * windows_back)
    rows = []
    for row in events:
        if row["person_id"] != who or row["known_date"] >= as_of or row["event_date"] > end:
            continue
        if feature.window_days is not None and row["event_date"] <= end - timedelta(days=feature.window_days):
            continue
        if any(row[c] not in allowed for c, allowed in feature.where.items()):
            continue
        rows.append(row)
    return rows


def longest_spell(dates: list[date]) -> int:
    """Walk the distinct dates in order, counting how many follow each other within the gap."""
    longest, run, previous = 0, 0, None
    for day in sorted(set(dates)):
        run = run + 1 if previous is not None and (day - previous).days <= SPELL_GAP_DAYS else 1
        longest, previous = max(longest, run), day
    return longest


def _mean(rows: list[dict], column: str):
    return sum(r[column] for r in rows) / len(rows) if rows else None


def own_value(feature: Feature, events: list[dict], who: str, as_of: date):
    """What a caseworker would count by hand from one person's own rows."""
    rows = rows_of(feature, events, who, as_of)
    if feature.agg == "count":
        return len(rows)
    if feature.agg == "longest_spell_weeks":
        return longest_spell([r["event_date"] for r in rows])
    if feature.agg == "mean":
        return _mean(rows, feature.column)
    if feature.agg == "change_in_mean":
        now, before = _mean(rows, feature.column), _mean(rows_of(feature, events, who, as_of, windows_back=1), feature.column)
        return None if now is None or before is None else now - before
    return (as_of - max(r["event_date"] for r in rows)).days if rows else None


def siblings_of(child: str) -> set[str]:
    parents = {p for p, c, _ in FAMILIES if c == child}
    return {c for p, c, _ in FAMILIES if p in parents and c != child}


def reference(feature: Feature, events: list[dict], person: str, as_of: date) -> tuple[object, str | None]:
    """The person's value, and for parents' features which parent it is about."""
    if feature.of == "self":
        return own_value(feature, events, person, as_of), None
    if feature.of == "siblings":
        return sum(own_value(feature, events, s, as_of) for s in siblings_of(person)), None
    parents = [(relation, own_value(feature, events, p, as_of)) for p, c, relation in FAMILIES if c == person]
    known = [v for _, v in parents if v is not None]
    if feature.over == "parents_with_any":
        value = sum(1 for v in known if v > 0)
        behind = [r for r, v in parents if v is not None and v > 0]
    elif not known:
        value, behind = None, []
    else:
        value = max(known) if feature.over == "max" else min(known)
        behind = [r for r, v in parents if v == value and (v > 0 or feature.agg not in COUNT_LIKE)]
    if value is None and feature.agg in COUNT_LIKE:
        value = 0
    return value, None if not behind else behind[0] if len(behind) == 1 else "both"


weekly = st.integers(-60, 0).map(lambda w: 7 * w)
event = st.fixed_dictionaries({
    "person_id": st.sampled_from(PEOPLE),
    # Window edges and the as-of date itself are where off-by-one bugs live; weekly dates (and
    # dates a day off them) make benefit spells and the edges of their gaps.
    "event_offset": st.one_of(st.integers(-800, 30), st.sampled_from([-366, -365, -364, -181, -180, -179, -91, -90, -89, -1, 0, 1]),
                              weekly, weekly.map(lambda d: d + 1)),
    "delay": st.one_of(st.integers(0, 90), st.just(0)),
    "absence_pct": st.floats(0, 100, allow_nan=False),
    **{column: st.sampled_from(values) for column, values in CODES.items()},
})


def _frame(rows: list[dict]) -> pl.DataFrame:
    schema = {"person_id": pl.Utf8, "event_date": pl.Date, "known_date": pl.Date, "absence_pct": pl.Float64} | {c: pl.Utf8 for c in CODES}
    return pl.DataFrame(rows, schema=schema)


def _events(raw: list[dict]) -> list[dict]:
    out = []
    for r in raw:
        event_date = AS_OF + timedelta(days=r["event_offset"])
        out.append({**{k: v for k, v in r.items() if k not in ("event_offset", "delay")},
                    "event_date": event_date, "known_date": event_date + timedelta(days=r["delay"])})
    return out


def _compute(events: list[dict], catalogue: tuple[Feature, ...] = CATALOGUE) -> pl.DataFrame:
    persons = pl.DataFrame({"person": PEOPLE})
    families = pl.DataFrame(FAMILIES, schema=["parent", "child", "relation"], orient="row")
    return compute(persons, {name: _frame(events) for name in SOURCES}, families, AS_OF, catalogue).sort("person")


def _check(feature: Feature, table: pl.DataFrame, events: list[dict]) -> None:
    parents = table[f"{feature.name}_parent"] if feature.names_parent else [None] * table.height
    for person, got, got_parent in zip(table["person"], table[feature.name], parents):
        expected, expected_parent = reference(feature, events, person, AS_OF)
        if isinstance(expected, float) and got is not None:
            assert abs(got - expected) < 1e-9, (feature.name, person, got, expected)
        else:
            assert got == expected, (feature.name, person, got, expected)
        assert got_parent == expected_parent, (feature.name, person, got_parent, expected_parent)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(event, max_size=40))
def test_every_feature_matches_the_row_by_row_reference(raw):
    events = _events(raw)
    table = _compute(events)
    for feature in CATALOGUE:
        _check(feature, table, events)


KINDS = {
    "trend": lambda f: f.agg == "change_in_mean",
    "spell": lambda f: f.agg == "longest_spell_weeks",
    "siblings": lambda f: f.of == "siblings",
    "parents": lambda f: f.of == "parents",
    "recency": lambda f: f.agg == "days_since_last",
}


@pytest.mark.parametrize("kind", list(KINDS))
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=st.lists(event, min_size=5, max_size=60))
def test_each_kind_of_feature_matches_the_reference_alone(kind, raw):
    # Alone, a kind is computed in a plan of its own: it must not lean on another feature's rows.
    features = tuple(f for f in CATALOGUE if KINDS[kind](f))
    assert features, f"the catalogue has no {kind} feature"
    events = _events(raw)
    table = _compute(events, features)
    for feature in features:
        _check(feature, table, events)


@settings(max_examples=40, deadline=None)
@given(st.lists(event, max_size=30), st.lists(event, min_size=1, max_size=10))
def test_rows_known_on_or_after_the_as_of_date_change_nothing(raw, late_raw):
    events = _events(raw)
    # The first late row becomes known on the as-of day itself: the nightly extract ends the day before.
    late = [dict(e, known_date=AS_OF + timedelta(days=i)) for i, e in enumerate(_events(late_raw))]
    assert _compute(events).equals(_compute(events + late))


def test_a_row_known_on_the_as_of_day_is_not_used_and_one_known_the_day_before_is():
    day = AS_OF - timedelta(days=10)
    row = {"person_id": "c1", "event_date": day, "absence_pct": 0.0, **{c: v[0] for c, v in CODES.items()}}
    on_the_day = _compute([dict(row, known_date=AS_OF)]).filter(pl.col("person") == "c1")
    day_before = _compute([dict(row, known_date=AS_OF - timedelta(days=1))]).filter(pl.col("person") == "c1")
    assert on_the_day["notifications_365d"].item() == 0
    assert day_before["notifications_365d"].item() == 1


def test_spells_count_weeks_in_a_row_and_break_on_a_gap():
    # The latest week is the day before the as-of date: a row is known only before it.
    week = [AS_OF - timedelta(days=1 + 7 * k) for k in range(5)]
    assert longest_spell([week[4], week[3], week[2], week[0]]) == 3
    events = [{"person_id": "p1", "event_date": d, "known_date": d, "absence_pct": 0.0, **{c: v[0] for c, v in CODES.items()}}
              for d in [week[4] - timedelta(days=8), week[4], week[3], week[2], week[2], week[0]]]
    table = _compute(events).filter(pl.col("person") == "p1")
    assert table["longest_benefit_spell_weeks_365d"].item() == 3  # the same week twice is one week
    assert table["benefit_weeks_365d"].item() == 6
    children = _compute(events).filter(pl.col("person").is_in(["c1", "c4"]))
    assert children["parent_longest_benefit_spell_weeks_365d"].to_list() == [3, 3]
    assert children["parent_longest_benefit_spell_weeks_365d_parent"].to_list() == ["mother", "mother"]


def test_siblings_are_counted_once_and_a_child_is_not_its_own_sibling():
    assert siblings_of("c1") == {"c3", "c4"} and siblings_of("c2") == {"c4"} and siblings_of("c4") == {"c1", "c2", "c3"}
    day = AS_OF - timedelta(days=10)
    events = [{"person_id": who, "event_date": day, "known_date": day, "absence_pct": 0.0, **{c: v[0] for c, v in CODES.items()}}
              for who in ("c1", "c3", "c3")]
    table = _compute(events)
    assert dict(zip(table["person"], table["siblings_notifications_365d"])) == {
        "p1": 0, "p2": 0, "p3": 0, "c1": 2, "c2": 0, "c3": 1, "c4": 3}


def test_every_feature_says_why_and_names_are_unique():
    names = [f.name for f in CATALOGUE]
    assert len(names) == len(set(names))
    for feature in CATALOGUE:
        assert feature.why.strip(), feature.name
        assert (feature.of == "self") == (feature.over is None), feature.name
        assert feature.over in {"self": (None,), "parents": ("parents_with_any", "max", "min"), "siblings": ("sum",)}[feature.of]
        assert feature.texts.get("da") and feature.texts.get("en"), feature.name


def test_a_missing_source_is_named():
    with pytest.raises(ValueError, match=r"needs source\(s\) \['benefits'\]"):
        compute(pl.DataFrame({"person": PEOPLE}), {name: _frame([]) for name in SOURCES - {"benefits"}},
                pl.DataFrame(FAMILIES, schema=["parent", "child", "relation"], orient="row"), AS_OF)


def test_feature_schema_says_the_columns_and_types_compute_gives():
    table = _compute([])
    assert dict(table.drop("person").schema) == feature_schema()
