"""A synthetic municipality: seeded registers with a documented causal story and a hidden truth.

The causal story, which the pipeline has to rediscover from the registers alone:

1. Residents live in households. Families with children have one or two parents; the rest are
   adults living without children. Each household lives in one of four school districts.
2. Some families carry hidden parental problems, each with an onset date: substance abuse
   (about 9% of children have a parent with alcohol or drug problems), mental illness, and a
   propensity for long spells on benefits.
3. From an onset on, a child's weekly *strain* rises. Strain raises the child's school absence,
   the rate of notifications (underretninger) from school, daycare, health staff and police, and
   the weekly hazard of a support measure or placement. Teenagers may also develop their own
   behavioural problems, the most common placement reason, which no parental register shows.
4. A parent with substance abuse starts treatment with a small weekly hazard (most abusers go
   untreated for years); treatment halves the strain the abuse puts on the children.
5. Every register row has an event date and a later knowledge date, after a delay typical of
   its source (treatment starts reach the municipality weeks late).

The hidden variables and each child's true 12-month escalation risk at the end date (the
oracle) go to a separate ground-truth table, for evaluation only; the pipeline never reads it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl

DISTRICTS = ("Nord", "Syd", "Øst", "Vest")
# Deprivation differs between districts; it raises the chance of parental problems a little.
DISTRICT_PROBLEM_FACTOR = np.array([1.3, 0.8, 1.0, 1.1])
# The family team that holds a child's case, by school district (team ids of routing/teams.yaml).
FAMILY_TEAMS = {"Nord": "familie-nord", "Syd": "familie-syd", "Øst": "familie-oest", "Vest": "familie-vest"}
BENEFITS = ("unemployment", "cash_benefit", "sickness", "flex_job")
MEASURE_WEEKS_OPEN = 104


@dataclass(frozen=True)
class SynthSpec:
    """How big, which seed, and which stretch of register history."""

    persons: int
    seed: int
    start: date
    end: date


@dataclass(frozen=True)
class Municipality:
    """The generated registers (one frame per source in the registry) and the hidden truth."""

    extracts: dict[str, pl.DataFrame]
    ground_truth: pl.DataFrame

    def write(self, out: Path) -> Path:
        """Write extracts as Parquet to out/extracts and the truth to out/ground_truth.parquet."""
        folder = out / "extracts"
        folder.mkdir(parents=True, exist_ok=True)
        for name, frame in self.extracts.items():
            frame.write_parquet(folder / f"{name}.parquet")
        self.ground_truth.write_parquet(out / "ground_truth.parquet")
        return folder


def _cpr_ids(birth: np.ndarray, male: np.ndarray) -> np.ndarray:
    """CPR-like ids DDMMYY-SSSS, unique, with the last digit odd for men as in the real register."""
    frame = pl.DataFrame({"birth": birth, "male": male}).with_columns(
        nth=pl.int_range(pl.len()).over("birth")
    )
    serial = 1000 + 2 * frame["nth"].to_numpy() + frame["male"].to_numpy().astype(int)
    days = pl.Series(birth).dt.strftime("%d%m%y").to_numpy()
    return np.array([f"{d}-{s:04d}" for d, s in zip(days, serial)])


def _households(rng: np.random.Generator, spec: SynthSpec) -> pl.DataFrame:
    """One row per resident: household, role, age, sex, district and hidden family problems."""
    children_wanted = int(0.2 * spec.persons)
    kids_per_family = rng.choice([1, 2, 3], p=[0.40, 0.42, 0.18], size=max(1, children_wanted))
    kids_per_family = kids_per_family[np.cumsum(kids_per_family) <= max(1, children_wanted)]
    n_families = len(kids_per_family)
    two_parents = rng.random(n_families) < 0.75
    n_parents = np.where(two_parents, 2, 1)
    in_families = int(kids_per_family.sum() + n_parents.sum())
    n_single = max(0, spec.persons - in_families)
    n_house = n_families + n_single

    district = rng.integers(0, len(DISTRICTS), n_house)
    factor = DISTRICT_PROBLEM_FACTOR[district]
    abuse = rng.random(n_house) < 0.085 * factor
    mental = rng.random(n_house) < 0.06 * factor
    prone = rng.random(n_house) < 0.12 * factor + 0.25 * (abuse | mental)

    span_days = (spec.end - spec.start).days
    def onset() -> np.ndarray:
        return rng.integers(-3 * 365, span_days, n_house)

    houses = pl.DataFrame({
        "household": np.arange(n_house),
        "district": np.array(DISTRICTS)[district],
        "family_abuse": abuse,
        "family_mental": mental,
        "family_prone": prone,
        "father_abuses": rng.random(n_house) < 0.65,
        "abuse_onset": onset(),
        "mental_onset": onset(),
    })
    fam = np.arange(n_families)
    oldest = rng.integers(0, 18, n_families)
    kid_house = np.repeat(fam, kids_per_family)
    kid_rank = np.concatenate([np.arange(k) for k in kids_per_family]) if n_families else np.array([], int)
    kid_age_days = np.maximum(0, oldest[kid_house] * 365 - kid_rank * rng.integers(400, 1500, len(kid_house)))
    kid_age_days = kid_age_days + rng.integers(0, 365, len(kid_house))
    parent_house = np.repeat(fam, n_parents)
    parent_no = np.concatenate([np.arange(p) for p in n_parents]) if n_families else np.array([], int)
    single_mother = rng.random(n_families) < 0.85
    parent_male = np.where(n_parents[parent_house] == 2, parent_no == 1, ~single_mother[parent_house])
    parent_age_days = (oldest[parent_house] + rng.integers(21, 40, len(parent_house))) * 365 + rng.integers(0, 365, len(parent_house))
    single_house = np.arange(n_families, n_house)
    single_age_days = rng.integers(18 * 365, 90 * 365, n_single)

    people = pl.DataFrame({
        "household": np.concatenate([kid_house, parent_house, single_house]),
        "role": ["child"] * len(kid_house) + ["parent"] * len(parent_house) + ["adult"] * n_single,
        "age_days_at_end": np.concatenate([kid_age_days, parent_age_days, single_age_days]),
        "male": np.concatenate([rng.random(len(kid_house)) < 0.51, parent_male, rng.random(n_single) < 0.49]),
    })
    # In two-parent families the abusing parent is the father two times in three.
    people = people.join(houses, on="household").with_columns(parents=pl.len().over("household", "role"))
    return people.with_columns(
        abuser=pl.col("family_abuse") & (pl.col("role") != "child") & (
            (pl.col("role") == "adult") | (pl.col("parents") == 1) | (pl.col("male") == pl.col("father_abuses"))
        )
    ).drop("parents", "father_abuses")


def generate(spec: SynthSpec) -> Municipality:
    """Make the whole municipality for spec, deterministically from its seed."""
    rng = np.random.default_rng(spec.seed)
    people = _households(rng, spec)
    n = people.height
    end = np.datetime64(spec.end, "D")
    start = np.datetime64(spec.start, "D")
    birth = end - people["age_days_at_end"].to_numpy().astype("timedelta64[D]")
    male = people["male"].to_numpy()
    ids = _cpr_ids(birth, male)
    people = people.with_columns(person_id=pl.Series(ids), birth_date=pl.Series(birth))

    role = people["role"].to_numpy()
    is_child = role == "child"
    is_adult = ~is_child
    household = people["household"].to_numpy()
    abuse = people["family_abuse"].to_numpy()
    mental = people["family_mental"].to_numpy()
    prone = people["family_prone"].to_numpy()
    abuser = people["abuser"].to_numpy()
    abuse_onset = start + people["abuse_onset"].to_numpy().astype("timedelta64[D]")
    mental_onset = start + people["mental_onset"].to_numpy().astype("timedelta64[D]")

    vulnerability = rng.normal(0, 0.5, n)
    base_absence = rng.beta(1.5, 25, n)
    teen_behaviour = is_child & (rng.random(n) < 0.05)
    behaviour_onset = birth + (rng.integers(12, 17, n) * 365).astype("timedelta64[D]")

    weeks = np.arange(start, end - np.timedelta64(6, "D"), np.timedelta64(7, "D"))
    treated_at = np.full(n, np.datetime64("NaT"), dtype="datetime64[D]")
    on_benefit = np.zeros(n, dtype=np.int8) - 1  # -1 off benefit, else index into BENEFITS
    measure_until = np.full(n, np.datetime64("NaT"), dtype="datetime64[D]")
    notes_last_year: list[np.ndarray] = []
    substance = np.where(rng.random(n) < 0.55, "alcohol", "drugs")

    absence_rows, notification_rows, measure_rows, treatment_rows, benefit_rows = [], [], [], [], []
    household_strain = np.zeros(household.max() + 1)
    for week in weeks:
        alive = birth <= week
        age = (week - birth).astype(int) / 365.25
        abuse_on = abuse & (abuse_onset <= week)
        treated = ~np.isnat(treated_at) & (treated_at <= week)
        # Parents' problems reach every child in the household through the household's strain.
        household_strain[:] = 0
        parent_load = (
            1.3 * abuse_on * np.where(treated, 0.5, 1.0)
            + 0.9 * (mental & (mental_onset <= week))
            + 0.5 * (on_benefit >= 0) * is_adult
        )
        np.maximum.at(household_strain, household, np.where(is_adult, parent_load, 0.0))
        strain = vulnerability + household_strain[household] + 1.2 * (teen_behaviour & (behaviour_onset <= week))
        child_now = is_child & alive & (age < 18)

        school = child_now & (age >= 6) & (age < 16.5)
        if week.astype(object).isocalendar()[1] not in (28, 29, 30, 31, 52):
            p = np.clip(base_absence * np.exp(0.6 * np.maximum(strain, 0)), 0, 0.95)
            half_days = rng.binomial(10, p)
            idx = np.nonzero(school)[0]
            absence_rows.append((idx, np.full(len(idx), week), half_days[idx] * 10.0))

        recent = np.zeros(n)
        for past in notes_last_year[-52:]:
            recent[past] += 1
        lam = 0.0008 * np.exp(1.4 * strain)
        notified = child_now & (rng.random(n) < lam)
        idx = np.nonzero(notified)[0]
        notification_rows.append((idx, np.full(len(idx), week) + rng.integers(0, 7, len(idx)).astype("timedelta64[D]")))
        notes_last_year.append(idx)

        open_measure = ~np.isnat(measure_until) & (measure_until > week)
        hazard = _escalation_hazard(strain, recent)
        starts = child_now & ~open_measure & (rng.random(n) < hazard)
        idx = np.nonzero(starts)[0]
        measure_until[idx] = week + np.timedelta64(7 * MEASURE_WEEKS_OPEN, "D")
        measure_rows.append((idx, np.full(len(idx), week) + rng.integers(0, 7, len(idx)).astype("timedelta64[D]"), strain[idx]))

        # The abusing adult seeks treatment rarely: on average a decade goes by first.
        start_treatment = abuser & abuse_on & np.isnat(treated_at) & (rng.random(n) < 0.004)
        idx = np.nonzero(start_treatment)[0]
        treated_at[idx] = week
        treatment_rows.append((idx, np.full(len(idx), week) + rng.integers(0, 7, len(idx)).astype("timedelta64[D]")))

        adult_now = is_adult & alive
        risk = 0.004 * np.exp(1.4 * prone + 0.7 * abuse_on + 0.7 * mental)
        begin = adult_now & (on_benefit < 0) & (rng.random(n) < risk)
        on_benefit[begin] = rng.choice(len(BENEFITS), p=[0.45, 0.30, 0.20, 0.05], size=int(begin.sum()))
        leave = (on_benefit >= 0) & (rng.random(n) < np.where(prone, 0.03, 0.07))
        on_benefit[leave] = -1
        idx = np.nonzero(adult_now & (on_benefit >= 0))[0]
        benefit_rows.append((idx, np.full(len(idx), week), on_benefit[idx]))

    extracts = _extracts(rng, people, spec, absence_rows, notification_rows, measure_rows, treatment_rows, benefit_rows, substance)
    final_strain = strain
    recent = np.zeros(n)
    for past in notes_last_year[-52:]:
        recent[past] += 1
    oracle = 1 - np.power(1 - _escalation_hazard(final_strain, recent), 52)
    truth = people.select(
        "person_id", "household", "role", "district", "family_abuse", "family_mental", "family_prone", "abuser"
    ).with_columns(
        teen_behaviour=pl.Series(teen_behaviour),
        strain_at_end=pl.Series(final_strain),
        oracle_risk_12m=pl.when(pl.Series(is_child)).then(pl.Series(oracle)),
    )
    return Municipality(extracts=extracts, ground_truth=truth)


def _escalation_hazard(strain: np.ndarray, notifications_last_year: np.ndarray) -> np.ndarray:
    """Weekly chance that a child gets a support measure or placement."""
    return np.clip(0.00018 * np.exp(1.0 * strain + 0.35 * np.minimum(notifications_last_year, 4)), 0, 0.2)


def _dates(parts: list[tuple], position: int) -> np.ndarray:
    return np.concatenate([p[position] for p in parts]) if parts else np.array([], "datetime64[D]")


def _after(rng: np.random.Generator, days: np.ndarray, low: int, high: int) -> np.ndarray:
    """Knowledge dates: each event reaches the municipality low..high days after it happened."""
    return days + rng.integers(low, high + 1, len(days)).astype("timedelta64[D]")


def _extracts(rng, people, spec, absence, notifications, measures, treatments, benefits, substance) -> dict[str, pl.DataFrame]:
    ids = people["person_id"].to_numpy()
    birth = people["birth_date"].to_numpy().astype("datetime64[D]")
    start = np.datetime64(spec.start, "D")
    end = np.datetime64(spec.end, "D")
    # Residents before the history starts moved in some time before; later births register at birth.
    moved_in = np.where(birth > start, birth, np.maximum(birth, start - rng.integers(0, 15 * 365, len(birth)).astype("timedelta64[D]")))

    def frame(columns: dict, known: tuple[int, int]) -> pl.DataFrame:
        out = pl.DataFrame(columns)
        event = out["event_date"].to_numpy().astype("datetime64[D]")
        # Rows the municipality has not learned of by the end date are not in the extract yet.
        return out.with_columns(known_date=pl.Series(_after(rng, event, *known))).filter(
            pl.col("known_date") <= pl.lit(spec.end)
        )

    population = frame({
        "person_id": ids,
        "birth_date": birth,
        "sex": np.where(people["male"].to_numpy(), "M", "F"),
        "district": people["district"].to_numpy(),
        "event_date": moved_in,
    }, (0, 5))

    parents = people.filter(pl.col("role") == "parent").select("household", parent_id="person_id", male="male")
    children = people.filter(pl.col("role") == "child").select("household", child_id="person_id", child_birth="birth_date")
    links = parents.join(children, on="household")
    family = frame({
        "parent_id": links["parent_id"].to_numpy(),
        "child_id": links["child_id"].to_numpy(),
        "relation": np.where(links["male"].to_numpy(), "father", "mother"),
        "event_date": links["child_birth"].to_numpy().astype("datetime64[D]"),
    }, (0, 5))

    a_idx = np.concatenate([p[0] for p in absence])
    school_absence = frame({
        "person_id": ids[a_idx],
        "event_date": _dates(absence, 1),
        "absence_pct": np.concatenate([p[2] for p in absence]),
    }, (7, 14))

    n_idx = np.concatenate([p[0] for p in notifications])
    n_date = _dates(notifications, 1)
    age = (n_date - birth[n_idx]).astype(int) / 365.25
    notifier = np.where(
        age < 1, "health",
        np.where(age < 6, rng.choice(["daycare", "health", "relative", "anonymous"], p=[0.6, 0.2, 0.1, 0.1], size=len(age)),
                 np.where(age < 12, rng.choice(["school", "hospital", "relative", "anonymous"], p=[0.65, 0.1, 0.15, 0.1], size=len(age)),
                          rng.choice(["school", "police", "hospital", "relative"], p=[0.45, 0.35, 0.1, 0.1], size=len(age)))))
    notes = frame({
        "notification_id": [f"U{i:07d}" for i in range(len(n_idx))],
        "person_id": ids[n_idx],
        "notifier": notifier,
        "event_date": n_date,
    }, (0, 3))

    t_idx = np.concatenate([p[0] for p in treatments])
    treatment = frame({
        "person_id": ids[t_idx],
        "substance": substance[t_idx],
        "event_date": _dates(treatments, 1),
    }, (14, 60))

    b_idx = np.concatenate([p[0] for p in benefits])
    benefit_frame = frame({
        "person_id": ids[b_idx],
        "benefit": np.array(BENEFITS)[np.concatenate([p[2] for p in benefits])],
        "event_date": _dates(benefits, 1),
    }, (7, 7))

    m_idx = np.concatenate([p[0] for p in measures])
    m_strain = np.concatenate([p[2] for p in measures])
    placement = rng.random(len(m_idx)) < np.clip(0.08 + 0.06 * m_strain, 0.02, 0.6)
    measure = np.where(placement, "placement", rng.choice(["family_treatment", "contact_person"], size=len(m_idx)))
    district = people["district"].to_numpy()[m_idx]
    measures_frame = frame({
        "person_id": ids[m_idx],
        "measure": measure,
        "team": np.array([FAMILY_TEAMS[d] for d in district], dtype=object),
        "event_date": _dates(measures, 1),
    }, (0, 14))

    return {
        "population": population,
        "family_relations": family,
        "school_absence": school_absence,
        "notifications": notes,
        "substance_treatment": treatment,
        "benefits": benefit_frame,
        "support_measures": measures_frame,
    }
