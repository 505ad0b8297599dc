"""A synthetic municipality: seeded registers with a documented causal story and a hidden truth.

The causal story, which the pipeline has to rediscover from the registers alone:

1. Residents live in households in one of four school districts. Families with children have one
   or two parents; the other residents are adults without children at home. Households move in
   and out of the municipality (some come back), children are born, older adults die.
2. Some households carry hidden problems, each with an onset date: a parent's alcohol abuse
   (about 9% of children have such a parent), drug abuse, mental illness, and a propensity for
   long spells on benefits. District deprivation makes each a little more likely.
3. Adults' problems show in the adult registers, weeks to months before anything reaches the
   child-welfare office: abuse leads (rarely, after years) to treatment courses and to police
   contacts; mental illness to psychiatric contacts; abuse, illness and benefit spells raise the
   risk of an eviction notice, an eviction and, for adults alone, homelessness; adults with abuse
   or illness receive adult social services.
4. From an onset on, each child in the household carries a weekly *strain*: abuse (halved once
   treatment has started), mental illness, benefit spells and a recent eviction all add to it.
   Strain raises the child's school absence and missed health-visitor and dental visits at once,
   the rate of notifications (underretninger) a little later, and, through the notifications of
   the last year, the hazard of an investigation and then a support measure or placement: the
   signals come months before the measure. An investigation is dated from the notification that
   referred the child (one to six weeks after it), and a measure follows its investigation, so no
   register row is ever dated back from an outcome still to come. Teenagers may also develop their own behavioural
   problems (the most frequent placement reason), which no parental register shows.
5. Every register row has an event date and a later knowledge date, after a delay typical of its
   source (treatment courses reach the municipality weeks late); rows not yet known on the
   extract date are not in the extract.

With `mess` > 0 the extracts get the faults of real deliveries, each on about that share of an
event register's rows: late arrivals (known 1-6 months late), corrections (a copy with a changed
value, version 2, known later), exact duplicates, re-deliveries (the same row known again later,
counted as near duplicates), and ids that match no one in the population (a tenth of the share).
What was injected is counted in `Municipality.mess`.

The hidden variables and each child's true 12-month escalation risk at the end date (the
oracle) go to a separate ground-truth table, for evaluation only; the pipeline never reads it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq

DISTRICTS = ("Nord", "Syd", "Øst", "Vest")
# Statistics Denmark's "herkomst" in three groups: persons of Danish origin; immigrants and their
# descendants from Western countries; from non-Western countries (national shares about 85/6/9 %).
ORIGINS = ("danish", "western", "non_western")
ORIGIN_SHARES = (0.85, 0.06, 0.09)
# Long benefit spells are more common among non-Western households, as in the national labour-market
# statistics: that is the only link between origin and risk. Origin is drawn from its own random
# stream after everything else, so the simulation (and the hidden oracle) never reads it.
NON_WESTERN_PRONE_RATIO = 1.8
# Deprivation differs between districts; it raises the chance of household problems a little.
DISTRICT_PROBLEM_FACTOR = np.array([1.3, 0.8, 1.0, 1.1])
# The family team that holds a child's case, by school district (team ids of routing/teams.yaml).
FAMILY_TEAMS = {"Nord": "familie-nord", "Syd": "familie-syd", "Øst": "familie-oest", "Vest": "familie-vest"}
BENEFITS = ("unemployment", "cash_benefit", "sickness", "flex_job")
STREETS = ("Ærøgade", "Søndre Allé", "Åboulevard", "Østerbrogade", "Nørregade", "Vestergade", "Møllevej", "Skovbrynet")
# Health-visitor visits at these ages in days (the Danish programme's first year), dental care yearly.
HEALTH_VISIT_AGES = (7, 60, 120, 240, 330)
FORMATS = ("parquet", "csv-dk")
# Large municipalities are made in blocks of households of about this many residents, each written
# before the next is made: the peak memory is one block's (about 1.5 GB), whatever the size.
BLOCK_PERSONS = 250_000
# Danish CSV exports come both ways; which source gets which is fixed so tests can rely on it.
LATIN1_SOURCES = frozenset({"population", "school_absence", "notifications", "evictions", "police_contacts"})
ID_LIKE = ("person_id", "parent_id", "child_id")
# Per source: the column a correction changes (float columns are perturbed, coded ones recoded).
CORRECTABLE = {
    "population": "district", "population_events": None, "family_relations": None, "school_absence": "absence_pct",
    "health_visits": "outcome", "notifications": "notifier", "child_investigations": None, "support_measures": "team",
    "substance_treatment": "end_date", "psychiatric_contacts": None, "benefits": "benefit", "police_contacts": "role",
    "evictions": "arrears_dkk", "homelessness": "situation", "adult_services": "end_date",
}


@dataclass(frozen=True)
class SynthSpec:
    """How big, which seed, which stretch of register history, and how messy the extracts are."""

    persons: int
    seed: int
    start: date
    end: date
    mess: float = 0.0


@dataclass(frozen=True)
class Municipality:
    """The generated registers (one frame per source in the registry), the hidden truth and the injected mess."""

    extracts: dict[str, pl.DataFrame]
    ground_truth: pl.DataFrame
    mess: dict[str, dict[str, int]] = field(default_factory=dict)
    # Each child's true 12-month escalation risk at every simulated week (person_id, week,
    # oracle_risk_12m): the best possible score on any as-of date, for evaluation only.
    oracle: pl.DataFrame | None = None

    def write(self, out: Path, format: str = "parquet") -> Path:
        """Write extracts to out/extracts (Parquet, or Danish CSV) and the truth beside them, not among them."""
        with _Sink(Path(out), format) as sink:
            sink.add(self)
        return sink.folder


class _Sink:
    """Extract files that blocks of a municipality are appended to, one block after another."""

    def __init__(self, out: Path, format: str) -> None:
        if format not in FORMATS:
            raise ValueError(f"format {format!r} is not one of {', '.join(FORMATS)}")
        self.out, self.format = out, format
        self.folder = out / "extracts"
        self.folder.mkdir(parents=True, exist_ok=True)
        self.parquet: dict[str, pq.ParquetWriter] = {}
        self.mess: dict[str, dict[str, int]] = {}
        self.started: set[str] = set()

    def __enter__(self) -> _Sink:
        return self

    def __exit__(self, *exc) -> None:
        for writer in self.parquet.values():
            writer.close()
        (self.out / "synth_mess.json").write_text(json.dumps(self.mess, indent=1, sort_keys=True), encoding="utf-8")

    def _append_parquet(self, path: Path, frame: pl.DataFrame) -> None:
        table = frame.to_arrow()
        if path not in self.parquet:
            self.parquet[path] = pq.ParquetWriter(path, table.schema)
        self.parquet[path].write_table(table)

    def add(self, town: Municipality) -> None:
        for name, frame in town.extracts.items():
            if name not in self.started:
                for stale in (self.folder / f"{name}.parquet", self.folder / f"{name}.csv"):
                    stale.unlink(missing_ok=True)
            if self.format == "parquet":
                self._append_parquet(self.folder / f"{name}.parquet", frame)
            else:
                write_danish_csv(frame, self.folder / f"{name}.csv", latin1=name in LATIN1_SOURCES, append=name in self.started)
            self.started.add(name)
        self._append_parquet(self.out / "ground_truth.parquet", town.ground_truth)
        for name, counts in town.mess.items():
            mine = self.mess.setdefault(name, dict.fromkeys(counts, 0))
            for fault, count in counts.items():
                mine[fault] += count


def write_danish_csv(frame: pl.DataFrame, path: Path, *, latin1: bool, append: bool = False) -> None:
    """CSV the way Danish systems export it: ';', decimal comma, DD-MM-YYYY, Latin-1 or UTF-8 with BOM.

    With append, the rows go after those already in the file, without a second header or BOM.
    """
    text = frame.write_csv(separator=";", date_format="%d-%m-%Y", decimal_comma=True, line_terminator="\r\n",
                           include_header=not append)
    data = text.encode("cp1252") if latin1 else (b"" if append else b"\xef\xbb\xbf") + text.encode("utf-8")
    with path.open("ab" if append else "wb") as file:
        file.write(data)


class Numbering:
    """The ids handed out so far. The blocks of one municipality share one, so that no two blocks
    give out the same CPR number, household or record id; a fresh one starts every count at 0."""

    FIRST_BIRTH = np.datetime64("1880-01-01", "D")

    def __init__(self) -> None:
        self.births = np.zeros(200 * 366, np.int64)  # CPR numbers given out per birth day since FIRST_BIRTH
        self.next: dict[str, int] = {}

    def take(self, prefix: str, count: int) -> int:
        """The first of count consecutive numbers for ids starting with prefix."""
        first = self.next.get(prefix, 0)
        self.next[prefix] = first + count
        return first

    def born(self, birth: np.ndarray) -> np.ndarray:
        """How many were given out before on each birth day, then count these births as given out."""
        day = (birth.astype("datetime64[D]") - self.FIRST_BIRTH).astype(np.int64)
        before = self.births[day]
        self.births += np.bincount(day, minlength=len(self.births))
        return before


def _cpr_ids(birth: np.ndarray, male: np.ndarray, numbering: Numbering) -> pl.Series:
    """CPR-like ids DDMMYY-SSSS, unique, with the last digit odd for men and the seventh telling the century as in the real register."""
    frame = pl.DataFrame({"birth": birth, "male": male}).with_columns(nth=pl.int_range(pl.len()).over("birth"))
    year = frame["birth"].dt.year()
    # Seventh digit 0-3: born 1900-1999; 4: 2000-2036; 5-8: 1858-1899 (and 2000-2057).
    century = pl.select(pl.when(year < 1900).then(5000).when(year < 2000).then(1000).otherwise(4000)).to_series()
    serial = century + 2 * (frame["nth"] + numbering.born(birth)) + frame["male"].cast(pl.Int64)
    return frame.select(pl.col("birth").dt.strftime("%d%m%y") + "-" + serial.cast(pl.String).str.zfill(4)).to_series()


def _origins(rng: np.random.Generator, prone: np.ndarray) -> np.ndarray:
    """Each household's origin group (index into ORIGINS), at the national shares overall."""
    _, western, non_western = ORIGIN_SHARES
    # Solve for the base rate so that the prone households' higher share keeps the overall share.
    base = non_western / (1 + (NON_WESTERN_PRONE_RATIO - 1) * prone.mean()) if len(prone) else non_western
    p_non_western = np.where(prone, NON_WESTERN_PRONE_RATIO * base, base)
    draw = rng.random(len(prone))
    return np.where(draw < p_non_western, 2, np.where(draw < p_non_western + western, 1, 0))


