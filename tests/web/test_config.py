"""The pages show the rules and teams of the config the nightly run uses, not the shipped ones."""

from __future__ import annotations

import shutil

from rules.engine import RULES_DIR
from routing.table import TEAMS_FILE
from tidlig.settings import DEFAULTS_FILE
from web.app import app_from_environment


def test_the_app_shows_the_configs_own_rules_and_teams(database_url, tidlig_home, tmp_path, monkeypatch, web):
    rules = tmp_path / "our-rules"
    shutil.copytree(RULES_DIR, rules, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    children = rules / "children.yaml"
    children.write_text(children.read_text(encoding="utf-8").replace(
        "Forælder i misbrugsbehandling, og barnet viser tegn på mistrivsel",
        "Forælder i misbrugsbehandling, og barnet viser tegn på mistrivsel (kommunens egen)"), encoding="utf-8")
    teams = tmp_path / "our-teams.yaml"
    teams.write_text(TEAMS_FILE.read_text(encoding="utf-8").replace(
        "Familieafdelingen, distrikt Nord", "Børn og Familie Nord"), encoding="utf-8")
    config = tmp_path / "tidlig.yaml"
    config.write_text(DEFAULTS_FILE.read_text(encoding="utf-8")
                      .replace("  folder: null ", f"  folder: {rules} ").replace("  table: null ", f"  table: {teams} "), encoding="utf-8")
    monkeypatch.setenv("TIDLIG_CONFIG", str(config))
    monkeypatch.setenv("TIDLIG_DATABASE_URL", database_url)

    app = app_from_environment()

    names = {team.id: team.name for team in app.state.accounts.list_teams()}
    assert names["familie-nord"] == "Børn og Familie Nord"
    app.state.accounts.add_user("anna", "Anna Auditor", "auditor", None, web.PASSWORD, by="test-setup")
    page = web.logged_in(app, "anna").get("/rules")
    assert page.status_code == 200 and "(kommunens egen)" in page.text
    [(version, _, files)] = app.state.accounts.rule_versions()
    assert "(kommunens egen)" in files["children.yaml"]
