"""Every command and every setting is documented: in its help text and in the README."""

from __future__ import annotations

import re
from pathlib import Path

import typer.main

from tidlig import settings
from tidlig.cli import app

README = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")


def _commands(group, prefix: tuple[str, ...] = ()):
    for name, command in group.commands.items():
        if hasattr(command, "commands"):
            yield from _commands(command, (*prefix, name))
        else:
            yield (*prefix, name), command


COMMANDS = list(_commands(typer.main.get_command(app)))


def test_there_are_commands():
    assert len(COMMANDS) >= 7


def test_every_command_and_option_has_help():
    for path, command in COMMANDS:
        assert (command.help or "").strip(), f"`tidlig {' '.join(path)}` has no help text"
        for param in command.params:
            if param.param_type_name == "option" and param.name != "help":
                assert (param.help or "").strip(), f"`tidlig {' '.join(path)}` option {param.opts} has no help"


def test_every_command_is_in_the_readme():
    for path, _ in COMMANDS:
        assert f"tidlig {' '.join(path)}" in README, f"`tidlig {' '.join(path)}` is missing from the README"


def test_every_environment_setting_is_in_the_readme():
    source = Path(settings.__file__).read_text(encoding="utf-8")
    for module in Path(settings.__file__).parents[1].glob("*/*.py"):
        source += module.read_text(encoding="utf-8")
    names = set(re.findall(r"""environ(?:\.get)?\(\s*["'](TIDLIG_[A-Z_]+)""", source))
    names |= set(re.findall(r"""KEY_ENV = ["'](TIDLIG_[A-Z_]+)""", source))
    assert {"TIDLIG_HOME", "TIDLIG_DATABASE_URL", "TIDLIG_PSEUDONYM_KEY"} <= names
    for name in names:
        assert f"`{name}`" in README, f"setting {name} is missing from the README"
