"""Fixtures for validation tests: registry sources, clean rows for any source shape, a shared GX context."""

from __future__ import annotations

import csv
from datetime import date, timedelta
from pathlib import Path
from typing import Callable

import pytest

from sources.readers import Extract, read_extract
from sources.registry import Source, load_registry


@pytest.fixture(scope="session")
def registry() -> dict[str, Source]:
    return load_registry()


def _clean_value(source: Source, name: str, i: int) -> str:
    column = source.column(name)
    event = date(2024, 1, 1) + timedelta(days=i % 300)
    if name == source.event_date:
        return event.isoformat()
    if name == source.known_date:
        return (event + timedelta(days=3)).isoformat()
    if name == source.version:
        return "1"
    if column.type == "date":
        return (date(1970, 1, 1) + timedelta(days=97 * i)).isoformat()
    if column.values:
        return column.values[i % len(column.values)]
    if column.pattern:  # every pattern in the registry is a CPR-shaped id, beginning with a real birth date
        year = 10 if name == "child_id" else 60  # parent and child are different people
        return f"{i % 28 + 1:02d}{i // 28 % 12 + 1:02d}{year}-{i % 10_000:04d}"
    if column.type in ("float", "int"):
        low, high = column.min or 0, column.max if column.max is not None else 1000
        return str(int(low + (i % int(high - low + 1))))
    return f"{name}-{i}"


@pytest.fixture(scope="session")
def clean_rows() -> Callable[[Source, int], list[dict[str, str]]]:
    """n rows that satisfy every rule of the source, keys unique."""
    def make(source: Source, n: int = 10) -> list[dict[str, str]]:
        return [{name: _clean_value(source, name, i) for name in source.column_names} for i in range(n)]
    return make


@pytest.fixture
def csv_extract(tmp_path: Path) -> Callable[[Source, list[dict]], Extract]:
    """Write rows as the source's CSV file and read it back like production does."""
    def make(source: Source, rows: list[dict], separator: str = ",") -> Extract:
        folder = tmp_path / "extracts"
        folder.mkdir(exist_ok=True)
        with (folder / f"{source.file}.csv").open("w", encoding="utf-8", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=source.column_names, delimiter=separator)
            writer.writeheader()
            writer.writerows(rows)
        return read_extract(folder, source)
    return make


@pytest.fixture(scope="session", autouse=True)
def _gx_imported() -> None:
    """Pay the seconds-long GX import once, in setup, so test timings show the tests themselves."""
    from validate.gx import import_gx

    import_gx()


@pytest.fixture(scope="module")
def gx_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tidlig-home")


@pytest.fixture(scope="module")
def context(gx_home: Path):
    """One file-mode context per module: creating suites again on every run is itself under test."""
    from validate.context import gx_context

    return gx_context(gx_home)
