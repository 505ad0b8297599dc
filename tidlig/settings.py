"""Settings: where data lives (environment) and how the pipeline runs (a validated config file)."""

from __future__ import annotations

import functools
import os
import stat
from datetime import date
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

DEFAULTS_FILE = Path(__file__).with_name("defaults.yaml")


class ConfigError(ValueError):
    """The config file is wrong; the message names the section and the key."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Synth(_Section):
    persons: int = Field(gt=0)
    seed: int
    start: date
    end: date


class Sources(_Section):
    extracts: Path | None = None
    database: str | None = None

    @field_validator("database")
    @classmethod
    def _database_url(cls, url: str | None) -> str | None:
        from sqlalchemy.engine import make_url

        if url is None:
            return None
        if not url.startswith("postgresql+psycopg://"):
            raise ValueError(f"{url.split('://')[0]}:// is not supported; give a postgresql+psycopg://user@host/database URL")
        if make_url(url).password is not None:
            # Config files get copied and shown; libpq reads the password from the environment or its own file.
            raise ValueError("the URL holds a password; remove it and set PGPASSWORD or use ~/.pgpass instead")
        return url

    @model_validator(mode="after")
    def _one_place(self) -> Sources:
        if self.database and self.extracts:
            raise ValueError("extracts (a folder) and database are both set; set the one the extracts are read from")
        return self


class Validate(_Section):
    max_invalid_share: float = Field(ge=0, le=1)


class Features(_Section):
    as_of: date


class Model(_Section):
    name: str
    training_as_of: list[date] = Field(min_length=2)
    horizon_days: int = Field(gt=0)
    retrain_quarters: int = Field(ge=2)
    approval_timeout_hours: float = Field(gt=0)


class Rules(_Section):
    folder: Path | None = None


class Routing(_Section):
    table: Path | None = None


class Ranking(_Section):
    risk_weight: float = Field(ge=0)
    urgency: dict[int, float]

    @field_validator("urgency")
    @classmethod
    def _every_priority(cls, urgency: dict[int, float]) -> dict[int, float]:
        from rules.engine import PRIORITIES

        if set(urgency) != set(PRIORITIES):
            raise ValueError(f"give a value for each rule priority {list(PRIORITIES)} and no other, got {sorted(urgency)}")
        if any(value < 0 for value in urgency.values()):
            raise ValueError(f"values must be 0 or more, got {urgency}")
        return urgency

    def policy(self):
        """The ranking policy routing applies."""
        from routing.route import RankingPolicy

        return RankingPolicy(risk_weight=self.risk_weight, urgency=dict(self.urgency))


class Config(_Section):
    synth: Synth
    sources: Sources
    validate_: Validate = Field(alias="validate")
    features: Features
    model: Model
    rules: Rules
    routing: Routing
    ranking: Ranking


def load_config(path: Path | None = None) -> Config:
    """Read a config file (default: TIDLIG_CONFIG, else the embedded defaults) and check every section and key."""
    # Scheduled runs get no --config: the environment names the operator's file for every process.
    named_by = "--config" if path else "TIDLIG_CONFIG"
    path = path or os.environ.get("TIDLIG_CONFIG") or DEFAULTS_FILE
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {path} (from {named_by}) does not exist; name an existing file or leave {named_by} out") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
    try:
        return Config.model_validate(raw or {})
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"])
            section, _, key = where.partition(".")
            problems.append(f"section '{section}', key '{key or '(section)'}': {err['msg']}")
        raise ConfigError(f"config file {path}:\n  " + "\n  ".join(problems)) from None


def home() -> Path:
    """Folder for extracts, the SQLite store, MLflow and Data Docs (TIDLIG_HOME, default ./.tidlig); private to the service user."""
    folder = Path(os.environ.get("TIDLIG_HOME", ".tidlig")).resolve()
    _make_private(folder, Path(os.environ.get("PREFECT_HOME", "~/.prefect")).expanduser().resolve())
    return folder


@functools.cache
def _make_private(*folders: Path) -> None:
    """From now on files this process writes are readable by the service user only, and so is what
    these folders already hold (Tidlig's home: extracts, store, MLflow, Data Docs; Prefect's: its
    database and stored results). Once per process: they hold personal data and copies of it."""
    os.umask(0o077)
    for folder in folders:
        if not folder.is_dir():
            continue
        for path in (folder, *folder.rglob("*")):
            mode = path.lstat().st_mode
            if not stat.S_ISLNK(mode) and mode & 0o077:
                path.chmod(stat.S_IMODE(mode) & 0o700)


def database_url() -> str:
    """The casework store and audit log (TIDLIG_DATABASE_URL, default SQLite in TIDLIG_HOME)."""
    return os.environ.get("TIDLIG_DATABASE_URL") or f"sqlite:///{home() / 'tidlig.db'}"


def mlflow_tracking_uri() -> str:
    """The MLflow tracking store (MLFLOW_TRACKING_URI, default SQLite in TIDLIG_HOME)."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{home() / 'mlflow.db'}"


def extracts_dir(config: Config) -> Path:
    """The folder of source extracts the nightly run reads."""
    return config.sources.extracts or home() / "extracts"


def extracts_location(config: Config) -> Path | str:
    """Where extracts are read from: the configured database URL (one table per source), else the folder."""
    return config.sources.database or extracts_dir(config)
