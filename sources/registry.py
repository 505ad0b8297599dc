"""The source registry: one auditable description per register, loaded from registry.yaml."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REGISTRY_FILE = Path(__file__).with_name("registry.yaml")
COLUMN_TYPES = ("str", "date", "float", "int")
_SOURCE_KEYS = {
    "title", "title_da", "sector", "owner", "legal_basis", "retention_days", "file",
    "keys", "event_date", "known_date", "columns",
}
_OPTIONAL_SOURCE_KEYS = {"version", "keep_real_id", "delivery"}
_DELIVERY_KEYS = {"max_row_drop", "count_file", "max_age_days"}
_COLUMN_KEYS = {"type", "personal", "person_id", "nullable", "values", "pattern", "min", "max", "references"}


class RegistryError(ValueError):
    """The registry file is wrong; the message names the source and the key."""


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    personal: bool = False
    person_id: bool = False
    nullable: bool = False
    values: tuple[str, ...] | None = None
    pattern: str | None = None
    min: float | None = None
    max: float | None = None
    # "source.column" whose values this column must be one of (e.g. a person in the population).
    references: str | None = None


@dataclass(frozen=True)
class Delivery:
    """What a complete, current extract of the source looks like; each check is off when not declared."""

    # Fewer rows than the last accepted delivery by more than this share: the extract was cut short.
    max_row_drop: float | None = None
    # The register sends NAME.count (its number of data rows) beside every file; without one the run stops.
    count_file: bool = False
    # The newest event date may be at most this many days before the as-of date.
    max_age_days: int | None = None


@dataclass(frozen=True)
class Source:
    name: str
    title: str
    sector: str
    owner: str
    legal_basis: str
    retention_days: int
    file: str
    keys: tuple[str, ...]
    event_date: str
    known_date: str
    columns: tuple[Column, ...]
    # Column numbering corrections: a row with a higher version supersedes the row with the same keys.
    version: str | None = None
    # The real CPR number is kept (encrypted store, caseworker view) only where a caseworker may need it.
    keep_real_id: bool = False
    title_da: str = ""  # the registry file requires it; `title` is the English one
    delivery: Delivery = Delivery()

    def title_in(self, language: str) -> str:
        """The register's title in "da" or "en"."""
        return self.title_da if language == "da" and self.title_da else self.title

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def person_id_columns(self) -> list[str]:
        return [c.name for c in self.columns if c.person_id]

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)


def _column(source: str, name: str, spec: Any) -> Column:
    where = f"source '{source}', column '{name}'"
    if not isinstance(spec, dict):
        raise RegistryError(f"{where}: expected a mapping like {{type: str}}, got {spec!r}")
    unknown = set(spec) - _COLUMN_KEYS
    if unknown:
        raise RegistryError(f"{where}: unknown key(s) {sorted(unknown)}; allowed: {sorted(_COLUMN_KEYS)}")
    if spec.get("type") not in COLUMN_TYPES:
        raise RegistryError(f"{where}, key 'type': {spec.get('type')!r} is not one of {list(COLUMN_TYPES)}")
    values = spec.get("values")
    return Column(
        name=name,
        type=spec["type"],
        personal=bool(spec.get("personal", False)),
        person_id=bool(spec.get("person_id", False)),
        nullable=bool(spec.get("nullable", False)),
        values=tuple(str(v) for v in values) if values is not None else None,
        pattern=spec.get("pattern"),
        min=spec.get("min"),
        max=spec.get("max"),
        references=spec.get("references"),
    )


