"""The feature catalogue: one declaration per feature; the name says the output.

Texts say a feature's value the way a caseworker would (features/texts.py fills them in):
{value} is the number; {ago} the days since, as "for 3 måneder siden" / "3 months ago"; {parent}
who the value is about ("far", "mor", "begge forældre" / "the father", ...); {one|other} picks the
singular form when the value is 1 and the plural otherwise. Keys: "da"/"en", "da_missing"/
"en_missing" for a person without a value, "da_down"/"en_down" for a negative value (said as its
size).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Agg = Literal["count", "mean", "days_since_last", "change_in_mean", "longest_spell_weeks"]
# How the values of a person's relatives become the person's value.
Over = Literal["parents_with_any", "max", "min", "sum"]
COUNT_LIKE = ("count", "longest_spell_weeks")  # no rows means 0, not unknown
SPELL_GAP_DAYS = 7  # weekly rows at most a week apart belong to the same spell


@dataclass(frozen=True)
class Feature:
    """A per-person aggregate of one source's rows in a window that ends on the as-of date."""

    name: str
    why: str
    source: str
    agg: Agg
    window_days: int | None  # None: all history known on the as-of date
    column: str | None = None  # the column averaged by "mean" and "change_in_mean"
    where: dict[str, tuple[str, ...]] = field(default_factory=dict)  # keep rows whose column is in the set
    # "parents": the person's parents' own values, combined by `over`; "siblings": the values of
    # the other children of any of the person's parents, summed.
    of: Literal["self", "parents", "siblings"] = "self"
    over: Over | None = None
    texts: dict[str, str] = field(default_factory=dict)
    # A short name for the value where pages list it, "da" and "en" ("Underretninger det seneste år").
    label: dict[str, str] = field(default_factory=dict)

    @property
    def names_parent(self) -> bool:
        """Whether the table says which parent the value is about (column `<name>_parent`)."""
        return self.of == "parents"

    def explain(self, source_title: str = "") -> str:
        """What the feature computes, in one line for auditors."""
        window = f"the last {self.window_days} days" if self.window_days else "all history known"
        what = {
            "count": "number of rows",
            "mean": f"mean of {self.column}",
            "days_since_last": "days since the latest row",
            "change_in_mean": f"mean of {self.column} minus its mean in the {self.window_days} days before",
            "longest_spell_weeks": f"longest run of rows at most {SPELL_GAP_DAYS} days apart (weeks in a row)",
        }[self.agg]
        where = "".join(f", where {column} is {' or '.join(values)}" for column, values in self.where.items())
        of = {
            "self": "",
            "parents": {"parents_with_any": ", counting the person's parents with any", "max": ", the highest of the person's parents",
                        "min": ", the lowest (most recent) of the person's parents"}.get(self.over or "", ""),
            "siblings": ", summed over the person's siblings (other children of the same parents)",
        }[self.of]
        source = f"{self.source} ({source_title})" if source_title else self.source
        return f"{what} in {source}{where}, {window}{of}"


def _count(name: str, why: str, source: str, days: int, da: str, en: str, **kw) -> Feature:
    return Feature(name=name, why=why, source=source, agg="count", window_days=days, texts={"da": da, "en": en}, **kw)


MISSED = {"outcome": ("missed",)}

