"""Every way a command can go wrong ends in one clear message and a non-zero exit, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from casework.accounts import Accounts
from casework.store import Store
from routing.flags import FlagDraft, Reason
from tidlig.cli import app
from web.app import routing_teams

REPO = Path(__file__).parents[2]
AS_OF = date(2026, 11, 1)


@pytest.fixture
def store(tidlig_home):
    """The default store of TIDLIG_HOME with two flags of familie-nord (one queued) and staff accounts."""
    from tidlig import settings

    store = Store.from_url(settings.database_url())
    store.create_schema()
    store.start_run("run-1", AS_OF, "nightly")
    reason = Reason(rule_id="underretninger", title_da="Gentagne underretninger", title_en="Repeated notifications",
                    text_da="3 underretninger", text_en="3 notifications", priority=2, values={"count": 3})
    store.save_flags("run-1", [
        FlagDraft(as_of=AS_OF, person=person, target="child", team="familie-nord", priority=2, rank=rank, queued=queued,
                  score=None, probability=None, model_version=None, rules_version="2026.11", reasons=(reason,))
        for person, rank, queued in (("P1", 1, False), ("P2", 2, True))
    ])
    accounts = Accounts(store.engine)
    accounts.sync_teams(routing_teams())
    for username, role, team in (("mette", "caseworker", "familie-nord"), ("lars", "teamlead", "familie-nord"),
                                 ("sofie", "caseworker", "familie-syd"), ("anna", "auditor", None), ("jonas", "caseworker", "familie-nord")):
        accounts.add_user(username, username.title(), role, team, None, by="test-setup")
    accounts.set_active("jonas", False, by="test-setup")
    yield store
    store.close()


def tidlig(*args: str):
    # Wide enough that typer's boxed usage errors keep each message on one line.
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "300"})


def refused(result, *expected: str, code: int = 2) -> None:
    """The command stopped with the expected words in one message, the exit code, and no traceback."""
    assert result.exit_code == code, result.output
    # An exception that escaped the command would be here (and printed as a traceback by the real CLI).
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    for words in expected:
        assert words in result.output, result.output


def test_a_dead_database_url_says_which_database_and_what_to_check(tidlig_home, monkeypatch):
    monkeypatch.setenv("TIDLIG_DATABASE_URL", "postgresql+psycopg://tidlig:hemmelig@127.0.0.1:9/tidlig")
    for command in (["flags", "list"], ["flags", "show", "1"], ["audit", "verify"]):
        result = tidlig(*command)
        refused(result, f"tidlig {' '.join(command[:2])}: cannot use the database postgresql+psycopg://tidlig:***@127.0.0.1:9/tidlig",
                "TIDLIG_DATABASE_URL", "port 9 failed", "Check that the database server is running")
        assert "hemmelig" not in result.output


def test_a_database_url_that_is_no_url_or_no_place_is_named(tidlig_home, monkeypatch, tmp_path):
    monkeypatch.setenv("TIDLIG_DATABASE_URL", "postgres-please://somewhere")
    refused(tidlig("flags", "list"), "cannot use the database postgres-please://somewhere (TIDLIG_DATABASE_URL)")
    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv("TIDLIG_DATABASE_URL", f"sqlite:///{tmp_path / 'a-file' / 'tidlig.db'}")
    refused(tidlig("flags", "list"), f"cannot use {tmp_path / 'a-file'}")


def test_an_mlflow_server_that_does_not_answer_is_named(tidlig_home, monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    result = tidlig("models", "list", "--tracking-uri", "http://tidlig:hemmelig@127.0.0.1:9")
    refused(result, "tidlig models list: MLflow at http://***@127.0.0.1:9 (--tracking-uri or MLFLOW_TRACKING_URI) failed",
            "Connection refused", "Check that the tracking server is running")
    assert "hemmelig" not in result.output


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["flags", "list", "--as-of", "2026-13-01"], ["--as-of must be a date as YYYY-MM-DD, got '2026-13-01'"]),
        (["flags", "list", "--status", "bogus"], ["--status 'bogus' is no flag state; use one of: open, accepted"]),
        (["flags", "decide", "1", "defer", "--by", "mette", "--reason", "x", "--until", "2026-13-01"], ["--until must be a date"]),
        (["flags", "decide", "1", "dismiss", "--by", "mette", "--reason-code", "busy"], ["Invalid value for '--reason-code'", "'busy' is not one of", "'known_case', 'no_concern'"]),
        (["flags", "decide", "1", "accept", "--by", "mette", "--version", "two"], ["Invalid value for '--version'", "valid integer"]),
        (["flags", "decide", "1", "close", "--by", "mette"], ["Invalid value for 'decision'", "'close' is not one of 'accept', 'dismiss', 'defer'"]),
    ],
)
def test_a_bad_option_value_names_the_option_and_what_it_takes(store, args, expected):
    refused(tidlig(*args), *expected)


def test_an_unknown_team_is_named_with_the_teams_there_are(store):
    refused(tidlig("flags", "list", "--team", "nosuchteam"), "--team 'nosuchteam': there is no such team", "familie-nord, familie-oest")
    listed = tidlig("flags", "list", "--team", "familie-syd")
    assert listed.exit_code == 0 and "No flags match." in listed.output


def test_an_unknown_flag_is_named(store):
    refused(tidlig("flags", "show", "99", "--by", "mette"), "no flag with id 99")
    refused(tidlig("flags", "decide", "99", "accept", "--by", "mette"), "there is no flag #99", "tidlig flags list")


@pytest.mark.parametrize(
    ("by", "flag", "expected"),
    [
        ("Mette Rådgiver", 1, ["--by 'Mette Rådgiver' is not a staff account", "tidlig users add USERNAME --name 'FULL NAME' --role caseworker --team familie-nord"]),
        ("jonas", 1, ["--by 'jonas': the account is locked"]),
        ("anna", 1, ["--by 'anna' is a auditor; only caseworkers and team leads decide"]),
        ("sofie", 1, ["--by 'sofie' is in team familie-syd, but flag #1 belongs to team familie-nord"]),
        ("mette", 2, ["flag #2 waits in team familie-nord's queue beyond capacity; only the team lead"]),
    ],
)
def test_only_an_active_caseworker_or_lead_of_the_flags_team_decides(store, by, flag, expected):
    refused(tidlig("flags", "decide", str(flag), "accept", "--by", by), *expected)
    assert store.list_flags()[flag - 1].decisions == ()


def test_a_refused_decision_names_the_options_to_change(store):
    result = tidlig("flags", "decide", "1", "dismiss", "--by", "mette")
    refused(result, "--reason-code: to dismiss a flag, give a reason code; use one of: known_case, no_concern, data_error, moved, other",
            "--reason: to dismiss a flag, give a reason")
    refused(tidlig("flags", "decide", "1", "accept", "--by", "mette", "--reason-code", "moved"), "--reason-code: a reason code only goes with 'dismiss'")

    done = tidlig("flags", "decide", "1", "dismiss", "--by", "mette", "--reason-code", "known_case", "--reason", "Kendt af skolen")
    assert done.exit_code == 0, done.output
    assert store.list_flags()[0].decisions[0].reason == "known_case: Kendt af skolen"


def test_a_second_decision_is_refused_unless_it_names_the_version_it_saw(store):
    assert tidlig("flags", "decide", "1", "accept", "--by", "mette").exit_code == 0

    refused(tidlig("flags", "decide", "1", "dismiss", "--by", "lars", "--reason-code", "no_concern", "--reason", "Ingen bekymring"),
            "flag 1 was already decided by mette at ", "(accept); nothing was changed", "decide again with --version 2")
    refused(tidlig("flags", "decide", "1", "defer", "--by", "lars", "--reason", "Venter", "--until", str(date.today() + timedelta(days=9)), "--version", "1"),
            "already decided by mette")
    assert [d.by for d in store.list_flags()[0].decisions] == ["mette"]

    shown = tidlig("flags", "show", "1", "--by", "lars")
    assert "Version: 2 " in shown.output and "--version 2" in shown.output
    changed = tidlig("flags", "decide", "1", "dismiss", "--by", "lars", "--reason-code", "no_concern", "--reason", "Ingen bekymring", "--version", "2")
    assert changed.exit_code == 0, changed.output
    assert store.list_flags()[0].status == "dismissed"


def test_an_unexpected_fault_is_one_message_that_names_the_command(store, monkeypatch):
    def broken(*args, **kwargs):
        raise KeyError("rank")

    monkeypatch.setattr(Store, "list_flags", broken)
    refused(tidlig("flags", "list"), "tidlig flags list stopped on an unexpected KeyError: 'rank'", "This is a fault in Tidlig", code=1)


@pytest.mark.slow
def test_two_caseworkers_deciding_at_once_from_the_command_line_lose_nothing(store, tidlig_home):
    """Races `tidlig flags decide` processes on one flag: exactly one is recorded, the other is told who won."""
    env = {**os.environ, "TIDLIG_HOME": str(tidlig_home)}
    env.pop("TIDLIG_DATABASE_URL", None)
    store.save_flags("run-1", [
        FlagDraft(as_of=AS_OF, person=f"R{n}", target="child", team="familie-nord", priority=2, rank=10 + n, queued=False,
                  score=None, probability=None, model_version=None, rules_version="2026.11", reasons=store.list_flags()[0].reasons)
        for n in range(5)
    ])
    lost = 0
    for flag in [f for f in store.list_flags() if f.person.startswith("R")]:
        commands = [
            [sys.executable, "-m", "tidlig.cli", "flags", "decide", str(flag.id), "accept", "--by", "mette"],
            [sys.executable, "-m", "tidlig.cli", "flags", "decide", str(flag.id), "dismiss", "--by", "lars",
             "--reason-code", "no_concern", "--reason", "Ingen bekymring"],
        ]
        racing = [subprocess.Popen(c, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for c in commands]
        results = [(p.wait(timeout=120), *p.communicate()) for p in racing]
        won = [code for code, _, _ in results if code == 0]
        losers = [err for code, _, err in results if code != 0]
        assert all("already decided by" in err and "Traceback" not in err for err in losers), losers
        decided = store.get_flag(flag.id, viewer="test", purpose="check").decisions
        lost += len(won) - 1 + (len(decided) != 1)
    assert lost == 0
