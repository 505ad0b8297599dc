"""What routing hands to the casework store: one flag draft per person, with all its reasons."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any


@dataclass(frozen=True)
class Reason:
    """One rule that fired for a person, with the values that made it fire."""

    rule_id: str
    title_da: str
    title_en: str
    text_da: str  # plain Danish, e.g. "3 underretninger det seneste år"
    text_en: str
    priority: int  # 1 is most urgent
    values: dict[str, Any] = field(default_factory=dict)
    person: str | None = None  # whose reason it is; set on every person's reason of a family flag
    members: tuple[str, ...] = ()  # for a family rule: every member of the family whose values it read

    def __post_init__(self) -> None:
        # Read back from the store's JSON, the members come as a list.
        object.__setattr__(self, "members", tuple(self.members))


@dataclass(frozen=True)
class Suppression:
    """One suppression rule that held for a flag, with the values that made it hold."""

    rule_id: str
    title_da: str
    title_en: str
    text_da: str
    text_en: str
    values: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class FlagDraft:
    """A flag before it is stored: who, where it goes, how urgent, and why."""

    as_of: date
    person: str  # pseudonym, never a CPR number; for a family flag, the member it is routed by
    target: str  # "child", "adult" or "family"
    team: str
    priority: int  # the most urgent priority among the reasons
    rank: int  # 1-based position in the team's list for this as-of date; 0 when suppressed (on no list)
    queued: bool  # True when beyond the team's weekly capacity: waits, visible to the team lead
    score: int | None  # 1-20, None when the person was not scored
    probability: float | None
    model_version: str | None
    rules_version: str
    reasons: tuple[Reason, ...]
    suppressed_by: tuple[Suppression, ...] = ()  # kept, with why, instead of being put on the list
    # The model's top signals behind the score, in plain words (feature, value, contribution,
    # text_da, text_en; on a family flag also the member's person).
    signals: tuple[dict, ...] = ()
    # Each member's own score, one entry per person the flag is about (person, target, age_years,
    # score, probability, level_risk: the calibrated risk of the member's score level).
    member_scores: tuple[dict, ...] = ()

    @property
    def suppressed(self) -> bool:
        """True when a suppression rule keeps this flag off the team's list."""
        return bool(self.suppressed_by)

    @property
    def members(self) -> tuple[str, ...]:
        """The persons the flag is about: the family's members in order, or the one person."""
        named = [m for r in self.reasons for m in ((r.person,) if r.person is not None else r.members)]
        return tuple(dict.fromkeys(named)) or (self.person,)