def _households(rng: np.random.Generator, spec: SynthSpec, origin_rng: np.random.Generator) -> pl.DataFrame:
    """One row per resident: household, role, age, sex, district, origin and hidden household problems."""
    children_wanted = int(0.2 * spec.persons)
    kids_per_family = rng.choice([1, 2, 3], p=[0.40, 0.42, 0.18], size=max(1, children_wanted))
    kids_per_family = kids_per_family[np.cumsum(kids_per_family) <= max(1, children_wanted)]
    n_families = len(kids_per_family)
    two_parents = rng.random(n_families) < 0.75
    n_parents = np.where(two_parents, 2, 1)
    in_families = int(kids_per_family.sum() + n_parents.sum())
    n_single = max(0, spec.persons - in_families)
    n_house = n_families + n_single
    has_kids = np.arange(n_house) < n_families

    district = rng.integers(0, len(DISTRICTS), n_house)
    factor = DISTRICT_PROBLEM_FACTOR[district]
    alcohol = rng.random(n_house) < np.where(has_kids, 0.082, 0.050) * factor
    drugs = ~alcohol & (rng.random(n_house) < np.where(has_kids, 0.022, 0.018) * factor)
    mental = rng.random(n_house) < np.where(has_kids, 0.06, 0.05) * factor
    prone = rng.random(n_house) < 0.12 * factor + 0.25 * (alcohol | drugs | mental)

    span_days = (spec.end - spec.start).days

    def onset() -> np.ndarray:
        return rng.integers(-3 * 365, span_days, n_house)

    houses = pl.DataFrame({
        "household": np.arange(n_house),
        "district": np.array(DISTRICTS)[district],
        "family_alcohol": alcohol,
        "family_drugs": drugs,
        "family_mental": mental,
        "family_prone": prone,
        "father_abuses": rng.random(n_house) < 0.65,
        "abuse_onset": onset(),
        "mental_onset": onset(),
        "street": rng.integers(0, len(STREETS), n_house),
        "number": rng.integers(1, 180, n_house),
    })
    houses = houses.with_columns(origin_group=pl.Series(np.array(ORIGINS)[_origins(origin_rng, prone)]))
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
        family_abuse=pl.col("family_alcohol") | pl.col("family_drugs"),
        abuser=(pl.col("family_alcohol") | pl.col("family_drugs")) & (pl.col("role") != "child") & (
            (pl.col("role") == "adult") | (pl.col("parents") == 1) | (pl.col("male") == pl.col("father_abuses"))
        ),
    ).drop("parents", "father_abuses")


