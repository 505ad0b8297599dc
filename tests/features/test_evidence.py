"""The rows listed behind a feature are exactly the rows its value was computed from."""

from __future__ import annotations

import dataclasses
import random
from datetime import date, timedelta

import polars as pl
import pytest

from features.catalogue import CATALOGUE, Feature
from features.compute import compute
from features.evidence import EVIDENCE_SCHEMA, EvidenceError, check_supported, evidence

AS_OF = date(2025, 6, 1)
PEOPLE = ["p1", "p2", "p3", "c1", "c2", "c3"]
FAMILIES = pl.DataFrame({"parent": ["p1", "p2", "p3", "p3"], "child": ["c1", "c1", "c2", "c3"],
                         "relation": ["mother", "father", "mother", "mother"]})
CODES = {"benefit": ["cash_benefit", "sickness", "unemployment"], "substance": ["alcohol", "drugs"],
         "service": ["health_visitor", "dental"], "outcome": ["attended", "missed"], "stage": ["notice", "executed"]}


def _sources() -> dict[str, pl.DataFrame]:
    # Events around every window edge, some learned of only after the as-of date.
    rng = random.Random(11)
    rows = []
    for _ in range(150):
        event_date = AS_OF - timedelta(days=rng.choice([rng.randint(-20, 800)] * 6 + [0, 89, 90, 364, 365]))
        rows.append(dict(
            person_id=rng.choice(PEOPLE), event_date=event_date,
            known_date=event_date + timedelta(days=rng.choice([0, 3, 40])),
            absence_pct=rng.choice([None, rng.uniform(0, 40)]),
            **{column: rng.choice(values) for column, values in CODES.items()},
        ))
    frame = pl.DataFrame(rows, schema={"person_id": pl.String, "event_date": pl.Date, "known_date": pl.Date,
                                       "absence_pct": pl.Float64} | {column: pl.String for column in CODES})
    return {name: frame for name in {f.source for f in CATALOGUE}}


SOURCES = _sources()
VALUES = compute(pl.DataFrame({"person": PEOPLE}), SOURCES, FAMILIES, AS_OF)


def _behind(feature: Feature, person: str) -> pl.DataFrame:
    return evidence(SOURCES, FAMILIES, {person: [feature.name]}, AS_OF, catalogue=(feature,))


def _value(feature: Feature, person: str):
    return VALUES.filter(pl.col("person") == person)[feature.name].item()


@pytest.mark.parametrize("feature", [f for f in CATALOGUE if f.of == "self"], ids=lambda f: f.name)
def test_a_persons_rows_give_the_features_value(feature):
    for person in PEOPLE:
        rows, value = _behind(feature, person), _value(feature, person)
        assert (rows["known_date"] < AS_OF).all() and (rows["event_date"] <= AS_OF).all()
        if feature.agg == "count":
            assert rows.height == value, (person, rows.height, value)
        elif feature.agg == "days_since_last":
            assert (value is None) == rows.is_empty()
            assert value is None or {(AS_OF - d).days for d in rows["event_date"]} == {value}
        elif feature.agg == "mean":
            assert (value is None) == rows.is_empty()
            expected = SOURCES[feature.source].filter(
                pl.col("person_id") == person, pl.col("known_date") < AS_OF, pl.col(feature.column).is_not_null(),
                pl.col("event_date") > AS_OF - timedelta(days=feature.window_days), pl.col("event_date") <= AS_OF,
            )
            assert rows.height == expected.height
        elif feature.agg == "change_in_mean":
            # Both windows' rows: the trend has a value only when each window has one.
            expected = SOURCES[feature.source].filter(
                pl.col("person_id") == person, pl.col("known_date") < AS_OF, pl.col(feature.column).is_not_null(),
                pl.col("event_date") > AS_OF - timedelta(days=2 * feature.window_days), pl.col("event_date") <= AS_OF,
            )
            assert rows.height == expected.height and (value is None or rows.height >= 2)
        elif feature.agg == "longest_spell_weeks":
            # Every row in the window; the longest spell is some of them, on distinct dates.
            assert rows.height >= value and (rows.height > 0) == (value > 0)
            assert rows["event_date"].n_unique() >= value
        else:
            pytest.fail(f"no check for aggregate {feature.agg!r}: add one")


