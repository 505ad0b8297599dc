"""The routing table: teams with their weekly capacity, and the ordered routes that pick a person's team."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from rules.conditions import PERSON_SCHEMA, ConditionError, parse_condition
from rules.yamlfile import load_yaml

TEAMS_FILE = Path(__file__).with_name("teams.yaml")
_TABLE_KEYS = {"version", "owner", "teams", "routes"}
_TEAM_KEYS = {"id", "name", "department", "weekly_capacity"}
_ROUTE_KEYS = {"name", "when"}
_ROUTE_TARGETS = ("team", "team_from", "team_by_district")
_TEAM_ID = re.compile(r"^[a-z][a-z0-9-]*$")
# Only a text column can hold a team id.
_TEAM_COLUMNS = [c for c, dtype in PERSON_SCHEMA.items() if dtype == pl.String and c != "person"]


class RoutingError(ValueError):
    """The routing table or a routing run is wrong; the message names the file, the item and the key."""


@dataclass(frozen=True)
class Team:
    id: str
    name: str
    department: str
    weekly_capacity: int


@dataclass(frozen=True)
class Route:
    """One line of the table: when it holds, the person goes to a team, a column's team or a district's team."""

    name: str
    when: str
    team: str | None = None
    team_from: str | None = None
    team_by_district: tuple[tuple[str, str], ...] | None = None

    def matches(self) -> pl.Expr:
        """True where this route decides; a district the route does not list is left to later routes."""
        holds = pl.sql_expr(self.when).fill_null(False)
        if self.team_from:
            return holds & pl.col(self.team_from).is_not_null()
        if self.team_by_district:
            return holds & pl.col("district").is_in([d for d, _ in self.team_by_district])
        return holds

    def team_of(self) -> pl.Expr:
        """The team id this route gives a matching row."""
        if self.team_from:
            return pl.col(self.team_from)
        if self.team_by_district:
            return pl.col("district").replace_strict(dict(self.team_by_district), default=None, return_dtype=pl.String)
        return pl.lit(self.team, dtype=pl.String)


@dataclass(frozen=True)
class RoutingTable:
    version: str
    owner: str
    teams: tuple[Team, ...]
    routes: tuple[Route, ...]

    def team(self, team_id: str) -> Team:
        """The team with this id, or RoutingError listing the ids there are."""
        for team in self.teams:
            if team.id == team_id:
                return team
        raise RoutingError(f"no team '{team_id}'; teams: {[t.id for t in self.teams]}")


def _mapping(spec: Any, required: set[str], optional: set[str], where: str) -> dict[str, Any]:
    if not isinstance(spec, dict):
        raise RoutingError(f"{where}: expected a mapping with keys {sorted(required)}, got {spec!r}")
    missing = required - spec.keys()
    if missing:
        raise RoutingError(f"{where}: missing key(s) {sorted(missing)}")
    unknown = spec.keys() - required - optional
    if unknown:
        allowed = sorted(required | optional)
        raise RoutingError(f"{where}: unknown key(s) {sorted(map(str, unknown))}; allowed: {allowed}")
    return spec


def _text(spec: dict[str, Any], key: str, where: str) -> str:
    if not isinstance(spec[key], str) or not spec[key].strip():
        raise RoutingError(f"{where}, key '{key}': expected a non-empty text, got {spec[key]!r}")
    return spec[key].strip()


def _team(spec: Any, index: int, file: str) -> Team:
    team_id = spec.get("id") if isinstance(spec, dict) else None
    where = f"{file}: team '{team_id}'" if isinstance(team_id, str) else f"{file}: team #{index + 1}"
    _mapping(spec, _TEAM_KEYS, set(), where)
    if not isinstance(team_id, str) or not _TEAM_ID.match(team_id):
        raise RoutingError(
            f"{where}, key 'id': {team_id!r} must be lowercase letters, digits and '-', like 'familie-nord'"
        )
    capacity = spec["weekly_capacity"]
    if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 0:
        raise RoutingError(f"{where}, key 'weekly_capacity': expected a whole number 0 or more, got {capacity!r}")
    return Team(team_id, _text(spec, "name", where), _text(spec, "department", where), capacity)


def _route(spec: Any, index: int, file: str, team_ids: list[str]) -> Route:
    name = spec.get("name") if isinstance(spec, dict) else None
    where = f"{file}: route '{name}'" if isinstance(name, str) else f"{file}: route #{index + 1}"
    _mapping(spec, _ROUTE_KEYS, set(_ROUTE_TARGETS), where)
    given = [key for key in _ROUTE_TARGETS if key in spec]
    if len(given) != 1:
        raise RoutingError(f"{where}: give exactly one of {list(_ROUTE_TARGETS)}, got {given or 'none'}")
    try:
        parse_condition(spec["when"])
    except ConditionError as exc:
        raise RoutingError(f"{where}, key 'when': {exc}") from None
    name, when, key = _text(spec, "name", where), spec["when"].strip(), given[0]
    if key == "team_from":
        if spec[key] not in _TEAM_COLUMNS:
            raise RoutingError(f"{where}, key 'team_from': {spec[key]!r} is not a text column; allowed: {_TEAM_COLUMNS}")
        return Route(name, when, team_from=spec[key])
    if key == "team":
        _check_team(spec[key], team_ids, f"{where}, key 'team'")
        return Route(name, when, team=spec[key])
    districts = spec[key]
    if not isinstance(districts, dict) or not districts:
        raise RoutingError(f"{where}, key '{key}': expected a mapping of district: team id, got {districts!r}")
    for district, team_id in districts.items():
        if not isinstance(district, str):
            raise RoutingError(f"{where}, key '{key}': district {district!r} must be text")
        _check_team(team_id, team_ids, f"{where}, key '{key}'")
    return Route(name, when, team_by_district=tuple(districts.items()))


def _check_team(team_id: Any, team_ids: list[str], where: str) -> None:
    if team_id not in team_ids:
        raise RoutingError(f"{where}: team {team_id!r} is not defined; teams: {team_ids}")


def load_routing_table(path: Path | str | None = None) -> RoutingTable:
    """The routing table in a YAML file (None: teams.yaml beside this module, as the config's unset routing.table), checked key by key."""
    path = Path(TEAMS_FILE if path is None else path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise RoutingError(f"{path.name}: cannot read the routing table: {exc.strerror}") from None
    data = _mapping(load_yaml(raw, path.name, RoutingError), _TABLE_KEYS, set(), path.name)
    if not isinstance(data["version"], str):
        raise RoutingError(f"{path.name}, key 'version': expected quoted text like '2025.1', got {data['version']!r}")
    for key in ("teams", "routes"):
        if not isinstance(data[key], list) or not data[key]:
            raise RoutingError(f"{path.name}, key '{key}': expected a non-empty list")
    teams = tuple(_team(spec, i, path.name) for i, spec in enumerate(data["teams"]))
    team_ids = [t.id for t in teams]
    duplicates = sorted({t for t in team_ids if team_ids.count(t) > 1})
    if duplicates:
        raise RoutingError(f"{path.name}, key 'teams': team id(s) {duplicates} defined more than once")
    routes = tuple(_route(spec, i, path.name, team_ids) for i, spec in enumerate(data["routes"]))
    version = f"{data['version']}#{hashlib.sha256(raw).hexdigest()[:12]}"
    return RoutingTable(version, _text(data, "owner", path.name), teams, routes)
