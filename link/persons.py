"""Link persons and families as known on the as-of date, so a parent's signal can reach a child."""

from __future__ import annotations

from datetime import date

import polars as pl

from sources.known import known_before

ADULT_AGE = 18


def persons(population: pl.DataFrame, as_of: date) -> pl.DataFrame:
    """One row per resident known on as_of: person, birth date, sex, district, age, child or adult."""
    return (
        known_before(population, as_of)
        .filter(pl.col("birth_date") <= as_of)
        # The latest known row wins when a resident's record was corrected; sorting by the
        # string id instead would cost more than the rest of linking together.
        .sort("known_date")
        .unique("person_id", keep="last", maintain_order=True)
        .select(
            person=pl.col("person_id"),
            birth_date="birth_date",
            sex="sex",
            district="district",
            # Origin only travels with the person for the fairness audit (models/train.py).
            *(["origin_group"] if "origin_group" in population.columns else []),
            age_years=_age_years(as_of),
        )
        .with_columns(target=pl.when(pl.col("age_years") < ADULT_AGE).then(pl.lit("child")).otherwise(pl.lit("adult")))
    )


def families(family_relations: pl.DataFrame, as_of: date) -> pl.DataFrame:
    """Parent-child pairs known on as_of (columns parent, child, relation)."""
    return (
        known_before(family_relations, as_of)
        .select(parent="parent_id", child="child_id", relation="relation")
        .unique(["parent", "child"])
        .sort("parent", "child")
    )


def children_in_household(persons: pl.DataFrame, families: pl.DataFrame) -> pl.DataFrame:
    """For every person, how many minor children they are a parent of (0 for most)."""
    minors = persons.filter(pl.col("target") == "child").select(child="person")
    counts = families.join(minors, on="child").group_by("parent").agg(children_in_household=pl.len())
    return (
        persons.select("person")
        .join(counts.rename({"parent": "person"}), on="person", how="left")
        .with_columns(pl.col("children_in_household").fill_null(0).cast(pl.Int64))
    )


def _age_years(as_of: date) -> pl.Expr:
    """Whole years of age on as_of, counting birthdays as they really fall."""
    birth = pl.col("birth_date")
    had_birthday = (birth.dt.month() < as_of.month) | ((birth.dt.month() == as_of.month) & (birth.dt.day() <= as_of.day))
    return (as_of.year - birth.dt.year() - (~had_birthday).cast(pl.Int32)).cast(pl.Int64)


def residency(population_events: pl.DataFrame, persons: pl.DataFrame, as_of: date) -> pl.DataFrame:
    """For every person: moved_away (their latest known move was out) and deceased, as known on as_of."""
    events = known_before(population_events, as_of).filter(pl.col("event_date") <= as_of)
    died = events.filter(pl.col("event") == "died").select(person="person_id").unique().with_columns(deceased=pl.lit(True))
    latest_move = (
        events.filter(pl.col("event").is_in(["moved_in", "moved_out"]))
        .sort("event_date", "known_date")
        .group_by("person_id")
        .agg(moved_away=pl.col("event").last() == "moved_out")
        .rename({"person_id": "person"})
    )
    return (
        persons.select("person")
        .join(latest_move, on="person", how="left")
        .join(died, on="person", how="left")
        .with_columns(pl.col("moved_away", "deceased").fill_null(False))
    )
