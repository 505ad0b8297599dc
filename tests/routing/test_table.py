"""The routing table loads, and refuses bad input with a message naming the file, the item and the key."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from routing.table import TEAMS_FILE, RoutingError, load_routing_table

SHIPPED = yaml.safe_load(TEAMS_FILE.read_text(encoding="utf-8"))


def write(folder: Path, data: dict) -> Path:
    path = folder / "teams.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def changed(section: str, index: int, **changes) -> dict:
    data = copy.deepcopy(SHIPPED)
    for key, value in changes.items():
        if value is ...:
            del data[section][index][key]
        else:
            data[section][index][key] = value
    return data


def test_shipped_table_has_the_teams_of_the_domain():
    table = load_routing_table()
    assert [t.id for t in table.teams] == [
        "sundhedsplejen", "familie-nord", "familie-syd", "familie-oest", "familie-vest", "voksen", "jobcenter",
    ]
    assert table.team("familie-oest").name == "Familieafdelingen, distrikt Øst"
    assert all(t.weekly_capacity > 0 for t in table.teams)
    assert table.routes[0].team_from == "case_team"
    assert table.version.startswith("2025.1#")


BAD = {
    "unknown top key": ({**SHIPPED, "colour": "red"}, ["'colour'", "allowed"]),
    "missing top key": ({k: v for k, v in SHIPPED.items() if k != "routes"}, ["missing", "'routes'"]),
    "version as number": ({**SHIPPED, "version": 2025.1}, ["key 'version'"]),
    "no teams": ({**SHIPPED, "teams": []}, ["key 'teams'"]),
    "unknown team key": (changed("teams", 1, colour="red"), ["team 'familie-nord'", "'colour'", "allowed"]),
    "missing team key": (changed("teams", 1, department=...), ["team 'familie-nord'", "missing", "'department'"]),
    "negative capacity": (changed("teams", 1, weekly_capacity=-1), ["team 'familie-nord'", "key 'weekly_capacity'"]),
    "capacity as text": (changed("teams", 1, weekly_capacity="ten"), ["key 'weekly_capacity'"]),
    "capacity as boolean": (changed("teams", 1, weekly_capacity=True), ["key 'weekly_capacity'"]),
    "bad team id": (changed("teams", 1, id="Familie Nord"), ["team 'Familie Nord'", "key 'id'"]),
    "duplicate team id": (changed("teams", 2, id="familie-nord"), ["key 'teams'", "familie-nord", "more than once"]),
    "route to unknown team": (
        changed("routes", 1, team="vuggestuen"), ["route 'children 0-5", "key 'team'", "'vuggestuen'", "teams:"]
    ),
    "district to unknown team": (
        changed("routes", 2, team_by_district={"Nord": "familie-midt"}), ["key 'team_by_district'", "'familie-midt'"]
    ),
    "two targets": (changed("routes", 1, team_from="case_team"), ["route 'children 0-5", "exactly one of"]),
    "no target": (changed("routes", 1, team=...), ["route 'children 0-5", "exactly one of"]),
    "team from a number column": (changed("routes", 0, team_from="score"), ["key 'team_from'", "'score'", "allowed"]),
    "unparseable when": (changed("routes", 1, when="age_years <="), ["route 'children 0-5", "key 'when'"]),
    "when on unknown column": (changed("routes", 1, when="shoe_size < 30"), ["key 'when'", "shoe_size"]),
    "unknown route key": (changed("routes", 1, priority=1), ["route 'children 0-5", "'priority'", "allowed"]),
}


@pytest.mark.parametrize(("data", "expected"), BAD.values(), ids=BAD.keys())
def test_bad_table_is_refused_with_file_item_and_key(tmp_path, data, expected):
    write(tmp_path, data)
    with pytest.raises(RoutingError) as error:
        load_routing_table(tmp_path / "teams.yaml")
    message = str(error.value)
    assert message.startswith("teams.yaml"), message
    for part in expected:
        assert part in message, message


def test_key_written_twice_is_refused(tmp_path):
    text = TEAMS_FILE.read_text(encoding="utf-8").replace("    weekly_capacity: 12\n", "    weekly_capacity: 12\n    weekly_capacity: 99\n")
    (tmp_path / "teams.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(RoutingError, match="weekly_capacity' appears twice"):
        load_routing_table(tmp_path / "teams.yaml")


def test_any_edit_changes_the_table_version(tmp_path):
    path = write(tmp_path, changed("teams", 0, weekly_capacity=13))
    assert load_routing_table(path).version != load_routing_table().version
