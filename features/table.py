"""The feature table for an as-of date: linked persons with every catalogue feature."""

from __future__ import annotations

from datetime import date

import polars as pl

from features.compute import compute
from link.persons import children_in_household, families, persons, residency


def feature_table(sources: dict[str, pl.DataFrame], as_of: date) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Persons known on as_of with their features, and the parent-child links used for them."""
    people = persons(sources["population"], as_of)
    links = families(sources["family_relations"], as_of)
    table = compute(people, sources, links, as_of).join(children_in_household(people, links), on="person")
    if "population_events" in sources:
        table = table.join(residency(sources["population_events"], people, as_of), on="person")
    return table, links