CATALOGUE: tuple[Feature, ...] = (
    # The child's own signals.
    _count("notifications_365d", "Repeated notifications from professionals are the clearest early sign that a child's situation is worsening.",
           "notifications", 365, "{value} {underretning|underretninger} det seneste år", "{value} {notification|notifications} in the past year",
           label={"da": "Underretninger det seneste år", "en": "Notifications in the past year"}),
    _count("notifications_90d", "Several notifications in one quarter show a situation worsening now, not a year ago.",
           "notifications", 90, "{value} {underretning|underretninger} de seneste 90 dage", "{value} {notification|notifications} in the past 90 days",
           label={"da": "Underretninger de seneste 90 dage", "en": "Notifications in the past 90 days"}),
    Feature(
        name="days_since_last_notification",
        why="A recent notification weighs more than an old one.",
        source="notifications", agg="days_since_last", window_days=None,
        texts={"da": "den seneste underretning kom {ago}", "en": "the latest notification came {ago}",
               "da_missing": "ingen underretninger registreret", "en_missing": "no notifications on record"},
        label={"da": "Dage siden seneste underretning", "en": "Days since the latest notification"},
    ),
    _count("siblings_notifications_365d", "Professionals worried about a brother or sister have often seen the same home.",
           "notifications", 365, "{value} {underretning|underretninger} om søskende det seneste år",
           "{value} {notification|notifications} about siblings in the past year", of="siblings", over="sum",
           label={"da": "Underretninger om søskende det seneste år", "en": "Notifications about siblings in the past year"}),
    Feature(
        name="school_absence_pct_90d",
        why="Absence of 15% or more in a quarter is the legal threshold the school and municipality must act on.",
        source="school_absence", agg="mean", column="absence_pct", window_days=90,
        texts={"da": "{value} % fravær fra skolen de seneste 90 dage", "en": "{value}% absence from school in the past 90 days",
               "da_missing": "intet skolefravær registreret de seneste 90 dage", "en_missing": "no school absence on record in the past 90 days"},
        label={"da": "Skolefravær de seneste 90 dage", "en": "School absence in the past 90 days"},
    ),
    Feature(
        name="school_absence_pct_change_90d",
        why="Absence rising from one quarter to the next shows strain at home building up before it reaches the threshold.",
        source="school_absence", agg="change_in_mean", column="absence_pct", window_days=90,
        texts={"da": "skolefraværet er steget {value} procentpoint de seneste 90 dage i forhold til de 90 dage før",
               "en": "school absence rose by {value} percentage {point|points} in the past 90 days compared with the 90 days before",
               "da_down": "skolefraværet er faldet {value} procentpoint de seneste 90 dage i forhold til de 90 dage før",
               "en_down": "school absence fell by {value} percentage {point|points} in the past 90 days compared with the 90 days before"},
        label={"da": "Ændring i skolefravær mod de 90 dage før (procentpoint)", "en": "Change in school absence against the 90 days before (percentage points)"},
    ),
    _count("missed_health_visitor_visits_365d", "Missed health-visitor visits in a baby's first year are an early sign of a family under strain.",
           "health_visits", 365, "{value} {udeblivelse|udeblivelser} fra sundhedsplejersken det seneste år",
           "{value} missed health-visitor {visit|visits} in the past year", where={"service": ("health_visitor",), **MISSED},
           label={"da": "Udeblivelser fra sundhedsplejen det seneste år", "en": "Missed health-visitor visits in the past year"}),
    _count("missed_dental_visits_365d", "Missed child dental care was one of the signals the Gladsaxe model was built on.",
           "health_visits", 365, "{value} {udeblivelse|udeblivelser} fra tandplejen det seneste år",
           "{value} missed dental {appointment|appointments} in the past year", where={"service": ("dental",), **MISSED},
           label={"da": "Udeblivelser fra børnetandplejen det seneste år", "en": "Missed dental appointments in the past year"}),
    # Anyone's own signals (police and psychiatry reach both teenagers and adults).
    _count("police_contacts_365d", "Police reports shared in the SSP co-operation are where crime prevention for teenagers starts.",
           "police_contacts", 365, "{value} {sag|sager} fra politiet (SSP) det seneste år", "{value} police {report|reports} (SSP) in the past year",
           label={"da": "Politianmeldelser (SSP) det seneste år", "en": "Police reports (SSP) in the past year"}),
    _count("police_contacts_90d", "Several police reports in one quarter call for a response now.",
           "police_contacts", 90, "{value} {sag|sager} fra politiet (SSP) de seneste 90 dage", "{value} police {report|reports} (SSP) in the past 90 days",
           label={"da": "Politianmeldelser (SSP) de seneste 90 dage", "en": "Police reports (SSP) in the past 90 days"}),
    _count("psychiatric_contacts_365d", "Contacts with psychiatry show a mental illness that may need coordinated social help.",
           "psychiatric_contacts", 365, "{value} {kontakt|kontakter} med psykiatrien det seneste år",
           "{value} psychiatric {contact|contacts} in the past year",
           label={"da": "Kontakter med psykiatrien det seneste år", "en": "Psychiatric contacts in the past year"}),
    _count("psychiatric_contacts_90d", "Psychiatric contacts in the last quarter mean the illness is active now.",
           "psychiatric_contacts", 90, "{value} {kontakt|kontakter} med psykiatrien de seneste 90 dage",
           "{value} psychiatric {contact|contacts} in the past 90 days",
           label={"da": "Kontakter med psykiatrien de seneste 90 dage", "en": "Psychiatric contacts in the past 90 days"}),
    # An adult's own signals.
    _count("substance_treatment_365d", "An adult who started alcohol or drug treatment may need coordinated help, especially with children at home.",
           "substance_treatment", 365, "{value} {start|starter} i alkohol- eller stofbehandling det seneste år",
           "{value} alcohol or drug treatment {start|starts} in the past year",
           label={"da": "Starter i misbrugsbehandling det seneste år", "en": "Substance treatment starts in the past year"}),
    _count("benefit_weeks_365d", "Long benefit spells are where early employment and social help pays off most.",
           "benefits", 365, "{value} {uge|uger} på offentlig forsørgelse det seneste år", "{value} {week|weeks} on public benefits in the past year",
           label={"da": "Uger på offentlig forsørgelse det seneste år", "en": "Weeks on public benefits in the past year"}),
    Feature(
        name="longest_benefit_spell_weeks_365d",
        why="An unbroken spell on benefits weighs more than the same weeks spread out: the longer it runs, the harder the way back.",
        source="benefits", agg="longest_spell_weeks", window_days=365,
        texts={"da": "{value} {uge|uger} i træk på offentlig forsørgelse, den længste periode det seneste år",
               "en": "{value} {week|weeks} in a row on public benefits, the longest spell in the past year"},
        label={"da": "Længste periode på offentlig forsørgelse det seneste år (uger i træk)", "en": "Longest spell on public benefits in the past year (weeks in a row)"},
    ),
    _count("eviction_notices_365d", "An eviction notice for rent arrears is the last point at which a home can still be saved.",
           "evictions", 365, "{value} {varsel|varsler} om udsættelse af boligen det seneste år",
           "{value} eviction {notice|notices} in the past year", where={"stage": ("notice",)},
           label={"da": "Varsler om udsættelse det seneste år", "en": "Eviction notices in the past year"}),
    _count("homelessness_365d", "Homelessness is both a sign of and a cause of deeper social problems.",
           "homelessness", 365, "registreret som hjemløs {value} {gang|gange} det seneste år", "registered homeless {value} {time|times} in the past year",
           label={"da": "Registreret hjemløs det seneste år (gange)", "en": "Registered homeless in the past year (times)"}),
    _count("adult_services_365d", "Adult social services granted show a need the adult department already knows of.",
           "adult_services", 365, "{value} {bevilling|bevillinger} af social støtte til voksne det seneste år",
           "{value} adult social {service|services} granted in the past year",
           label={"da": "Bevillinger på voksenområdet det seneste år", "en": "Adult social services granted in the past year"}),
    # The parents' signals, carried to each of their children.
    _count("parent_substance_treatment_365d", "Almost half of all placements are linked to a parent's substance abuse; a treatment start shows it.",
           "substance_treatment", 365, "{parent} er startet i alkohol- eller stofbehandling det seneste år",
           "{parent} started alcohol or drug treatment in the past year", of="parents", over="parents_with_any",
           label={"da": "Forældre startet i misbrugsbehandling det seneste år", "en": "Parents who started substance treatment in the past year"}),
    Feature(
        name="parent_days_since_alcohol_treatment",
        why="The average alcohol abuser has abused for 12 years before treatment starts: a recent start means the child has lived with it.",
        source="substance_treatment", agg="days_since_last", window_days=None, where={"substance": ("alcohol",)},
        of="parents", over="min",
        texts={"da": "{parent} har påbegyndt alkoholbehandling {ago}", "en": "{parent} started alcohol treatment {ago}"},
        label={"da": "Dage siden en forælder startede i alkoholbehandling", "en": "Days since a parent started alcohol treatment"},
    ),
    Feature(
        name="parent_days_since_drug_treatment",
        why="A parent's drug treatment start shows an abuse the child has lived with, and a moment when the family can be offered help.",
        source="substance_treatment", agg="days_since_last", window_days=None, where={"substance": ("drugs",)},
        of="parents", over="min",
        texts={"da": "{parent} har påbegyndt stofbehandling {ago}", "en": "{parent} started drug treatment {ago}"},
        label={"da": "Dage siden en forælder startede i stofbehandling", "en": "Days since a parent started drug treatment"},
    ),
    _count("parent_psychiatric_contacts_365d", "A parent's mental illness is one of the most common reasons a child needs support.",
           "psychiatric_contacts", 365, "{parent} har haft kontakt med psykiatrien det seneste år",
           "{parent} had contact with psychiatry in the past year", of="parents", over="parents_with_any",
           label={"da": "Forældre i kontakt med psykiatrien det seneste år", "en": "Parents in contact with psychiatry in the past year"}),
    _count("parent_police_contacts_365d", "A parent's police reports often go with abuse or violence the child lives with.",
           "police_contacts", 365, "{parent} har haft en sag hos politiet det seneste år",
           "{parent} had a police report in the past year", of="parents", over="parents_with_any",
           label={"da": "Forældre med en politianmeldelse det seneste år", "en": "Parents with a police report in the past year"}),
    _count("parent_eviction_notices_365d", "An eviction threatens the child's home, school and friends at once.",
           "evictions", 365, "{parent} har fået varsel om udsættelse af boligen det seneste år",
           "{parent} received an eviction notice in the past year", of="parents", over="parents_with_any", where={"stage": ("notice",)},
           label={"da": "Forældre med varsel om udsættelse det seneste år", "en": "Parents with an eviction notice in the past year"}),
    _count("parent_homelessness_365d", "A parent without a home cannot give a child a stable daily life.",
           "homelessness", 365, "{parent} har været registreret som hjemløs det seneste år",
           "{parent} {was|were} registered homeless in the past year", of="parents", over="parents_with_any",
           label={"da": "Forældre registreret hjemløse det seneste år", "en": "Parents registered homeless in the past year"}),
    _count("parent_benefit_weeks_365d", "Long spells on cash or sickness benefit strain a family's economy and daily life.",
           "benefits", 365, "{parent} har modtaget kontanthjælp eller sygedagpenge i {value} {uge|uger} det seneste år",
           "{parent} received cash or sickness benefit for {value} {week|weeks} in the past year",
           where={"benefit": ("cash_benefit", "sickness")}, of="parents", over="max",
           label={"da": "En forælders uger på kontanthjælp eller sygedagpenge det seneste år", "en": "A parent's weeks on cash or sickness benefit in the past year"}),
    Feature(
        name="parent_longest_benefit_spell_weeks_365d",
        why="A parent long out of work without a break strains the family more than the same weeks spread out.",
        source="benefits", agg="longest_spell_weeks", window_days=365, of="parents", over="max",
        texts={"da": "{parent} har været på offentlig forsørgelse i {value} {uge|uger} i træk det seneste år",
               "en": "{parent} received public benefits for {value} {week|weeks} in a row in the past year"},
        label={"da": "En forælders længste periode på offentlig forsørgelse det seneste år (uger i træk)", "en": "A parent's longest spell on public benefits in the past year (weeks in a row)"},
    ),
)

FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in CATALOGUE)
