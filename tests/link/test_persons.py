from datetime import date

import polars as pl

from link.persons import children_in_household, families, persons


def _population() -> pl.DataFrame:
    return pl.DataFrame({
        "person_id": ["a", "b", "c", "late"],
        "birth_date": [date(1980, 6, 2), date(2010, 6, 1), date(2010, 6, 2), date(1990, 1, 1)],
        "sex": ["F", "M", "F", "M"],
        "district": ["Nord", "Nord", "Syd", "Øst"],
        "event_date": [date(2000, 1, 1)] * 4,
        "known_date": [date(2000, 1, 1)] * 3 + [date(2025, 7, 1)],
    })


def test_age_counts_birthdays_exactly_and_unknown_residents_are_left_out():
    people = persons(_population(), date(2028, 6, 1))
    assert people["person"].to_list() == ["a", "b", "c", "late"]
    ages = dict(zip(people["person"], people["age_years"]))
    assert ages == {"a": 47, "b": 18, "c": 17, "late": 38}
    assert dict(zip(people["person"], people["target"]))["b"] == "adult"
    assert "late" not in persons(_population(), date(2025, 6, 30))["person"].to_list()


def test_children_in_household_counts_minor_children_known_on_the_date():
    people = persons(_population(), date(2025, 6, 1))
    links = families(pl.DataFrame({
        "parent_id": ["a", "a"], "child_id": ["b", "c"], "relation": ["mother", "mother"],
        "event_date": [date(2010, 6, 1), date(2010, 6, 2)],
        "known_date": [date(2010, 6, 3), date(2030, 1, 1)],
    }), date(2025, 6, 1))
    counts = dict(children_in_household(people, links).iter_rows())
    # c's link is not known yet, and "late" is not a resident yet on this date.
    assert counts == {"a": 1, "b": 0, "c": 0}


def test_residency_follows_the_latest_known_move_and_death():
    from link.persons import residency

    people = persons(_population(), date(2025, 6, 1))
    events = pl.DataFrame({
        "person_id": ["a", "a", "b", "b", "c"],
        "event": ["moved_out", "moved_in", "moved_out", "moved_in", "died"],
        "event_date": [date(2024, 1, 1), date(2024, 6, 1), date(2025, 1, 1), date(2025, 5, 1), date(2025, 2, 1)],
        # b's return is not known yet on the as-of date; neither is anything after it.
        "known_date": [date(2024, 1, 2), date(2024, 6, 2), date(2025, 1, 2), date(2025, 7, 1), date(2025, 2, 3)],
    })
    status = {p: (m, d) for p, m, d in residency(events, people, date(2025, 6, 1)).iter_rows()}
    assert status == {"a": (False, False), "b": (True, False), "c": (False, True)}


def test_rows_known_on_the_as_of_day_are_not_used_the_extract_ends_the_day_before():
    on_the_day = persons(_population(), date(2025, 7, 1))["person"].to_list()
    day_after = persons(_population(), date(2025, 7, 2))["person"].to_list()
    assert "late" not in on_the_day and "late" in day_after
