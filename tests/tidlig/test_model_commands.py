"""`tidlig models evaluate` says what is missing instead of failing with a traceback."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from tidlig.cli import app

pytestmark = pytest.mark.slow  # MLflow makes its store on first use


def test_evaluate_without_a_champion_says_how_to_choose_a_version(tidlig_home):
    uri = f"sqlite:///{tidlig_home / 'mlflow.db'}"
    tidlig_home.mkdir(parents=True, exist_ok=True)
    result = CliRunner().invoke(app, ["models", "evaluate", "--tracking-uri", uri])
    assert result.exit_code == 2
    assert "has no champion; give --version" in result.output and "Traceback" not in result.output


def test_evaluate_an_unknown_version_names_it(tidlig_home):
    uri = f"sqlite:///{tidlig_home / 'mlflow.db'}"
    tidlig_home.mkdir(parents=True, exist_ok=True)
    result = CliRunner().invoke(app, ["models", "evaluate", "--version", "7", "--tracking-uri", uri])
    assert result.exit_code == 2 and "has no version '7'" in result.output