def _delivery(source: str, spec: Any) -> Delivery:
    if spec is None:
        return Delivery()
    if not isinstance(spec, dict):
        raise RegistryError(f"source '{source}', key 'delivery': expected a mapping like {{max_row_drop: 0.1}}, got {spec!r}")
    unknown = set(spec) - _DELIVERY_KEYS
    if unknown:
        raise RegistryError(f"source '{source}', key 'delivery': unknown key(s) {sorted(unknown)}; allowed: {sorted(_DELIVERY_KEYS)}")
    drop, count, age = spec.get("max_row_drop"), spec.get("count_file", False), spec.get("max_age_days")
    if drop is not None and (isinstance(drop, bool) or not isinstance(drop, (int, float)) or not 0 <= drop < 1):
        raise RegistryError(f"source '{source}', key 'delivery.max_row_drop': give a share from 0 up to (not including) 1, such as 0.1, got {drop!r}")
    if not isinstance(count, bool):
        raise RegistryError(f"source '{source}', key 'delivery.count_file': give true or false, got {count!r}")
    if age is not None and (isinstance(age, bool) or not isinstance(age, int) or age < 1):
        raise RegistryError(f"source '{source}', key 'delivery.max_age_days': give a whole number of days, at least 1, got {age!r}")
    return Delivery(max_row_drop=None if drop is None else float(drop), count_file=count, max_age_days=age)


def _source(name: str, spec: Any) -> Source:
    if not isinstance(spec, dict):
        raise RegistryError(f"source '{name}': expected a mapping of keys, got {spec!r}")
    missing = _SOURCE_KEYS - set(spec)
    if missing:
        raise RegistryError(f"source '{name}': missing key(s) {sorted(missing)}")
    unknown = set(spec) - _SOURCE_KEYS - _OPTIONAL_SOURCE_KEYS
    if unknown:
        allowed = sorted(_SOURCE_KEYS | _OPTIONAL_SOURCE_KEYS)
        raise RegistryError(f"source '{name}': unknown key(s) {sorted(unknown)}; allowed: {allowed}")
    for key, language in (("title", "English"), ("title_da", "Danish")):
        if not isinstance(spec[key], str) or not spec[key].strip():
            raise RegistryError(
                f"source '{name}', key '{key}': give the register's title in {language} as plain text, got {spec[key]!r}"
            )
    if not str(spec["legal_basis"]).strip():
        raise RegistryError(f"source '{name}', key 'legal_basis': every source needs a legal basis")
    columns = tuple(_column(name, col, col_spec) for col, col_spec in spec["columns"].items())
    names = {c.name for c in columns}
    for key in ("event_date", "known_date"):
        if spec[key] not in names:
            raise RegistryError(f"source '{name}', key '{key}': column '{spec[key]}' is not in columns")
    for key in spec["keys"]:
        if key not in names:
            raise RegistryError(f"source '{name}', key 'keys': column '{key}' is not in columns")
    version = spec.get("version")
    if version is not None and (version not in names or next(c for c in columns if c.name == version).type != "int"):
        raise RegistryError(f"source '{name}', key 'version': '{version}' must name an int column")
    return Source(
        name=name,
        title=spec["title"].strip(),
        title_da=spec["title_da"].strip(),
        sector=spec["sector"],
        owner=spec["owner"],
        legal_basis=spec["legal_basis"],
        retention_days=int(spec["retention_days"]),
        file=spec["file"],
        keys=tuple(spec["keys"]),
        event_date=spec["event_date"],
        known_date=spec["known_date"],
        columns=columns,
        version=version,
        keep_real_id=bool(spec.get("keep_real_id", False)),
        delivery=_delivery(name, spec.get("delivery")),
    )


def load_registry(path: Path = REGISTRY_FILE) -> dict[str, Source]:
    """Read and check the registry; raises RegistryError naming the source and key at fault."""
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(raw, dict) or not raw:
        raise RegistryError(f"{path}: expected a mapping of source name -> description")
    sources = {name: _source(name, spec) for name, spec in raw.items()}
    for source in sources.values():
        for column in source.columns:
            if column.references is None:
                continue
            target, _, target_column = column.references.partition(".")
            if target not in sources or target_column not in sources[target].column_names:
                raise RegistryError(
                    f"source '{source.name}', column '{column.name}', key 'references': "
                    f"'{column.references}' is not a registered source.column"
                )
    return sources
