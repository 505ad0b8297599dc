from typer.testing import CliRunner

from features.catalogue import CATALOGUE
from tidlig.cli import app


def test_features_describe_lists_every_feature_with_its_source_window_and_reason():
    result = CliRunner().invoke(app, ["features", "describe"])
    assert result.exit_code == 0, result.output
    for feature in CATALOGUE:
        assert feature.name in result.output and feature.why in result.output and feature.label["da"] in result.output
    assert "the last 90 days" in result.output and "legal basis" in result.output


def test_every_feature_has_a_short_label_in_danish_and_english():
    # Pages list a flag's values by these labels; a feature without one would show its column name.
    unlabelled = [f.name for f in CATALOGUE if not (f.label.get("da", "").strip() and f.label.get("en", "").strip())]
    assert unlabelled == []
