import pytest

from tidlig.settings import DEFAULTS_FILE, ConfigError, load_config


def test_the_embedded_defaults_load():
    assert load_config().model.horizon_days == 365


def test_errors_name_the_section_and_the_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(DEFAULTS_FILE.read_text().replace("max_invalid_share: 0.2", "max_invalid_share: 7").replace("seed: 7", "seed: 7\n  colour: blue"))
    with pytest.raises(ConfigError) as err:
        load_config(bad)
    assert "section 'validate', key 'max_invalid_share'" in str(err.value)
    assert "section 'synth', key 'colour'" in str(err.value)


def test_every_config_key_is_commented():
    for line in DEFAULTS_FILE.read_text().splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#") and not stripped.startswith("- ") and not stripped.endswith(":"):
            assert "#" in line, f"config key without a comment: {line!r}"
