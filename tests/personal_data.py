"""A scanner for personal data from raw extracts in every place Tidlig and Prefect write.

It takes the values of the registry's personal columns (CPR numbers, birth dates, addresses,
household ids, names where a register has them) and looks for them in files (text, binary,
base64-encoded pickles such as Prefect's stored results) and in SQLite databases cell by cell.
Values that also occur in another register's non-personal columns (a child's birth date that is
also someone's notification date) cannot be told apart from those and are left out.
"""

from __future__ import annotations

import base64
import binascii
import re
import sqlite3
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from sources.registry import Source

# A CPR number in any spelling: DDMMYY, then nothing or a separator, then SSSS.
_CPR_BYTES = re.compile(rb"(?<![0-9])([0-9]{6})(?:-|\xe2\x80[\x90-\x94]|\xc2\xa0| |/|\.)?([0-9]{4})(?![0-9])")
_BASE64_RUN = re.compile(rb"[A-Za-z0-9+/=\r\n]{200,}")
_SQLITE = b"SQLite format 3\x00"


@dataclass(frozen=True)
class Found:
    """Distinct personal values found in one place, by kind (cpr, birth_date, address, ...)."""

    place: str
    values: dict[str, set[str]] = field(default_factory=dict)

    def count(self) -> int:
        return sum(len(v) for v in self.values.values())

    def summary(self) -> str:
        kinds = ", ".join(f"{len(v)} {kind}" for kind, v in sorted(self.values.items()) if v)
        return f"{self.place}: {kinds or 'none'}"


class PersonalData:
    """The personal values of a set of raw extracts, and where they turn up."""

    def __init__(self, extracts: Mapping[str, pl.DataFrame], registry: Mapping[str, Source]):
        by_kind: dict[str, set[str]] = {}
        plain: dict[str, set[str]] = {}  # source -> its non-personal values
        for name, frame in extracts.items():
            source = registry[name]
            for column in source.columns:
                values = {v for v in _texts(frame, column.name) if v}
                if not column.personal:
                    plain.setdefault(name, set()).update(values)
                elif not column.values:  # a category (origin group) is shared by many: not searchable
                    kind = "cpr" if column.person_id else column.name
                    by_kind.setdefault(kind, set()).update(v for v in values if len(v) >= 6)
        for kind, values in by_kind.items():
            if kind != "cpr":
                shared = set().union(*(v for s, v in plain.items() if s not in _sources_with(extracts, registry, kind)))
                by_kind[kind] = values - shared
        self.values = by_kind
        self._text_kinds = {k: v for k, v in by_kind.items() if k != "cpr"}
        self._patterns = {
            kind: re.compile(b"|".join(re.escape(v.encode()) for v in sorted(values, key=len, reverse=True)))
            for kind, values in self._text_kinds.items() if values
        }

    def in_bytes(self, data: bytes) -> dict[str, set[str]]:
        """Personal values in raw bytes, and in any base64 blob among them (decoded)."""
        found: dict[str, set[str]] = {}
        for chunk in (data, *_decoded_base64(data)):
            for match in _CPR_BYTES.finditer(chunk):
                cpr = f"{match[1].decode()}-{match[2].decode()}"
                if cpr in self.values.get("cpr", ()):
                    found.setdefault("cpr", set()).add(cpr)
            for kind, pattern in self._patterns.items():
                hits = {m.decode(errors="replace") for m in pattern.findall(chunk)}
                if hits:
                    found.setdefault(kind, set()).update(hits)
        return found

    def in_text(self, text: str) -> dict[str, set[str]]:
        return self.in_bytes(text.encode())

    def in_files(self, place: str, paths: Iterable[Path]) -> Found:
        """Every file given, read as bytes; SQLite databases also cell by cell (their text may be base64)."""
        result = Found(place)
        for path in paths:
            if not path.is_file():
                continue
            data = path.read_bytes()
            _merge(result.values, self.in_bytes(data))
            if data.startswith(_SQLITE):
                _merge(result.values, self.in_sqlite(path).values)
        return result

    def in_tree(self, place: str, root: Path) -> Found:
        return self.in_files(place, sorted(Path(root).rglob("*")))

    def in_sqlite(self, path: Path, place: str | None = None, tables: Iterable[str] | None = None) -> Found:
        """Every cell of the database's tables (or of the tables named), text and blobs."""
        result = Found(place or path.name)
        connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            names = list(tables) if tables is not None else [
                row[0] for row in connection.execute("select name from sqlite_master where type = 'table'")
            ]
            for table in names:
                for row in connection.execute(f'select * from "{table}"'):
                    for cell in row:
                        if isinstance(cell, str):
                            _merge(result.values, self.in_text(cell))
                        elif isinstance(cell, bytes):
                            _merge(result.values, self.in_bytes(cell))
        finally:
            connection.close()
        return result


