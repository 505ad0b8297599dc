from typer.testing import CliRunner

from features.catalogue import CATALOGUE
from tidlig.cli import app


def test_features_describe_lists_every_feature_with_its_source_window_and_reason():
    result = CliRunner().invoke(app, ["features", "describe"])
    assert result.exit_code == 0, result.output
    for feature in CATALOGUE:
        assert feature.name in result.output and feature.why in result.output
    assert "the last 90 days" in result.output and "legal basis" in result.output
