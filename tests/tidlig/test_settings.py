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


def test_extracts_come_from_a_folder_or_a_database_without_a_password(tmp_path):
    from tidlig.settings import extracts_location

    config = tmp_path / "db.yaml"
    text = DEFAULTS_FILE.read_text()
    config.write_text(text.replace("  database: null", "  database: postgresql+psycopg://tidlig@db.kommune.dk/extracts"))
    assert extracts_location(load_config(config)) == "postgresql+psycopg://tidlig@db.kommune.dk/extracts"
    assert str(extracts_location(load_config())).endswith("extracts")
    config.write_text(text.replace("  database: null", "  database: postgresql+psycopg://tidlig:secret@db/extracts"))
    with pytest.raises(ConfigError, match="section 'sources', key 'database'.*PGPASSWORD"):
        load_config(config)
    config.write_text(text.replace("  database: null", "  database: postgresql+psycopg://db/x").replace("  extracts: null", "  extracts: /data"))
    with pytest.raises(ConfigError, match="both set"):
        load_config(config)


def test_tidlig_config_names_the_file_when_no_config_is_passed(tmp_path, monkeypatch):
    config = tmp_path / "prod.yaml"
    config.write_text(DEFAULTS_FILE.read_text().replace("  database: null", "  database: postgresql+psycopg://tidlig@db/extracts"))
    monkeypatch.setenv("TIDLIG_CONFIG", str(config))
    assert load_config().sources.database == "postgresql+psycopg://tidlig@db/extracts"
    assert load_config(DEFAULTS_FILE).sources.database is None, "--config wins over the environment"
    monkeypatch.setenv("TIDLIG_CONFIG", str(tmp_path / "missing.yaml"))
    with pytest.raises(ConfigError, match="missing.yaml \\(from TIDLIG_CONFIG\\) does not exist"):
        load_config()


def test_the_home_and_prefects_are_private_to_the_service_user(tmp_path, monkeypatch):
    import stat

    from tidlig import settings

    home, prefect = tmp_path / "home", tmp_path / "prefect"
    (home / "extracts").mkdir(parents=True)
    (prefect / "storage").mkdir(parents=True)
    for path in (home / "extracts" / "population.parquet", prefect / "storage" / "a-stored-result"):
        path.write_bytes(b"rows")
        path.chmod(0o644)
    for folder in (home, home / "extracts", prefect, prefect / "storage"):
        folder.chmod(0o755)
    monkeypatch.setenv("TIDLIG_HOME", str(home))
    monkeypatch.setenv("PREFECT_HOME", str(prefect))

    assert settings.home() == home
    (home / "tidlig.db").write_bytes(b"written after")

    modes = {p.relative_to(tmp_path).as_posix(): stat.S_IMODE(p.stat().st_mode) for p in tmp_path.rglob("*")}
    assert modes == {
        "home": 0o700, "home/extracts": 0o700, "home/extracts/population.parquet": 0o600, "home/tidlig.db": 0o600,
        "prefect": 0o700, "prefect/storage": 0o700, "prefect/storage/a-stored-result": 0o600,
    }


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("  risk_weight: 1.0", "  risk_weight: -1", "section 'ranking', key 'risk_weight'"),
        ("    3: 0.0 ", "    4: 0.0 ", "section 'ranking', key 'urgency': Value error, give a value for each rule priority [1, 2, 3]"),
        ("    2: 0.02", "    2: -0.02", "section 'ranking', key 'urgency': Value error, values must be 0 or more"),
        ("    1: 0.05", "    1: high", "section 'ranking', key 'urgency.1'"),
    ],
)
def test_the_ranking_policy_is_checked_key_by_key(tmp_path, old, new, expected):
    bad = tmp_path / "bad.yaml"
    text = DEFAULTS_FILE.read_text()
    assert old in text
    bad.write_text(text.replace(old, new))
    with pytest.raises(ConfigError) as err:
        load_config(bad)
    assert expected in str(err.value)


def test_the_default_ranking_policy_weighs_risk_and_urgency():
    policy = load_config().ranking.policy()
    assert policy.risk_weight == 1.0 and policy.urgency == {1: 0.05, 2: 0.02, 3: 0.0}
