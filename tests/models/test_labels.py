"""Who is scored: resident children on the as-of date, with what was known before it."""

from __future__ import annotations

from datetime import date

import polars as pl
import pytest

from link.persons import persons, residency
from models.labels import adult_cohort, cohort, escalation, open_case_teams

AS_OF = date(2025, 6, 1)


def _people() -> pl.DataFrame:
    population = pl.DataFrame({
        "person_id": ["here", "moved", "back", "died", "adult_moved"],
        "birth_date": [date(2015, 1, 1)] * 4 + [date(1980, 1, 1)],
        "sex": ["F", "M", "F", "M", "F"],
        "district": ["Nord"] * 5,
        "event_date": [date(2015, 1, 1)] * 5,
        "known_date": [date(2015, 1, 2)] * 5,
    })
    events = pl.DataFrame({
        "person_id": ["moved", "back", "back", "died", "adult_moved"],
        "event": ["moved_out", "moved_out", "moved_in", "died", "moved_out"],
        "event_date": [date(2025, 3, 1), date(2024, 1, 1), date(2024, 6, 1), date(2025, 2, 1), date(2025, 1, 1)],
        "known_date": [date(2025, 3, 2), date(2024, 1, 2), date(2024, 6, 2), date(2025, 2, 3), date(2025, 1, 2)],
    })
    people = persons(population, AS_OF)
    return people.join(residency(events, people, AS_OF), on="person")


def _measures(rows: list[tuple[str, date, date]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema={"person_id": pl.String, "event_date": pl.Date, "known_date": pl.Date}, orient="row").with_columns(
        team=pl.lit("familie-nord"))


def test_a_child_who_moved_away_or_died_before_the_as_of_date_is_not_scored():
    scored = cohort(_people(), _measures([]), AS_OF)
    assert sorted(scored["person"]) == ["back", "here"]


def test_an_adult_who_moved_away_is_not_scored():
    treatment = pl.DataFrame(schema={"person_id": pl.String, "event_date": pl.Date, "known_date": pl.Date})
    assert adult_cohort(_people(), treatment, AS_OF)["person"].to_list() == []


def test_without_residency_the_cohort_is_refused_with_what_to_do():
    with pytest.raises(ValueError, match=r"no column\(s\) \['moved_away', 'deceased'\].*population_events"):
        cohort(_people().drop("moved_away", "deceased"), _measures([]), AS_OF)


def test_a_measure_known_on_the_as_of_day_is_not_yet_an_open_case():
    measures = _measures([("here", date(2025, 5, 20), AS_OF), ("back", date(2025, 5, 20), date(2025, 5, 31))])
    assert open_case_teams(measures, AS_OF)["person"].to_list() == ["back"]
    assert sorted(cohort(_people(), measures, AS_OF)["person"]) == ["here"]


def test_a_label_known_on_the_known_by_day_does_not_count_yet():
    measures = _measures([("here", date(2025, 9, 1), date(2025, 10, 1))])
    frame = pl.DataFrame({"person": ["here"]})
    assert escalation(frame, measures, AS_OF, 365, known_by=date(2025, 10, 1)).to_list() == [0]
    assert escalation(frame, measures, AS_OF, 365, known_by=date(2025, 10, 2)).to_list() == [1]