def readable_by_others(root: Path) -> list[str]:
    """Files and folders under root that another user of the machine could read or enter."""
    return [
        f"{path} ({stat.filemode(path.stat().st_mode)})"
        for path in [Path(root), *sorted(Path(root).rglob("*"))]
        if not path.is_symlink() and path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO)
    ]


def _texts(frame: pl.DataFrame, column: str) -> set[str]:
    if column not in frame.columns:
        return set()
    series = frame.get_column(column).drop_nulls()
    return set(series.cast(pl.String).to_list())


def _sources_with(extracts: Mapping[str, pl.DataFrame], registry: Mapping[str, Source], kind: str) -> set[str]:
    return {name for name in extracts if any(c.name == kind and c.personal for c in registry[name].columns)}


def _decoded_base64(data: bytes) -> list[bytes]:
    decoded = []
    for run in _BASE64_RUN.findall(data):
        try:
            decoded.append(base64.b64decode(re.sub(rb"\s", b"", run), validate=False))
        except (binascii.Error, ValueError):
            continue
    return decoded


def _merge(into: dict[str, set[str]], found: Mapping[str, set[str]]) -> None:
    for kind, values in found.items():
        into.setdefault(kind, set()).update(values)


# What TIDLIG_HOME holds besides the places scanned: the raw extracts themselves and the synthetic
# municipality's hidden truth (both personal by design), and the places scanned one by one.
NOT_SCANNED_AS_OTHER = ("extracts", "ground_truth.parquet", "synth_mess.json", "tidlig.db", "mlflow.db", "mlartifacts", "gx")


def scan_everywhere(data: PersonalData, home: Path, *, logs: Iterable[Path] = (), pages: Mapping[str, str] = {}) -> list[Found]:
    """Every place Tidlig and Prefect write: Prefect's stored results and database, MLflow, Data Docs,
    the casework store's quarantine and audit log, the rest of the store and TIDLIG_HOME, logs and pages."""
    from prefect.settings import get_current_settings

    prefect = get_current_settings()
    url = prefect.server.database.connection_url
    database = Path(str(getattr(url, "get_secret_value", lambda: url)()).split("///", 1)[1])
    store = home / "tidlig.db"
    found = [
        data.in_tree("Prefect results", Path(prefect.results.local_storage_path).expanduser()),
        data.in_files("Prefect database", [database, database.with_name(database.name + "-wal")]),
        data.in_files("MLflow", [home / "mlflow.db", *sorted((home / "mlartifacts").rglob("*"))]),
        data.in_tree("Data Docs", home / "gx"),
        data.in_sqlite(store, "quarantine", ["quarantine"]),
        data.in_sqlite(store, "audit log", ["audit_events"]),
        # The store's file as bytes: deleted rows linger in free pages until the database is vacuumed.
        data.in_files("casework store and other files in TIDLIG_HOME", [
            store, store.with_name("tidlig.db-wal"),
            *(p for p in sorted(home.rglob("*")) if not any(p.relative_to(home).parts[0] == n for n in NOT_SCANNED_AS_OTHER)),
        ]),
        data.in_files("logs", logs),
    ]
    web = Found("web pages")
    for page in pages.values():
        _merge(web.values, data.in_text(page))
    return [*found, web]
