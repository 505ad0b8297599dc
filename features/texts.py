"""A feature's value said in plain Danish or English, from the texts declared with the feature."""

from __future__ import annotations

import math
import re

LANGUAGES = ("da", "en")
PARENTS = {
    "da": {"mother": "mor", "father": "far", "both": "begge forældre", None: "en forælder"},
    "en": {"mother": "the mother", "father": "the father", "both": "both parents", None: "a parent"},
}
# (up to days, unit in days, Danish one/other, English one/other): recency as a caseworker says it.
_UNITS = (
    (13, 1, ("dag", "dage"), ("day", "days")),
    (59, 7, ("uge", "uger"), ("week", "weeks")),
    (729, 30.44, ("måned", "måneder"), ("month", "months")),
    (math.inf, 365.25, ("år", "år"), ("year", "years")),
)
_CHOICE = re.compile(r"\{([^{}|]*)\|([^{}|]*)\}")


def number(value: float, language: str) -> str:
    """Whole numbers bare, others with one decimal (a comma in Danish)."""
    text = f"{value:.0f}" if float(value).is_integer() else f"{value:.1f}"
    return text.replace(".", ",") if language == "da" else text


def ago(days: float, language: str) -> str:
    """Days before the as-of date in the unit a person would use: "for 3 måneder siden" / "3 months ago"."""
    if days < 1:
        return "i dag" if language == "da" else "today"
    for up_to, unit, da, en in _UNITS:
        if days <= up_to:
            n = max(1, round(days / unit))
            word = (da if language == "da" else en)[n != 1]
            return f"for {n} {word} siden" if language == "da" else f"{n} {word} ago"
    raise AssertionError("the last unit has no upper bound")


def say(texts: dict[str, str], value: float | None, language: str, *, parent: str | None = None, parents_counted: bool = False) -> str | None:
    """The text of one value, or None when the feature has no text for this case.

    `parent` is "mother", "father" or "both" when the value is about known parents; without it,
    a count of parents (`parents_counted`) of 2 or more is said as both parents.
    """
    if language not in LANGUAGES:
        raise ValueError(f"language must be one of {LANGUAGES}, got {language!r}")
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return texts.get(f"{language}_missing")
    template = texts.get(f"{language}_down") if value < 0 else None
    size = abs(value) if template else value
    template = template or texts.get(language)
    if template is None:
        return None
    if parent is None and parents_counted and value >= 2:
        parent = "both"
    if parent not in PARENTS[language]:
        raise ValueError(f"parent must be one of mother, father, both or None, got {parent!r}")
    chosen = _CHOICE.sub(lambda m: m.group(1) if size == 1 else m.group(2), template)
    return chosen.format(value=number(size, language), ago=ago(size, language), parent=PARENTS[language][parent])
