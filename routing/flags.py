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
    legal_duty: str | None = None  # for a rule marked legal_duty: why the law says the flag must reach a person

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
    queued: bool  # flags stored before the capacity cut could wait beyond capacity; routing no longer queues
    score: int | None  # 1-20, None when the person was not scored
    probability: float | None
    model_version: str | None
    rules_version: str
    reasons: tuple[Reason, ...]
    suppressed_by: tuple[Suppression, ...] = ()  # kept, with why, instead of being put on the list
    # The model's top signals behind the score, in plain words (feature, value, contribution,
    # text_da, text_en; on a family flag also the member's person).
    signals: tuple[dict, ...] = ()
    # Where the flag stood in the week's ranking (the config's ranking policy); None when suppressed.
    ranking_value: float | None = None
    # Each member's own score, one entry per person the flag is about (person, target, age_years,
    # score, probability, level_risk: the calibrated risk of the member's score level).
    member_scores: tuple[dict, ...] = ()

    @property
    def legal_duty(self) -> bool:
        """True when a reason's rule is a legal duty: the flag passed the team's capacity cut for it."""
        return any(r.legal_duty for r in self.reasons)

    @property
    def suppressed(self) -> bool:
        """True when a suppression rule keeps this flag off the team's list."""
        return bool(self.suppressed_by)

    @property
    def members(self) -> tuple[str, ...]:
        """The persons the flag is about: the family's members in order, or the one person."""
        named = [m for r in self.reasons for m in ((r.person,) if r.person is not None else r.members)]
        return tuple(dict.fromkeys(named)) or (self.person,)


@dataclass(frozen=True)
class BelowCapacity:
    """A person or family that a rule raised but the week's ranking put below the team's capacity.

    Not a flag and not a queue: nobody is asked to act on it. It is kept so that who was left out,
    and why, can be audited and compared later with those just above the cut.
    """

    as_of: date
    person: str  # for a family, the member it is routed by
    target: str
    team: str
    rank: int  # position in the team's ranking of the week, after the flags shown
    priority: int
    ranking_value: float
    score: int | None
    probability: float | None
    model_version: str | None
    rules_version: str
    rule_ids: tuple[str, ...]
    members: tuple[str, ...]  # everyone it is about: a family's members, or the one person


@dataclass(frozen=True)
class TeamCut:
    """One team's cut of the week: how many it could take, how many it sees and where the line fell."""

    team: str
    capacity: int
    candidates: int  # flags the rules raised for the team, suppressed ones not counted
    shown: int  # flags on the team's list: the best-ranked within capacity, and every legal duty
    legal_duty: int  # of those shown, flags that passed the cut for a legal duty
    below: int  # ranked below the capacity this week
    cutoff_score: int | None  # score of the lowest-ranked flag shown on ranking (the capacity-th); None when all fit
    cutoff_value: float | None  # its ranking value


@dataclass(frozen=True)
class Routing:
    """What routing decides for one as-of date: the flags teams see, those below capacity, and each team's cut."""

    flags: list[FlagDraft]  # the teams' lists (rank 1 up) and what suppression held back (rank 0)
    below: list[BelowCapacity]
    cuts: list[TeamCut]
