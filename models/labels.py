"""Who is scored, and what counts as escalation: written down so auditors can read it.

Cohort (version 1): children aged 0-17 on the as-of date who have had no support measure or
placement start in the 730 days before it (they already have a caseworker).
Escalation (version 1): a support measure or placement for the child starts within the horizon
(365 days by default) after the as-of date.
"""

from __future__ import annotations

from datetime import date, timedelta

import polars as pl

COHORT_VERSION = "children-without-recent-measure/1"
LABEL_VERSION = "support-measure-within-horizon/1"
OPEN_CASE_DAYS = 730


def open_case_teams(support_measures: pl.DataFrame, as_of: date) -> pl.DataFrame:
    """Persons with a measure started in the last OPEN_CASE_DAYS, with the team holding the case."""
    return (
        support_measures.filter(
            (pl.col("known_date") <= as_of)
            & pl.col("event_date").is_between(as_of - timedelta(days=OPEN_CASE_DAYS), as_of, closed="right")
        )
        .sort("event_date")
        .group_by("person_id")
        .agg(case_team=pl.col("team").last())
        .rename({"person_id": "person"})
    )


def cohort(persons: pl.DataFrame, support_measures: pl.DataFrame, as_of: date) -> pl.DataFrame:
    """Children on as_of without an open case: the people the model scores."""
    open_cases = open_case_teams(support_measures, as_of).select("person")
    return persons.filter(pl.col("target") == "child").join(open_cases, on="person", how="anti")


def escalation(cohort: pl.DataFrame, support_measures: pl.DataFrame, as_of: date, horizon_days: int) -> pl.Series:
    """1 where a support measure or placement started within the horizon after as_of, else 0."""
    later = (
        support_measures.filter(pl.col("event_date").is_between(as_of, as_of + timedelta(days=horizon_days), closed="right"))
        .select(person="person_id")
        .unique()
        .with_columns(label=pl.lit(1))
    )
    return cohort.select("person").join(later, on="person", how="left")["label"].fill_null(0).alias("label")
