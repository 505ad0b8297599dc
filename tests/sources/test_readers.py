"""read_extract: Parquet and CSV as delivered, row numbers, and one clear error per whole-file problem."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import polars as pl
import pytest

from sources.readers import ExtractError, read_extract
from sources.registry import load_registry

SOURCE = load_registry()["school_absence"]
HEADER = "person_id,event_date,absence_pct,known_date"
ROWS = ["010190-1234,2024-01-01,12.5,2024-01-03", "020290-2345,2024-01-08,0,2024-01-09"]


def write(folder: Path, text: str, name: str = "school_absence.csv", encoding: str = "utf-8") -> Path:
    path = folder / name
    path.write_bytes(text.encode(encoding))
    return path


def error(folder: Path) -> str:
    with pytest.raises(ExtractError) as caught:
        read_extract(folder, SOURCE)
    return str(caught.value)


def test_csv_is_read_as_text_with_one_based_row_numbers(tmp_path):
    path = write(tmp_path, "\n".join([HEADER, *ROWS]) + "\n")
    extract = read_extract(tmp_path, SOURCE)
    assert (extract.source, extract.path) == ("school_absence", path)
    assert extract.frame.columns == ["row_number", *SOURCE.column_names]
    assert extract.frame.schema["row_number"] == pl.Int64
    assert all(extract.frame.schema[name] == pl.String for name in SOURCE.column_names)
    # No version column delivered: every row is a first version.
    assert extract.frame.rows() == [(1, *ROWS[0].split(","), "1"), (2, *ROWS[1].split(","), "1")]


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig"])
@pytest.mark.parametrize("separator", [",", ";"])
def test_semicolons_and_byte_order_mark_are_accepted(tmp_path, separator, encoding):
    lines = [line.replace(",", separator) for line in [HEADER, *ROWS]]
    write(tmp_path, "\r\n".join(lines) + "\r\n", encoding=encoding)
    frame = read_extract(tmp_path, SOURCE).frame
    assert frame.columns[1] == "person_id"
    assert frame["absence_pct"].to_list() == ["12.5", "0"]


def test_columns_may_come_in_any_order_and_extra_ones_are_not_loaded(tmp_path):
    write(tmp_path, "known_date,name,absence_pct,event_date,person_id\n2024-01-03,Jens Hansen,12.5,2024-01-01,010190-1234\n")
    extract = read_extract(tmp_path, SOURCE)
    assert extract.frame.columns == ["row_number", *SOURCE.column_names]
    assert extract.ignored_columns == ("name",)


def test_bad_values_and_short_rows_stay_rows_for_quarantine(tmp_path):
    write(tmp_path, f"{HEADER}\n010190-1234,31-02-2024,lots\n\n{ROWS[1]}\n\n\n")
    frame = read_extract(tmp_path, SOURCE).frame
    assert frame.rows() == [
        (1, "010190-1234", "31-02-2024", "lots", None, "1"),
        (2, None, None, None, None, "1"),  # a blank line inside the file is a row, so it is reported
        (3, *ROWS[1].split(","), "1"),
    ]


def test_parquet_keeps_its_types(tmp_path):
    frame = pl.DataFrame({
        "person_id": ["010190-1234"], "event_date": [date(2024, 1, 1)], "absence_pct": [12.5], "known_date": [date(2024, 1, 3)],
        "version": [2],
    })
    frame.write_parquet(tmp_path / "school_absence.parquet")
    extract = read_extract(tmp_path, SOURCE)
    assert extract.frame.drop("row_number").equals(frame)
    assert extract.frame["row_number"].to_list() == [1]


def test_missing_file_lists_what_the_folder_holds(tmp_path):
    write(tmp_path, HEADER, name="school_absense.csv")
    write(tmp_path, HEADER, name="benefits.csv")
    message = error(tmp_path)
    assert "school_absence.parquet or .csv" in message
    assert "benefits.csv, school_absense.csv" in message


def test_missing_folder(tmp_path):
    with pytest.raises(ExtractError, match="does not exist"):
        read_extract(tmp_path / "nowhere", SOURCE)


def test_both_formats_present_is_ambiguous(tmp_path):
    write(tmp_path, "\n".join([HEADER, *ROWS]))
    pl.read_csv(tmp_path / "school_absence.csv").write_parquet(tmp_path / "school_absence.parquet")
    assert "remove the stale one" in error(tmp_path)


@pytest.mark.parametrize("text", ["", "\ufeff", "\n\n"])
def test_empty_csv(tmp_path, text):
    write(tmp_path, text)
    message = error(tmp_path)
    assert "school_absence.csv" in message and "empty" in message


def test_empty_parquet_file(tmp_path):
    (tmp_path / "school_absence.parquet").write_bytes(b"")
    message = error(tmp_path)
    assert "school_absence.parquet" in message and "empty" in message


def test_header_without_rows(tmp_path):
    write(tmp_path, HEADER + "\n")
    message = error(tmp_path)
    assert "school_absence.csv" in message and "no data rows" in message


def test_parquet_without_rows(tmp_path):
    pl.DataFrame({name: [] for name in SOURCE.column_names}, schema={n: pl.String for n in SOURCE.column_names}).write_parquet(
        tmp_path / "school_absence.parquet"
    )
    assert "no data rows" in error(tmp_path)


def test_missing_column_is_named(tmp_path):
    write(tmp_path, "person_id,event_date,known_date\n010190-1234,2024-01-01,2024-01-03\n")
    message = error(tmp_path)
    assert "school_absence.csv" in message
    assert "missing column(s) absence_pct" in message
    assert "unexpected" not in message


def test_renamed_column_names_both_names(tmp_path):
    write(tmp_path, "person_id,event_date,absence_percent,known_date\n" + ROWS[0] + "\n")
    message = error(tmp_path)
    assert "missing column(s) absence_pct (renamed to 'absence_percent'?)" in message
    assert "unexpected column(s) seen: absence_percent" in message


def test_renamed_column_in_parquet(tmp_path):
    pl.DataFrame({"person_id": ["x"], "event_date": ["x"], "pct": ["x"], "known_date": ["x"]}).write_parquet(
        tmp_path / "school_absence.parquet"
    )
    message = error(tmp_path)
    assert "school_absence.parquet" in message and "absence_pct" in message and "pct" in message


def test_wrong_delimiter_gives_one_column(tmp_path):
    write(tmp_path, "\n".join(line.replace(",", "\t") for line in [HEADER, *ROWS]))
    message = error(tmp_path)
    assert "school_absence.csv" in message
    assert r"single column 'person_id\tevent_date\tabsence_pct\tknown_date'" in message
    assert "separated by ',' or ';'" in message


@pytest.mark.parametrize("encoding", ["cp1252", "latin-1", "utf-8-sig"])
def test_danish_exports_in_latin1_or_utf8_with_bom_are_read(tmp_path, encoding):
    lines = [HEADER.replace(",", ";"), "010190-1234;01-01-2024;12,5;03-01-2024 Ærø", "020290-2345;08-01-2024;0;09-01-2024 Søndergård"]
    write(tmp_path, "\r\n".join(lines) + "\r\n", encoding=encoding)
    frame = read_extract(tmp_path, SOURCE).frame
    assert frame["known_date"].to_list() == ["03-01-2024 Ærø", "09-01-2024 Søndergård"]
    assert frame["absence_pct"].to_list() == ["12,5", "0"]


def test_mixed_encodings_name_both_lines(tmp_path):
    text = f"{HEADER}\n{ROWS[0]} Ærø\n".encode("utf-8") + f"{ROWS[1]} Ærø\n".encode("cp1252")
    (tmp_path / "school_absence.csv").write_bytes(text)
    message = error(tmp_path)
    assert "school_absence.csv" in message and "mixed encodings: line 2 is UTF-8 but line 3 is not" in message
    assert "re-export the whole file in one encoding" in message


def test_row_with_too_many_fields_names_the_line(tmp_path):
    write(tmp_path, f"{HEADER}\n{ROWS[0]}\n{ROWS[1]},extra\n")
    message = error(tmp_path)
    assert "school_absence.csv" in message and "line 3 has 5 fields but the header has 4" in message


def test_duplicated_header_column(tmp_path):
    write(tmp_path, "person_id,event_date,absence_pct,known_date,absence_pct\n")
    message = error(tmp_path)
    assert "absence_pct appear more than once" in message


def test_damaged_parquet(tmp_path):
    (tmp_path / "school_absence.parquet").write_bytes(b"PAR1 this is not parquet")
    message = error(tmp_path)
    assert "school_absence.parquet" in message and "cannot be read as Parquet" in message


@pytest.mark.parametrize("name", ["school_absence.csv", "school_absence.parquet"])
def test_a_file_the_run_may_not_read_is_named_with_what_to_do(tmp_path, monkeypatch, name):
    path = write(tmp_path, "\n".join([HEADER, *ROWS]) + "\n", name=name)
    real = Path.read_bytes

    def refuse(self):
        # The tests may run as root, for whom file permissions do not hold: refuse as the OS would.
        if self == path:
            raise PermissionError(13, "Permission denied", str(self))
        return real(self)

    monkeypatch.setattr(Path, "read_bytes", refuse)
    message = error(tmp_path)
    assert name in message and "permission denied" in message and "read access" in message


def test_messages_never_quote_a_row(tmp_path):
    # Without a header the first row would be taken for column names and quoted back.
    write(tmp_path, "\n".join(ROWS) + "\n")
    message = error(tmp_path)
    assert "header line is missing" in message and "010190-1234" not in message
    write(tmp_path, f'{HEADER}\n{ROWS[0]}\n"{ROWS[1]}\n')
    message = error(tmp_path)
    assert "line 3" in message and "020290-2345" not in message


def test_the_registers_count_file_is_read_beside_the_extract(tmp_path):
    write(tmp_path, "\n".join([HEADER, *ROWS]) + "\n")
    assert read_extract(tmp_path, SOURCE).declared_rows is None
    (tmp_path / "school_absence.count").write_text("55091\n", encoding="ascii")
    assert read_extract(tmp_path, SOURCE).declared_rows == 55091
    (tmp_path / "school_absence.count").write_text("rows: 55091", encoding="ascii")
    message = error(tmp_path)
    assert "school_absence.count: a count file must hold the number of data rows in school_absence.csv" in message
