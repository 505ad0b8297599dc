"""read_extract from a PostgreSQL table: the same Extract as from a file, text or typed columns, clear errors."""

from __future__ import annotations

from datetime import date

import polars as pl
import pytest
import sqlalchemy as sa

from sources.readers import ExtractError, read_extract
from sources.registry import load_registry

pytestmark = pytest.mark.postgres
SOURCE = load_registry()["school_absence"]


def test_a_text_table_reads_like_a_csv_with_rows_numbered_by_key(extracts_db):
    url, engine = extracts_db
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE school_absence (known_date text, person_id text, event_date text, absence_pct text, pupil_name text)"))
        conn.execute(sa.text("INSERT INTO school_absence VALUES "
                             "('03-01-2024', '020290-2345', '01-01-2024', '12,5', 'Jens'), "
                             "('2024-01-03', '010190-1234', '2024-01-01', 'lots', 'Mette')"))
    extract = read_extract(url, SOURCE)
    assert extract.source == "school_absence" and extract.path.name == "school_absence"
    assert extract.frame.columns == ["row_number", *SOURCE.column_names]
    assert extract.frame.schema["row_number"] == pl.Int64
    assert extract.frame["row_number"].to_list() == [1, 2]
    assert extract.frame["person_id"].to_list() == ["010190-1234", "020290-2345"], "ordered by the key"
    assert extract.frame["absence_pct"].to_list() == ["lots", "12,5"]
    assert extract.frame["version"].to_list() == [1, 1], "no version column: every row is a first version"
    assert extract.ignored_columns == ("pupil_name",)


def test_a_typed_table_validates_like_parquet(extracts_db, tmp_path):
    from validate.context import gx_context
    from validate.contract import validate_extract

    url, engine = extracts_db
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE school_absence (person_id varchar(11), event_date date, absence_pct numeric(5,2), known_date date, version integer)"))
        conn.execute(sa.text("INSERT INTO school_absence VALUES ('010190-1234', '2024-01-01', 12.5, '2024-01-03', 1), "
                             "('020290-2345', '2024-01-08', 140, '2024-01-09', 1)"))
    extract = read_extract(url, SOURCE)
    assert extract.frame.schema["event_date"] == pl.Date and extract.frame.schema["absence_pct"] == pl.Float64
    validation = validate_extract(extract, SOURCE, context=gx_context(tmp_path / "home"), today=date(2025, 6, 1), max_invalid_share=1.0)
    assert validation.valid["absence_pct"].to_list() == [12.5]
    assert validation.quarantine["row_number"].to_list() == [2]
    assert validation.quarantine["file"].to_list() == ["school_absence"]


def test_a_missing_table_or_column_is_named_with_what_to_do(extracts_db):
    url, engine = extracts_db
    with pytest.raises(ExtractError, match="no table 'school_absence'.*registry.yaml"):
        read_extract(url, SOURCE)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE school_absence (person_id text, event_dato text, absence_pct text, known_date text)"))
    with pytest.raises(ExtractError, match=r"missing column\(s\) event_date \(renamed to 'event_dato'\?\)"):
        read_extract(url, SOURCE)
    with engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE school_absence RENAME COLUMN event_dato TO event_date"))
    with pytest.raises(ExtractError, match="has no rows"):
        read_extract(url, SOURCE)


def test_an_unreachable_server_is_an_io_error_worth_a_retry():
    with pytest.raises(OSError, match="cannot read from the extracts database"):
        read_extract("postgresql+psycopg://nobody@127.0.0.1:9/none?connect_timeout=2", SOURCE)