class _Rows:
    """Register rows collected week by week as (person index, event date, extra columns...)."""

    def __init__(self) -> None:
        self.parts: list[tuple] = []

    def add(self, idx: np.ndarray, day: np.ndarray, *extra: np.ndarray) -> None:
        if len(idx):
            self.parts.append((idx.astype(np.int32), np.asarray(day).astype(np.int64).astype("datetime64[D]"), *extra))

    def column(self, i: int, empty_dtype="int32") -> np.ndarray:
        return np.concatenate([p[i] for p in self.parts]) if self.parts else np.array([], empty_dtype)


def generate(spec: SynthSpec, *, block: int = 0, numbering: Numbering | None = None, oracle: bool = True) -> Municipality:
    """Make the whole municipality for spec, deterministically from its seed.

    A large municipality is made as blocks of households (see write_municipality): block picks the
    block's own random streams (block 0 is the municipality of spec's seed), numbering keeps the
    blocks' ids apart. Without oracle the weekly true risks are not kept, only the last week's.
    """
    numbering = numbering or Numbering()
    rng = np.random.default_rng(spec.seed if block == 0 else np.random.SeedSequence(spec.seed, spawn_key=(block,)))
    people = _households(rng, spec, np.random.default_rng(np.random.SeedSequence(spec.seed, spawn_key=(block, 1))))
    n = people.height
    end = np.datetime64(spec.end, "D")
    start = np.datetime64(spec.start, "D")
    # The simulation counts in whole days since 1970 (int32): ten times faster than datetime64.
    day0, day_end = _day(start), _day(end)
    span = day_end - day0
    years = span / 365.25
    birth = end - people["age_days_at_end"].to_numpy().astype("timedelta64[D]")
    birth_d = _day(birth)
    male = people["male"].to_numpy()
    ids = _cpr_ids(birth, male, numbering)
    people = people.with_columns(person_id=ids, birth_date=pl.Series(birth))

    role = people["role"].to_numpy()
    is_child = role == "child"
    is_adult = ~is_child
    household = people["household"].to_numpy()
    n_house = int(household.max()) + 1
    alcohol = people["family_alcohol"].to_numpy()
    drugs = people["family_drugs"].to_numpy()
    abuse = alcohol | drugs
    mental = people["family_mental"].to_numpy()
    prone = people["family_prone"].to_numpy()
    abuser = people["abuser"].to_numpy()
    abuse_onset = day0 + people["abuse_onset"].to_numpy().astype(np.int32)
    mental_onset = day0 + people["mental_onset"].to_numpy().astype(np.int32)
    # Each household's first adult heads it (evictions are registered on the head).
    adult_idx = np.nonzero(is_adult)[0]
    head = np.zeros(n, bool)
    head[adult_idx[np.unique(household[adult_idx], return_index=True)[1]]] = True
    # The mentally ill adult is the abuser where there is one, else the head of the household.
    ill = mental & is_adult & np.where(abuse, abuser, head)

    # Households move as one: most lived here before the history starts; some move in during it,
    # some move away, and a quarter of those come back. NEVER marks what does not happen.
    h_in = np.where(rng.random(n_house) < 1 - np.exp(-0.03 * years), day0 + rng.integers(0, span, n_house), day0 - 1)
    leaves = rng.random(n_house) < 1 - np.exp(-0.04 * years)
    h_out = np.where(leaves, h_in + rng.integers(30, span, n_house), NEVER)
    h_out = np.where(h_out < day_end, h_out, NEVER)
    h_back = np.where((h_out < NEVER) & (rng.random(n_house) < 0.25), h_out + rng.integers(90, 720, n_house), NEVER)
    h_back = np.where(h_back < day_end, h_back, NEVER)
    moved_in, out_at, back_at = (a[household].astype(np.int32) for a in (h_in, h_out, h_back))
    age_end = (day_end - birth_d) / 365.25
    death_rate = np.where(role == "adult", 0.0004 * np.exp(0.085 * np.maximum(age_end - 40, 0)), 0.0)
    death = day0 + (rng.exponential(1 / np.maximum(death_rate, 1e-9)) * 365.25).clip(0, NEVER)
    death = np.where(death < day_end, death, NEVER).astype(np.int32)

    vulnerability = rng.normal(0, 0.5, n)
    base_absence = rng.beta(1.6, 28, n)
    teen_behaviour = is_child & (rng.random(n) < 0.05)
    behaviour_onset = np.where(teen_behaviour, birth_d + rng.integers(12, 17, n) * 365, NEVER).astype(np.int32)
    substance = np.where(alcohol, "alcohol", "drugs")
    treat_hazard = np.where(alcohol, 0.0015, 0.0045)
    load_abuse = np.where(abuser, np.where(drugs, 1.5, 1.3), 0.0)
    # Weekly hazards that depend only on a few yes/no conditions are looked up, not exponentiated.
    benefit_risk = 0.0035 * np.exp(1.4 * np.array([0, 1, 0, 1, 0, 1, 0, 1]) + 0.7 * np.array([0, 0, 1, 1, 0, 0, 1, 1]) + 0.7 * np.array([0, 0, 0, 0, 1, 1, 1, 1]))
    police_risk = 0.0002 * np.exp(1.3 * np.array([0, 1, 0, 1]) + 0.6 * np.array([0, 0, 1, 1]))
    eviction_risk = 0.000019 * np.exp(1.1 * np.array([0, 1, 0, 1, 0, 1, 0, 1]) + 1.2 * np.array([0, 0, 1, 1, 0, 0, 1, 1]) + 0.6 * np.array([0, 0, 0, 0, 1, 1, 1, 1]))
    homeless_risk = 0.000017 * np.exp(2.2 * np.array([0, 1, 0, 1, 0, 1, 0, 1]) + 1.3 * np.array([0, 0, 1, 1, 0, 0, 1, 1]) + 2.5 * np.array([0, 0, 0, 0, 1, 1, 1, 1]))
    leave_risk = np.where(prone, 0.03, 0.07)

    weeks = np.arange(day0, day_end - 6, 7, dtype=np.int32)
    treated = np.zeros(n, bool)
    course_until = np.zeros(n, np.int32)
    on_benefit = np.zeros(n, dtype=np.int8) - 1  # -1 off benefit, else index into BENEFITS
    measure_until = np.zeros(n, np.int32)
    homeless_until = np.zeros(n, np.int32)
    service_until = np.zeros(n, np.int32)
    investigated = np.full(n, -100_000, np.int32)
    evicted_house = np.full(n_house, -100_000, np.int32)
    notice_house = np.full(n_house, -100_000, np.int32)
    notes_last_year: list[np.ndarray] = []
    oracle_weeks: list[tuple[np.ndarray, int, np.ndarray]] = []
    recent = np.zeros(n)
    rows = {name: _Rows() for name in (
        "absence", "visits", "notes", "investigations", "measures", "treatment", "psych", "benefits",
        "police", "notices", "homeless", "services",
    )}
    household_strain = np.zeros(n_house)
    strain = np.zeros(n)
    visit_ages = np.array(HEALTH_VISIT_AGES)

    def jitter(size: int) -> np.ndarray:
        return rng.integers(0, 7, size)

    def chance(p: np.ndarray | float, size: int) -> np.ndarray:
        return rng.random(size) < p

    def sample(pool: np.ndarray, most: float, hazard) -> np.ndarray:
        """Members of pool with the event this week, for a rare event: draw candidates at the
        highest hazard, then keep each with its own hazard / highest (thinning; no work per member)."""
        k = rng.binomial(len(pool), most)
        candidates = np.unique(pool[rng.integers(0, len(pool), k)]) if k else pool[:0]
        return candidates[rng.random(len(candidates)) * most < hazard(candidates)]

    for week in weeks:
        resident = (birth_d <= week) & (moved_in <= week) & ~((out_at <= week) & (back_at > week)) & (death > week)
        age_days = week - birth_d
        abuse_on = abuse & (abuse_onset <= week)
        ill_on = ill & (mental_onset <= week)
        in_course = course_until > week
        treated |= in_course
        recently_evicted = (week - evicted_house) < 182
        benefit_on = on_benefit >= 0

        # Adults' problems reach every child in the household through the household's strain.
        household_strain[:] = 0
        loaded = np.nonzero(is_adult & resident & ((abuse_on & abuser) | ill_on | benefit_on))[0]  # ufunc.at is slow
        parent_load = (
            load_abuse[loaded] * abuse_on[loaded] * np.where(treated[loaded], 0.5, 1.0)
            + 0.9 * ill_on[loaded] + 0.5 * benefit_on[loaded]
        )
        np.maximum.at(household_strain, household[loaded], parent_load)
        kids = np.nonzero(is_child & resident & (age_days < 18 * 365))[0]
        kid_age = age_days[kids]
        kid_strain = (vulnerability[kids] + household_strain[household[kids]] + 0.8 * recently_evicted[household[kids]]
                      + 1.2 * (behaviour_onset[kids] <= week))
        strain[kids] = kid_strain
        pos = np.maximum(kid_strain, 0)

        iso_week = _iso_week(week)
        at_school = (kid_age >= 6 * 365) & (kid_age < 16.5 * 365)
        if iso_week not in (7, 28, 29, 30, 31, 42, 52):
            school = kids[at_school]
            p = np.clip(base_absence[school] * np.exp(0.55 * pos[at_school]), 0, 0.95)
            rows["absence"].add(school, np.full(len(school), week), rng.binomial(10, p).astype(np.int8))

        due_health = ((kid_age[:, None] >= visit_ages) & (kid_age[:, None] < visit_ages + 7)).any(axis=1)
        due_dental = (kid_age >= 365) & (kid_age % 365 < 7)
        for service, due in (("health_visitor", due_health), ("dental", due_dental)):
            idx = kids[due]
            missed = chance(np.clip(0.04 * np.exp(0.8 * pos[due]), 0, 0.9), len(idx))
            rows["visits"].add(idx, week + jitter(len(idx)), np.full(len(idx), service), missed)

        recent[:] = 0
        for past in notes_last_year[-52:]:
            recent[past] += 1
        kid_recent = recent[kids]
        # Professionals who have notified once look closer: notifications come in runs.
        notified = kids[chance(0.0006 * np.exp(1.45 * kid_strain + 0.55 * np.minimum(kid_recent, 3)), len(kids))]
        noted = week + jitter(len(notified))
        rows["notes"].add(notified, noted)
        notes_last_year.append(notified)
        # A notification on a child not investigated within the last half year opens an investigation
        # a third of the time, one to six weeks after the notification itself.
        opening = ((week - investigated[notified]) > 182) & chance(0.33, len(notified))
        opens = notified[opening]
        investigated[opens] = week
        rows["investigations"].add(opens, noted[opening] + rng.integers(7, 42, len(opens)))

        hazard = _escalation_hazard(kid_strain, kid_recent)
        oracle_weeks.append((kids, week, (1 - np.power(1 - hazard, 52)).astype(np.float32)))
        if not oracle:
            del oracle_weeks[:-1]
        started = ~(measure_until[kids] > week) & chance(hazard, len(kids))
        starts, start_strain = kids[started], kid_strain[started]
        # Support is granted after an investigation, and an investigation is dated from the
        # notification that referred the child. Where none ran lately, the referral comes now and the
        # measure waits for the investigation it opens: an investigation is never dated back from the
        # measure it precedes, which would put the coming outcome into the registers before it happened.
        fresh = (week - investigated[starts]) > 365
        referred = starts[fresh]
        referral = week + jitter(len(referred))
        rows["notes"].add(referred, referral)
        notes_last_year[-1] = np.concatenate([notes_last_year[-1], referred])
        investigated[referred] = week
        inquiry = referral + rng.integers(7, 42, len(referred))
        rows["investigations"].add(referred, inquiry)
        begins = week + jitter(len(starts))
        begins[fresh] = inquiry + rng.integers(14, 43, len(referred))
        placement = chance(np.clip(0.06 + 0.05 * start_strain + 0.10 * abuse_on[starts], 0.02, 0.7), len(starts))
        weeks_open = np.where(placement, rng.geometric(1 / 210, len(starts)), rng.geometric(1 / 95, len(starts)))
        ends_at = np.minimum(begins + 7 * weeks_open, birth_d[starts] + 18 * 365 + 4)
        measure_until[starts] = ends_at
        rows["measures"].add(starts, begins, placement, ends_at, start_strain)

        adults = np.nonzero(is_adult & resident)[0]
        want = adults[abuser[adults] & abuse_on[adults] & ~in_course[adults]]
        begin = want[chance(treat_hazard[want], len(want))]
        course_until[begin] = week + rng.integers(90, 400, len(begin))
        rows["treatment"].add(begin, week + jitter(len(begin)), course_until[begin])

        psych = sample(adults, 0.012, lambda c: np.where(ill_on[c], 0.012, 0.0002))
        rows["psych"].add(psych, week + jitter(len(psych)))

        off = adults[~benefit_on[adults] & (age_days[adults] < 67 * 365)]
        begin = sample(off, benefit_risk[-1], lambda c: benefit_risk[prone[c] + 2 * abuse_on[c] + 4 * ill_on[c]])
        on_benefit[begin] = rng.choice(len(BENEFITS), p=[0.45, 0.30, 0.20, 0.05], size=len(begin))
        receiving = np.nonzero(on_benefit >= 0)[0]
        on_benefit[receiving[chance(leave_risk[receiving], len(receiving))]] = -1
        idx = adults[on_benefit[adults] >= 0]
        rows["benefits"].add(idx, np.full(len(idx), week), on_benefit[idx])

        police = sample(adults, police_risk[-1], lambda c: police_risk[(abuse_on[c] & abuser[c]) + 2 * ill_on[c]])
        teen = kid_age >= 13 * 365
        teens = kids[teen][chance(0.0002 * np.exp(1.4 * pos[teen]), int(teen.sum()))]
        who = np.concatenate([police, teens])
        police_role = np.concatenate([rng.choice(["suspect", "victim"], p=[0.7, 0.3], size=len(police)),
                                      rng.choice(["suspect", "victim", "concern"], p=[0.4, 0.2, 0.4], size=len(teens))])
        rows["police"].add(who, week + jitter(len(who)), police_role)

        # Evictions strike households: one row per notice on the household's head.
        heads = adults[head[adults]]
        noticed = sample(heads, eviction_risk[-1], lambda c: eviction_risk[benefit_on[c] + 2 * abuse_on[c] + 4 * ill_on[c]]
                         * ((week - notice_house[household[c]]) > 365))
        notice_house[household[noticed]] = week
        executed = chance(0.35, len(noticed))
        exec_day = week + rng.integers(28, 84, len(noticed))
        evicted_house[household[noticed[executed]]] = exec_day[executed]
        rows["notices"].add(noticed, week + jitter(len(noticed)), executed, exec_day)

        alone = adults[(role[adults] == "adult")]
        homeless = sample(alone, homeless_risk[-1], lambda c: homeless_risk[
            (abuse_on[c] & abuser[c]) + 2 * ill_on[c] + 4 * recently_evicted[household[c]]] * ~(homeless_until[c] > week))
        homeless_until[homeless] = week + rng.integers(30, 700, len(homeless))
        rows["homeless"].add(homeless, week + jitter(len(homeless)), homeless_until[homeless])

        needs = adults[((abuse_on[adults] & abuser[adults]) | ill_on[adults]) & ~(service_until[adults] > week)]
        served = needs[chance(0.0025, len(needs))]
        service_until[served] = week + rng.integers(120, 1100, len(served))
        rows["services"].add(served, week + jitter(len(served)), service_until[served])

    oracle_frame = pl.DataFrame({
        "person_id": ids.gather(np.concatenate([k for k, _, _ in oracle_weeks])),
        "week": pl.Series(np.concatenate([np.full(len(k), w, np.int32) for k, w, _ in oracle_weeks])).cast(pl.Date),
        "oracle_risk_12m": np.concatenate([r for _, _, r in oracle_weeks]),
    }) if oracle else None
    true_risk = np.zeros(n)
    true_risk[kids] = oracle_weeks[-1][2] if oracle_weeks else 0.0
    resident_end = (moved_in <= day_end) & ~((out_at <= day_end) & (back_at > day_end)) & (death > day_end)
    residents = {name: _date(a) for name, a in (("moved_in", moved_in), ("out_at", out_at), ("back_at", back_at), ("death", death))}
    people = people.with_columns(pl.col("household") + numbering.take("H", n_house))
    extracts = _extracts(rng, people, spec, rows, residents, substance, numbering)
    extracts, mess = _make_mess(rng, extracts, spec)
    truth = people.select(
        "person_id", "household", "role", "district", "origin_group", "family_abuse", "family_alcohol", "family_drugs",
        "family_mental", "family_prone", "abuser",
    ).with_columns(
        mentally_ill=pl.Series(ill),
        teen_behaviour=pl.Series(teen_behaviour),
        strain_at_end=pl.Series(strain),
        resident_at_end=pl.Series(resident_end),
        oracle_risk_12m=pl.when(pl.Series(is_child)).then(pl.Series(true_risk)),
    )
    return Municipality(extracts=extracts, ground_truth=truth, mess=mess, oracle=oracle_frame)


