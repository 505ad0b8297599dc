"""Who is scored, and what counts as escalation: written down and versioned so auditors can read it.

Children (cohort version 2, label version 1):
  Scored: children aged 0-17 living in the municipality on the as-of date (not moved away, not
  deceased, as the population register knew it) with no support measure or placement started in
  the 730 days before it (a child with one already has a caseworker).
  Escalation: a support measure or placement for the child starts within the horizon (365 days
  by default) after the as-of date.

Adults (cohort version 2, label version 1; defined, not yet modelled):
  Scored: resident adults 18 and over with no alcohol or drug treatment start in the 730 days before the
  as-of date.
  Escalation: within the horizon, an alcohol or drug treatment starts, or the person receives
  sickness benefit for LONG_SICKNESS_WEEKS weeks or more. Evictions count too once an eviction
  register is connected; no such source exists yet.

A label can only be used once it is known: `known_by` keeps the register rows the municipality
had learned of before that date (sources.known, the one definition of "known" every stage uses),
so temporal evaluation never trains on outcomes from its future.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import polars as pl

from sources.known import known_before

COHORT_VERSION = "resident-children-without-recent-measure/2"
LABEL_VERSION = "support-measure-within-horizon/1"
ADULT_COHORT_VERSION = "resident-adults-without-recent-treatment/2"
ADULT_LABEL_VERSION = "treatment-or-long-sickness-within-horizon/1"
OPEN_CASE_DAYS = 730
RESIDENCY_COLUMNS = ("moved_away", "deceased")
LONG_SICKNESS_WEEKS = 13


@dataclass(frozen=True)
class Definition:
    """A cohort and its escalation label in plain words, as shown to auditors and in model cards."""

    target: str
    cohort_version: str
    label_version: str
    cohort_da: str
    cohort_en: str
    label_da: str
    label_en: str

    def markdown(self, horizon_days: int) -> str:
        """The definition as a short markdown section, in Danish and English."""
        return (
            f"### Hvem scores / who is scored ({self.cohort_version})\n\n{self.cohort_da}\n\n{self.cohort_en}\n\n"
            f"### Hvad tæller som forværring / what counts as escalation ({self.label_version}, "
            f"horisont {horizon_days} dage)\n\n{self.label_da}\n\n{self.label_en}\n"
        )


CHILDREN = Definition(
    target="child",
    cohort_version=COHORT_VERSION,
    label_version=LABEL_VERSION,
    cohort_da=(
        "Børn på 0-17 år, der bor i kommunen på skæringsdatoen (ikke fraflyttet eller døde), og som ikke har fået iværksat en støtteforanstaltning eller "
        f"anbringelse i de {OPEN_CASE_DAYS} dage før. Børn med en åben sag har allerede en rådgiver og scores ikke."
    ),
    cohort_en=(
        "Children aged 0-17 living in the municipality on the as-of date (not moved away or deceased) with no "
        "support measure or placement started in the "
        f"{OPEN_CASE_DAYS} days before it. Children with an open case already have a caseworker and are not scored."
    ),
    label_da=(
        "Barnet får iværksat en støtteforanstaltning (fx familiebehandling, kontaktperson) eller "
        "anbringelse uden for hjemmet inden for horisonten efter skæringsdatoen. Bemærk: det er en "
        "afgørelse truffet af kommunen, ikke et direkte mål for barnets trivsel."
    ),
    label_en=(
        "A support measure (e.g. family treatment, contact person) or an out-of-home placement for the "
        "child starts within the horizon after the as-of date. Note: this is a decision the municipality "
        "made, not a direct measure of the child's wellbeing."
    ),
)

ADULTS = Definition(
    target="adult",
    cohort_version=ADULT_COHORT_VERSION,
    label_version=ADULT_LABEL_VERSION,
    cohort_da=f"Voksne på 18 år og derover, der bor i kommunen, uden en start i alkohol- eller stofbehandling i de {OPEN_CASE_DAYS} dage før skæringsdatoen.",
    cohort_en=f"Adults aged 18 and over living in the municipality with no alcohol or drug treatment start in the {OPEN_CASE_DAYS} days before the as-of date.",
    label_da=(
        f"Inden for horisonten starter personen i alkohol- eller stofbehandling eller modtager sygedagpenge i "
        f"mindst {LONG_SICKNESS_WEEKS} uger. Udsættelser af lejemål tæller med, når et register for dem er tilsluttet."
    ),
    label_en=(
        f"Within the horizon the person starts alcohol or drug treatment, or receives sickness benefit for at "
        f"least {LONG_SICKNESS_WEEKS} weeks. Evictions will count once an eviction register is connected."
    ),
)


def _known(rows: pl.DataFrame, known_by: date | None) -> pl.DataFrame:
    return rows if known_by is None else known_before(rows, known_by)


def open_case_teams(support_measures: pl.DataFrame, as_of: date) -> pl.DataFrame:
    """Persons with a measure started in the last OPEN_CASE_DAYS, with the team holding the case."""
    return (
        known_before(support_measures, as_of).filter(
            pl.col("event_date").is_between(as_of - timedelta(days=OPEN_CASE_DAYS), as_of, closed="right")
        )
        .sort("event_date")
        .group_by("person_id")
        .agg(case_team=pl.col("team").last())
        .rename({"person_id": "person"})
    )


def residents(persons: pl.DataFrame) -> pl.DataFrame:
    """Persons living in the municipality on the as-of date: not moved away, not deceased (link.persons.residency)."""
    missing = [c for c in RESIDENCY_COLUMNS if c not in persons.columns]
    if missing:
        raise ValueError(
            f"the person table has no column(s) {missing}, so who still lives in the municipality is unknown; "
            "build it with features.table.feature_table from sources that include the population_events register"
        )
    return persons.filter(~pl.col("moved_away").fill_null(False) & ~pl.col("deceased").fill_null(False))


def cohort(persons: pl.DataFrame, support_measures: pl.DataFrame, as_of: date) -> pl.DataFrame:
    """Resident children on as_of without an open case: the people the model scores."""
    open_cases = open_case_teams(support_measures, as_of).select("person")
    return residents(persons.filter(pl.col("target") == "child")).join(open_cases, on="person", how="anti")


def escalation(
    cohort: pl.DataFrame, support_measures: pl.DataFrame, as_of: date, horizon_days: int, *, known_by: date | None = None
) -> pl.Series:
    """1 where a support measure or placement started within the horizon after as_of, else 0.

    With known_by, only measures the municipality had learned of by that date count.
    """
    later = (
        _known(support_measures, known_by)
        .filter(pl.col("event_date").is_between(as_of, as_of + timedelta(days=horizon_days), closed="right"))
        .select(person="person_id")
        .unique()
        .with_columns(label=pl.lit(1))
    )
    return cohort.select("person").join(later, on="person", how="left")["label"].fill_null(0).alias("label")


def adult_cohort(persons: pl.DataFrame, substance_treatment: pl.DataFrame, as_of: date) -> pl.DataFrame:
    """Resident adults on as_of without a recent treatment start."""
    recent = known_before(substance_treatment, as_of).filter(
        pl.col("event_date").is_between(as_of - timedelta(days=OPEN_CASE_DAYS), as_of, closed="right")
    ).select(person="person_id")
    return residents(persons.filter(pl.col("target") == "adult")).join(recent, on="person", how="anti")


def adult_escalation(
    cohort: pl.DataFrame,
    substance_treatment: pl.DataFrame,
    benefits: pl.DataFrame,
    as_of: date,
    horizon_days: int,
    *,
    known_by: date | None = None,
) -> pl.Series:
    """1 where a treatment starts or sickness benefit lasts LONG_SICKNESS_WEEKS weeks within the horizon."""
    def within(rows: pl.DataFrame) -> pl.DataFrame:
        return _known(rows, known_by).filter(
            pl.col("event_date").is_between(as_of, as_of + timedelta(days=horizon_days), closed="right")
        )

    treated = within(substance_treatment).select(person="person_id")
    sick = (
        within(benefits.filter(pl.col("benefit") == "sickness"))
        .group_by("person_id")
        .agg(weeks=pl.len())
        .filter(pl.col("weeks") >= LONG_SICKNESS_WEEKS)
        .select(person="person_id")
    )
    escalated = pl.concat([treated, sick]).unique().with_columns(label=pl.lit(1))
    return cohort.select("person").join(escalated, on="person", how="left")["label"].fill_null(0).alias("label")