@pytest.mark.parametrize("feature", [f for f in CATALOGUE if f.of == "parents"], ids=lambda f: f.name)
def test_a_parent_feature_lists_every_parents_rows(feature):
    own = dataclasses.replace(feature, of="self", over=None)
    for child, parents in (("c1", ["p1", "p2"]), ("c2", ["p3"]), ("c3", ["p3"]), ("p1", [])):
        rows = _behind(feature, child)
        from_parents = pl.concat([_behind(own, parent) for parent in parents]) if parents else rows.clear()
        assert sorted(rows.drop("person").rows()) == sorted(from_parents.drop("person").rows())
        assert (rows["person"] == child).all()
        if feature.agg == "count":
            assert (rows.height > 0) == (_value(feature, child) > 0)


@pytest.mark.parametrize("feature", [f for f in CATALOGUE if f.of == "siblings"], ids=lambda f: f.name)
def test_a_siblings_feature_lists_every_siblings_rows(feature):
    own = dataclasses.replace(feature, of="self", over=None)
    for child, siblings in (("c2", ["c3"]), ("c3", ["c2"]), ("c1", [])):
        rows = _behind(feature, child)
        from_siblings = pl.concat([_behind(own, s) for s in siblings]) if siblings else rows.clear()
        assert sorted(rows.drop("person").rows()) == sorted(from_siblings.drop("person").rows())
        assert rows.height == _value(feature, child)


def test_only_the_register_and_the_dates_are_kept():
    names = {f.name: f for f in CATALOGUE}
    found = evidence(SOURCES, FAMILIES, {"c1": list(names), "p1": ["benefit_weeks_365d", "score", "age"]}, AS_OF)
    assert found.schema == pl.Schema(EVIDENCE_SCHEMA)
    assert set(found["source"]) <= {f.source for f in CATALOGUE}
    # Names outside the catalogue (the score, the household) come from no register's rows.
    assert set(found.filter(pl.col("person") == "p1")["feature"]) == {"benefit_weeks_365d"}


def test_nobody_wanted_gives_an_empty_frame_of_the_same_shape():
    assert evidence(SOURCES, FAMILIES, {}, AS_OF).schema == pl.Schema(EVIDENCE_SCHEMA)


def test_every_catalogue_feature_is_supported():
    for feature in CATALOGUE:
        check_supported(feature)


def test_an_unknown_kind_of_feature_is_refused_by_name():
    trend = dataclasses.replace(CATALOGUE[0], name="notifications_trend", agg="trend")
    with pytest.raises(EvidenceError, match="notifications_trend.*'trend'.*features/evidence.py"):
        evidence(SOURCES, FAMILIES, {"c1": ["notifications_trend"]}, AS_OF, catalogue=(trend,))
    cousins = dataclasses.replace(CATALOGUE[0], name="cousins_notifications", of="cousins")
    with pytest.raises(EvidenceError, match="cousins_notifications.*of='cousins'"):
        check_supported(cousins)

    @dataclasses.dataclass(frozen=True)
    class Spell(Feature):
        min_weeks: int | None = None

    with pytest.raises(EvidenceError, match="long_spell.*min_weeks=13"):
        check_supported(Spell(**{**dataclasses.asdict(CATALOGUE[0]), "name": "long_spell", "min_weeks": 13}))
    check_supported(Spell(**dataclasses.asdict(CATALOGUE[0])))  # a new field left at its default changes nothing


def test_a_source_missing_from_the_frames_is_named():
    with pytest.raises(EvidenceError, match="notifications"):
        evidence({}, FAMILIES, {"c1": ["notifications_365d"]}, AS_OF)