def blocks(persons: int, block_persons: int = BLOCK_PERSONS) -> list[int]:
    """Residents per block: as few blocks as hold them, as even as can be."""
    if persons < 1 or block_persons < 1:
        raise ValueError(f"persons and block_persons must be at least 1, got {persons} and {block_persons}")
    count = -(-persons // block_persons)
    return [persons // count + (i < persons % count) for i in range(count)]


def write_municipality(spec: SynthSpec, out: Path, format: str = "parquet", *, block_persons: int = BLOCK_PERSONS,
                       on_block: Callable[[int, int], None] | None = None) -> Path:
    """Generate spec block by block and append each block to the extract files as soon as it is made.

    Each block is a set of households with its own random streams and its own ids (nobody moves
    between blocks), so memory stays that of one block whatever spec.persons is. With one block
    (spec.persons <= block_persons) the files are exactly those of generate(spec).write(out, format).
    on_block(done, blocks) is called after each block is written.
    """
    numbering = Numbering()
    sizes = blocks(spec.persons, block_persons)
    with _Sink(Path(out), format) as sink:
        for block, persons in enumerate(sizes):
            sink.add(generate(replace(spec, persons=persons), block=block, numbering=numbering, oracle=False))
            if on_block is not None:
                on_block(block + 1, len(sizes))
    return sink.folder


NEVER = 1_000_000_000  # a day number no history reaches


def _day(value) -> np.ndarray | int:
    """Days since 1970-01-01 as int32 (a datetime64[D] array or scalar in)."""
    out = np.asarray(value, dtype="datetime64[D]").astype(np.int64)
    return out.astype(np.int32) if out.ndim else int(out)


def _date(days: np.ndarray) -> np.ndarray:
    """Day numbers back to datetime64[D], NEVER as NaT."""
    return np.where(days >= NEVER, np.datetime64("NaT"), days.astype("datetime64[D]"))


def _iso_week(day: int) -> int:
    return np.datetime64(int(day), "D").astype(object).isocalendar()[1]


def _escalation_hazard(strain: np.ndarray, notifications_last_year: np.ndarray) -> np.ndarray:
    """Weekly chance that a child gets a support measure or placement."""
    return np.clip(0.00030 * np.exp(1.0 * strain + 0.3 * np.minimum(notifications_last_year, 4)), 0, 0.2)


def _coded(prefix: str, count: int, width: int = 7, first: int = 0) -> pl.Series:
    """Record ids like U0000042: a prefix and a zero-padded serial number, counting from first."""
    return pl.select(pl.lit(prefix) + pl.int_range(first, first + count, dtype=pl.Int64).cast(pl.String).str.zfill(width)).to_series()


def _after(rng: np.random.Generator, days: np.ndarray, low: int, high: int) -> np.ndarray:
    """Knowledge dates: each event reaches the municipality low..high days after it happened."""
    return days + rng.integers(low, high + 1, len(days)).astype("timedelta64[D]")


def _extracts(rng, people, spec, rows, residents, substance, numbering: Numbering) -> dict[str, pl.DataFrame]:
    ids = people["person_id"]
    birth = people["birth_date"].to_numpy().astype("datetime64[D]")
    start = np.datetime64(spec.start, "D")
    end = np.datetime64(spec.end, "D")
    cut = pl.lit(spec.end)

    def frame(columns: dict, known: tuple[int, int], person: np.ndarray | None = None) -> pl.DataFrame:
        out = pl.DataFrame(columns)
        if person is not None:
            out = pl.DataFrame({"person_id": ids.gather(person)}).hstack(out)
        event = out["event_date"].to_numpy().astype("datetime64[D]")
        # Rows the municipality has not learned of by the end date are not in the extract yet.
        out = out.with_columns(known_date=pl.Series(_after(rng, event, *known)), version=pl.lit(1, pl.Int64))
        return out.filter(pl.col("known_date") <= cut)

    def ended(days: np.ndarray) -> pl.Series:
        # An end date is filled in once it has passed by the extract date; until then the course is open.
        days = np.asarray(days).astype(np.int64).astype("datetime64[D]")
        return pl.Series(np.where(days <= end, days, np.datetime64("NaT")).astype("datetime64[D]"))

    household = people["household"].to_numpy()
    moved_in = residents["moved_in"]
    first_seen = np.maximum(birth, np.where(moved_in < start, start - rng.integers(0, 15 * 365, len(birth)).astype("timedelta64[D]"), moved_in))
    first_seen = np.maximum(first_seen, birth)
    street = np.array(STREETS)[people["street"].to_numpy()]
    address = pl.Series(street) + " " + pl.Series(people["number"].to_numpy()).cast(pl.String)
    population = frame({
        "person_id": ids,
        "birth_date": birth,
        "sex": np.where(people["male"].to_numpy(), "M", "F"),
        "address": address,
        "household_id": pl.select(pl.lit("H") + pl.Series(household).cast(pl.String).str.zfill(7)).to_series(),
        "district": people["district"].to_numpy(),
        "origin_group": people["origin_group"].to_numpy(),
        "event_date": first_seen,
    }, (0, 5))

    ev_idx, ev_kind, ev_day = [], [], []
    for kind, days in (("moved_in", np.where(moved_in >= start, moved_in, np.datetime64("NaT"))),
                       ("moved_out", residents["out_at"]), ("moved_in", residents["back_at"]), ("died", residents["death"])):
        # Only those resident at the time are registered as moving; a child born later moves with no one.
        happened = ~np.isnat(days) & (birth <= days)
        idx = np.nonzero(happened)[0]
        ev_idx.append(idx)
        ev_kind.append(np.full(len(idx), kind))
        ev_day.append(days[idx])
    ev_idx = np.concatenate(ev_idx)
    events = frame({"event": np.concatenate(ev_kind), "event_date": np.concatenate(ev_day).astype("datetime64[D]")}, (0, 10), ev_idx)

    parents = people.filter(pl.col("role") == "parent").select("household", parent_id="person_id", male="male")
    children = people.filter(pl.col("role") == "child").select("household", child_id="person_id", child_birth="birth_date")
    links = parents.join(children, on="household")
    family = frame({
        "parent_id": links["parent_id"],
        "child_id": links["child_id"],
        "relation": np.where(links["male"].to_numpy(), "father", "mother"),
        "event_date": links["child_birth"].to_numpy().astype("datetime64[D]"),
    }, (0, 5))

    absence = rows["absence"]
    school_absence = frame({"event_date": absence.column(1, "datetime64[D]"), "absence_pct": absence.column(2, "int8").astype(np.float64) * 10.0},
                           (7, 14), absence.column(0))

    visits = rows["visits"]
    health_visits = frame({
        "service": visits.column(2, str), "outcome": np.where(visits.column(3, bool), "missed", "attended"),
        "event_date": visits.column(1, "datetime64[D]"),
    }, (3, 30), visits.column(0))

    n_idx, n_date = rows["notes"].column(0), rows["notes"].column(1, "datetime64[D]")
    age = (n_date - birth[n_idx]).astype(int) / 365.25
    notifier = np.where(
        age < 1, "health",
        np.where(age < 6, rng.choice(["daycare", "health", "relative", "anonymous"], p=[0.6, 0.2, 0.1, 0.1], size=len(age)),
                 np.where(age < 12, rng.choice(["school", "hospital", "relative", "anonymous"], p=[0.65, 0.1, 0.15, 0.1], size=len(age)),
                          rng.choice(["school", "police", "hospital", "relative"], p=[0.45, 0.35, 0.1, 0.1], size=len(age)))))
    notes = frame({
        "notification_id": _coded("U", len(n_idx), first=numbering.take("U", len(n_idx))),
        "person_id": ids.gather(n_idx), "notifier": notifier, "event_date": n_date,
    }, (0, 3))

    i_idx = rows["investigations"].column(0)
    investigations = frame({
        "investigation_id": _coded("B", len(i_idx), first=numbering.take("B", len(i_idx))),
        "person_id": ids.gather(i_idx), "event_date": rows["investigations"].column(1, "datetime64[D]"),
    }, (0, 7))

    m = rows["measures"]
    m_idx = m.column(0)
    placement = m.column(2, bool)
    measure = np.where(placement, "placement", rng.choice(["family_treatment", "contact_person"], size=len(m_idx)))
    teams = people["district"].gather(m_idx).replace_strict(FAMILY_TEAMS, return_dtype=pl.String)
    measures_frame = frame({
        "measure": measure, "team": teams, "end_date": ended(m.column(3, "datetime64[D]")),
        "event_date": m.column(1, "datetime64[D]"),
    }, (0, 14), m_idx)

    t = rows["treatment"]
    t_idx = t.column(0)
    treatment = frame({
        "substance": substance[t_idx], "end_date": ended(t.column(2, "datetime64[D]")), "event_date": t.column(1, "datetime64[D]"),
    }, (14, 60), t_idx)

    p_idx = rows["psych"].column(0)
    psych = frame({
        "contact": rng.choice(["outpatient", "emergency", "admission"], p=[0.7, 0.2, 0.1], size=len(p_idx)),
        "event_date": rows["psych"].column(1, "datetime64[D]"),
    }, (7, 45), p_idx)

    b = rows["benefits"]
    benefit_frame = frame({"benefit": np.array(BENEFITS)[b.column(2, "int8")], "event_date": b.column(1, "datetime64[D]")}, (7, 7), b.column(0))

    pol = rows["police"]
    pol_idx = pol.column(0)
    police = frame({
        "report_id": _coded("P", len(pol_idx), first=numbering.take("P", len(pol_idx))),
        "person_id": ids.gather(pol_idx), "role": pol.column(2, str), "event_date": pol.column(1, "datetime64[D]"),
    }, (1, 21))

    e = rows["notices"]
    e_idx, executed = e.column(0), e.column(2, bool)
    case = _coded("F", len(e_idx), 6, first=numbering.take("F", len(e_idx)))
    arrears = np.round(rng.lognormal(9.6, 0.6, len(e_idx)), 2)
    ex = np.nonzero(executed)[0]
    evictions = frame({
        "case_id": pl.concat([case, case.gather(ex)]),
        "person_id": ids.gather(np.concatenate([e_idx, e_idx[ex]])),
        "stage": np.concatenate([np.full(len(e_idx), "notice"), np.full(len(ex), "executed")]),
        "arrears_dkk": np.concatenate([arrears, arrears[ex]]),
        "event_date": np.concatenate([e.column(1, "datetime64[D]"), e.column(3).astype(np.int64).astype("datetime64[D]")[ex]]),
    }, (1, 30)).filter(pl.col("event_date") <= cut)

    h = rows["homeless"]
    h_idx = h.column(0)
    homelessness = frame({
        "situation": rng.choice(["shelter", "sofa_surfing", "rough_sleeping"], p=[0.55, 0.35, 0.10], size=len(h_idx)),
        "end_date": ended(h.column(2, "datetime64[D]")), "event_date": h.column(1, "datetime64[D]"),
    }, (1, 14), h_idx)

    s = rows["services"]
    s_idx = s.column(0)
    services = frame({
        "service": rng.choice(["home_support", "day_offer", "treatment", "residential"], p=[0.5, 0.2, 0.2, 0.1], size=len(s_idx)),
        "end_date": ended(s.column(2, "datetime64[D]")), "event_date": s.column(1, "datetime64[D]"),
    }, (0, 21), s_idx)

    from sources.registry import load_registry

    made = {
        "population": population, "population_events": events, "family_relations": family,
        "school_absence": school_absence, "health_visits": health_visits, "notifications": notes,
        "child_investigations": investigations, "support_measures": measures_frame, "substance_treatment": treatment,
        "psychiatric_contacts": psych, "benefits": benefit_frame, "police_contacts": police, "evictions": evictions,
        "homelessness": homelessness, "adult_services": services,
    }
    # Columns in registry order and types, so every extract looks like its description.
    registry = load_registry()
    types = {"str": pl.String, "date": pl.Date, "float": pl.Float64, "int": pl.Int64}
    return {
        name: frame.select([pl.col(c.name).cast(types[c.type]) for c in registry[name].columns])
        for name, frame in made.items()
    }


def _make_mess(rng: np.random.Generator, extracts: dict[str, pl.DataFrame], spec: SynthSpec):
    """Add the faults of real deliveries to about spec.mess of each event register's rows; count them."""
    counts: dict[str, dict[str, int]] = {}
    if spec.mess <= 0:
        return extracts, counts
    from sources.registry import load_registry

    registry = load_registry()
    end = pl.lit(spec.end)
    known_ids = extracts["population"]["person_id"]
    out = {}
    for name, frame in extracts.items():
        source = registry[name]
        n = frame.height
        share = spec.mess
        pick = lambda p: rng.random(n) < p  # noqa: E731
        mess = {"late": 0, "corrections": 0, "duplicates": 0, "redelivered": 0, "unknown_ids": 0}
        if name == "population" or n == 0:
            out[name], counts[name] = frame, mess
            continue
        late = pick(share)
        delay = np.where(late, rng.integers(30, 180, n), 0).astype("timedelta64[D]")
        later = frame.with_columns(known_date=pl.Series(frame["known_date"].to_numpy().astype("datetime64[D]") + delay))
        # A late row not yet known on the extract date has simply not arrived.
        arrived = later["known_date"] <= spec.end
        mess["late"] = int((pl.Series(late) & arrived).sum())
        frame = later.filter(arrived)
        n = frame.height
        pieces = [frame]

        column = CORRECTABLE.get(name)
        corrected = frame.filter(pl.Series(pick(share / 2)[:n]))
        if column is not None and corrected.height:
            fixed = corrected.with_columns(version=pl.lit(2, pl.Int64), known_date=pl.col("known_date") + pl.duration(days=30))
            col = source.column(column)
            if col.values:
                fixed = fixed.with_columns(pl.Series(column, rng.choice(col.values, size=fixed.height)))
            elif col.type == "float":
                hi = col.max if col.max is not None else 1e9
                fixed = fixed.with_columns(pl.Series(column, np.round(rng.uniform(col.min or 0, min(hi, 40_000), fixed.height), 1)))
            elif col.type == "date":
                fixed = fixed.with_columns(pl.min_horizontal(pl.col("event_date") + pl.duration(days=60), end).alias(column))
            else:
                fixed = fixed.with_columns(pl.lit("familie-nord").alias(column))
            fixed = fixed.filter(pl.col("known_date") <= end)
            mess["corrections"] = fixed.height
            pieces.append(fixed)

        dups = frame.filter(pl.Series(pick(share / 4)[:n]))
        mess["duplicates"] = dups.height
        pieces.append(dups)
        again = frame.filter(pl.Series(pick(share / 4)[:n])).with_columns(known_date=pl.col("known_date") + pl.duration(days=7))
        again = again.filter(pl.col("known_date") <= end)
        mess["redelivered"] = again.height
        pieces.append(again)

        id_columns = [c for c in source.person_id_columns]
        strays = frame.filter(pl.Series(pick(share / 10)[:n]))
        if id_columns and strays.height:
            stray_ids = pl.Series([f"{d:02d}{m:02d}{y:02d}-{s:04d}" for d, m, y, s in zip(
                rng.integers(1, 29, strays.height), rng.integers(1, 13, strays.height),
                rng.integers(0, 100, strays.height), rng.integers(9000, 9999, strays.height))])
            strays = strays.with_columns(stray_ids.alias(id_columns[0]))
            strays = strays.filter(~pl.col(id_columns[0]).is_in(known_ids.implode()))
            if not set(source.keys) & set(id_columns):  # a stray row is a new record, not a copy of one
                strays = strays.with_columns(pl.col(k) + "X" for k in source.keys if frame.schema[k] == pl.String)
            mess["unknown_ids"] = strays.height
            pieces.append(strays)
        out[name] = pl.concat(pieces)
        counts[name] = mess
    return out, counts
