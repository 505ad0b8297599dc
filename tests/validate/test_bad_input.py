"""The catalogue of malformed extracts: each way an extract can be broken, and what must happen.

Every case ends in exactly one of two outcomes: a whole-file error whose message names the file
and what to do, or named rows in quarantine with a reason, the rest valid and rows in = valid +
quarantined. Nothing is silently dropped.
"""

from __future__ import annotations

import csv
import gzip
import io
import zipfile
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Callable

import polars as pl
import pytest

from sources.readers import ExtractError, read_extract
from sources.registry import load_registry
from validate.contract import validate_extract

TODAY = date(2025, 6, 1)
REGISTRY = load_registry()


@dataclass(frozen=True)
class Case:
    id: str
    source: str
    # Change the clean rows (list of dicts of text) in place; or write the file yourself (raw).
    change: Callable[[list[dict]], None] | None = None
    raw: Callable[[Path, str], None] | None = None
    error: str | None = None  # fragment of the whole-file error
    quarantined: dict[int, str] = field(default_factory=dict)  # row number -> fragment of its reason
    separator: str = ","
    encoding: str = "utf-8"
    check_value: tuple[str, int, object] | None = None  # (column, row number, typed value) in the valid rows
    trimmed: int = 0  # rows with a value delivered with spaces around it


def _set(row: int, **values) -> Callable[[list[dict]], None]:
    def change(rows):
        rows[row - 1].update(values)
    return change


def _copy(source_row: int, **values) -> Callable[[list[dict]], None]:
    def change(rows):
        rows.append(dict(rows[source_row - 1], **values))
    return change


def _text(rows: list[dict], columns: list[str], separator: str = ",") -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, delimiter=separator, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def _raw_text(transform: Callable[[str], str], name: str = "school_absence") -> Callable[[Path, str], None]:
    def write(folder: Path, clean: str) -> None:
        (folder / f"{name}.csv").write_bytes(transform(clean).encode("utf-8"))
    return write


def _parquet(make: Callable[[pl.DataFrame], pl.DataFrame]) -> Callable[[Path, str], None]:
    def write(folder: Path, clean: str) -> None:
        make(pl.read_csv(io.StringIO(clean), infer_schema=False)).write_parquet(folder / "school_absence.parquet")
    return write


def _mixed(folder: Path, clean: str) -> None:
    lines = clean.splitlines()
    (folder / "school_absence.csv").write_bytes(
        ("\n".join(lines[:3]) + " Ærø\n").encode("utf-8") + ("\n".join(lines[3:]) + " Ærø\n").encode("cp1252")
    )


def _zipped(folder: Path, clean: str) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("school_absence.csv", clean)
    (folder / "school_absence.csv").write_bytes(buffer.getvalue())


def _workbook(folder: Path, clean: str) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("xl/workbook.xml", "<workbook/>")
    (folder / "school_absence.csv").write_bytes(buffer.getvalue())


def _encoded(transform: Callable[[str], str], encoding: str, name: str = "population") -> Callable[[Path, str], None]:
    def write(folder: Path, clean: str) -> None:
        (folder / f"{name}.csv").write_bytes(transform(clean).encode(encoding))
    return write


def _both(folder: Path, clean: str) -> None:
    (folder / "school_absence.csv").write_text(clean, encoding="utf-8")
    pl.read_csv(io.StringIO(clean), infer_schema=False).write_parquet(folder / "school_absence.parquet")


def _other_file(folder: Path, clean: str) -> None:
    (folder / "school_absense.csv").write_text(clean, encoding="utf-8")


def _half_negative(rows):
    for row in rows[::2]:
        row["absence_pct"] = "-5"


CASES = [
    # Whole-file problems: the run stops with one clear message.
    Case("truncated-file", "school_absence", raw=_raw_text(lambda t: t.rstrip("\n")[:-16]),
         error="the last line (line 11) stops after 2 of 5 fields without a line break"),
    Case("zip-named-csv", "school_absence", raw=_zipped, error="is a zip archive, not a CSV file; unpack it"),
    Case("xlsx-named-csv", "school_absence", raw=_workbook, error="is an Excel workbook (.xlsx)"),
    Case("gzip-named-csv", "school_absence", raw=lambda f, t: (f / "school_absence.csv").write_bytes(gzip.compress(t.encode())),
         error="is a gzip-compressed file"),
    Case("parquet-named-csv", "school_absence", raw=lambda f, t: pl.read_csv(io.StringIO(t)).write_parquet(f / "school_absence.csv"),
         error="rename it to school_absence.parquet"),
    Case("nul-bytes", "school_absence", raw=lambda f, t: (f / "school_absence.csv").write_bytes(t.encode().replace(b"\n", b"\n\x00", 3)),
         error="line 2 holds a NUL byte"),
    Case("no-header", "school_absence", raw=_raw_text(lambda t: t.split("\n", 1)[1]), error="the header line is missing"),
    Case("unclosed-quote", "school_absence", raw=_raw_text(lambda t: t.replace("\n030160", '\n"030160')),
         error='line 4: a quote (") is opened but never closed'),
    Case("folder-named-like-the-file", "school_absence", raw=lambda f, t: (f / "school_absence.csv").mkdir(), error="is a folder, not a file"),
    Case("wrong-delimiter", "school_absence", raw=_raw_text(lambda t: t.replace(",", "\t")), error="separated by ',' or ';'"),
    Case("pipe-delimiter", "school_absence", raw=_raw_text(lambda t: t.replace(",", "|")), error="single column"),
    Case("duplicated-header", "school_absence", raw=_raw_text(lambda t: t.split("\n", 1)[0] + "," + t.split(",", 1)[0] + "\n" + t.split("\n", 1)[1]),
         error="appear more than once"),
    Case("header-twice", "school_absence", raw=_raw_text(lambda t: t.split("\n", 1)[0] + "\n" + t),
         quarantined={1: "is not a calendar date"}),
    Case("empty-file", "school_absence", raw=_raw_text(lambda t: ""), error="empty"),
    Case("header-only", "school_absence", raw=_raw_text(lambda t: t.split("\n", 1)[0] + "\n"), error="no data rows"),
    Case("missing-column", "school_absence", raw=_raw_text(lambda t: "\n".join(",".join(l.split(",")[:2] + l.split(",")[3:]) for l in t.splitlines())),
         error="missing column(s) absence_pct"),
    Case("renamed-column", "school_absence", raw=_raw_text(lambda t: t.replace("absence_pct", "absence_percent", 1)),
         error="renamed to 'absence_percent'?"),
    Case("mixed-encodings", "school_absence", raw=_mixed, error="mixed encodings"),
    Case("extra-field", "school_absence", raw=_raw_text(lambda t: t.replace("\n", ",extra\n", 3).replace(",extra", "", 2)),
         error="has 6 fields but the header has 5"),
    Case("damaged-parquet", "school_absence", raw=lambda f, t: (f / "school_absence.parquet").write_bytes(b"PAR1 not parquet"),
         error="cannot be read as Parquet"),
    Case("nested-parquet-column", "school_absence", raw=_parquet(lambda d: d.with_columns(pl.concat_list("absence_pct").alias("absence_pct"))),
         error="re-export it with plain values"),
    Case("csv-and-parquet", "school_absence", raw=_both, error="remove the stale one"),
    Case("misnamed-file", "school_absence", raw=_other_file, error="school_absense.csv"),
    Case("too-many-invalid", "school_absence", change=_half_negative, error="more than the 20% allowed"),
    # Row problems: the row goes to quarantine with its reason, the rest carries on.
    Case("impossible-date-danish", "benefits", change=_set(2, event_date="31-02-2024"), quarantined={2: "'31-02-2024' is not a calendar date"}),
    Case("impossible-date-iso", "benefits", change=_set(2, event_date="2024-02-30"), quarantined={2: "is not a calendar date"}),
    Case("no-leap-day", "benefits", change=_set(3, known_date="2023-02-29"), quarantined={3: "is not a calendar date"}),
    Case("two-digit-year", "benefits", change=_set(3, event_date="01-02-24"), quarantined={3: "is not a calendar date"}),
    Case("date-in-future", "support_measures", change=_set(4, known_date="2025-06-02"), quarantined={4: "in the future (after 2025-06-01)"}),
    Case("birth-in-future", "population", change=_set(1, birth_date="2031-12-24"), quarantined={1: "birth_date is in the future"}),
    Case("known-before-event", "substance_treatment", change=_set(2, known_date="2023-12-01"), quarantined={2: "is before event_date"}),
    Case("negative-amount", "evictions", change=_set(5, arrears_dkk="-1200,50"), quarantined={5: "arrears_dkk -1200,50 is below the minimum 0"}),
    Case("amount-two-decimal-marks", "evictions", change=_set(5, arrears_dkk="12,000,50"), quarantined={5: "is not a number"}),
    Case("unknown-code", "benefits", change=_set(6, benefit="pension"), quarantined={6: "'pension' is not one of"}),
    Case("unknown-notifier", "notifications", change=_set(6, notifier="teacher"), quarantined={6: "'teacher' is not one of"}),
    Case("absence-above-100", "school_absence", change=_set(7, absence_pct="140"), quarantined={7: "above the maximum 100"}),
    Case("text-in-number", "school_absence", change=_set(7, absence_pct="lots"), quarantined={7: "is not a number"}),
    Case("text-in-version", "school_absence", change=_set(7, version="two"), quarantined={7: "is not a whole number"}),
    Case("id-with-letters", "school_absence", change=_set(8, person_id="01019O-1234"), quarantined={8: "does not match the pattern"}),
    Case("cpr-day-32", "population", change=_set(8, person_id="320190-1234"), quarantined={8: "person_id does not begin with a real birth date"}),
    Case("cpr-month-13", "population", change=_set(8, person_id="011390-1234"), quarantined={8: "does not begin with a real birth date"}),
    # The seventh digit 1 puts 29 February of year 00 in 1900, which was no leap year; 4 puts it in 2000.
    Case("cpr-leap-day-1900", "population", change=_set(8, person_id="290200-1234"), quarantined={8: "does not begin with a real birth date"}),
    Case("cpr-leap-day-2000", "population", change=_set(8, person_id="290200-4234"), check_value=("person_id", 8, "290200-4234")),
    Case("cpr-failing-modulus-11", "population", change=_set(8, person_id="010190-1235"), check_value=("person_id", 8, "010190-1235")),
    Case("missing-id", "school_absence", change=_set(8, person_id=""), quarantined={8: "person_id is missing"}),
    Case("blank-id", "school_absence", change=_set(8, person_id="   "), quarantined={8: "person_id is missing"}),
    Case("id-not-in-population", "school_absence", change=_set(9, person_id="311299-9999"),
         quarantined={9: "person_id is not found in population.person_id"}),
    Case("conflicting-duplicate-key", "school_absence", change=_copy(2, absence_pct="50"),
         quarantined={2: "is repeated in rows 2, 11", 11: "is repeated in rows 2, 11"}),
    Case("exact-duplicate", "school_absence", change=_copy(3), quarantined={11: "an exact copy of row 3"}),
    Case("re-delivered-later", "school_absence", change=_copy(3, known_date="2024-02-01"),
         quarantined={11: "the same as row 3, delivered again with a later known_date"}),
    Case("superseded-by-correction", "school_absence", change=_copy(4, absence_pct="30", version="2"),
         quarantined={4: "superseded by the correction in row 11 (version 2)"}, check_value=("absence_pct", 11, 30.0)),
    Case("duplicate-notification-id", "notifications", change=_copy(1, notifier="police"),
         quarantined={1: "is repeated in rows 1, 11", 11: "is repeated in rows 1, 11"}),
    # Danish ways of writing that are not errors.
    Case("id-without-dash", "population", change=_set(8, person_id="0403131001"), check_value=("person_id", 8, "040313-1001")),
    Case("id-with-space", "population", change=_set(8, person_id="040313 1001"), check_value=("person_id", 8, "040313-1001")),
    Case("id-leading-zero-dropped", "population", change=_set(8, person_id="40313-1001"), check_value=("person_id", 8, "040313-1001")),
    Case("id-without-dash-is-found-in-population", "school_absence", change=_set(8, person_id="0801600007"), check_value=("person_id", 8, "080160-0007")),
    Case("danish-thousands-separator", "evictions", change=_set(5, arrears_dkk="26.322,74"), check_value=("arrears_dkk", 5, 26322.74)),
    Case("danish-thousands-without-decimals", "evictions", change=_set(5, arrears_dkk="1.234.567"), check_value=("arrears_dkk", 5, 1234567.0)),
    Case("english-thousands-separator", "evictions", change=_set(5, arrears_dkk="26,322.74"), check_value=("arrears_dkk", 5, 26322.74)),
    Case("decimal-point-is-no-thousands-separator", "evictions", change=_set(5, arrears_dkk="26.322"), check_value=("arrears_dkk", 5, 26.322)),
    Case("spaces-around-values", "school_absence", change=_set(3, person_id=" 030160-0002 ", absence_pct=" 12,5\t"),
         check_value=("absence_pct", 3, 12.5), trimmed=1),
    Case("spaces-around-a-code", "benefits", change=_set(3, benefit=" " + REGISTRY["benefits"].column("benefit").values[0] + " "),
         check_value=("benefit", 3, REGISTRY["benefits"].column("benefit").values[0]), trimmed=1),
    Case("decimal-comma", "school_absence", change=_set(2, absence_pct="12,5"), check_value=("absence_pct", 2, 12.5)),
    Case("danish-date", "school_absence", change=_set(2, event_date="15-02-2024", known_date="20-02-2024"),
         check_value=("event_date", 2, date(2024, 2, 15))),
    Case("semicolons-latin1", "population", change=_set(2, address="Ærøgade 7, 2. th."), separator=";", encoding="cp1252",
         check_value=("address", 2, "Ærøgade 7, 2. th.")),
    Case("utf-16-with-bom", "population", change=_set(2, address="Ærøgade 7"), encoding="utf-16",
         check_value=("address", 2, "Ærøgade 7")),
    Case("utf-16-le-without-bom", "population", change=_set(2, address="Ærøgade 7"), encoding="utf-16-le",
         check_value=("address", 2, "Ærøgade 7")),
    Case("crlf-line-endings", "population", change=_set(3, address="Åbyvej 2"),
         raw=_encoded(lambda t: t.replace("\n", "\r\n"), "cp1252"), check_value=("address", 3, "Åbyvej 2")),
    Case("cr-line-endings", "population", change=_set(3, address="Åbyvej 2"),
         raw=_encoded(lambda t: t.replace("\n", "\r"), "cp1252"), check_value=("address", 3, "Åbyvej 2")),
    Case("cr-line-endings-cut-off", "population", raw=_encoded(lambda t: t.replace("\n", "\r")[:-9], "utf-8"),
         error="without a line break"),
    Case("utf8-bom", "population", change=_set(2, address="Søndergårdsvej 1"), encoding="utf-8-sig",
         check_value=("address", 2, "Søndergårdsvej 1")),
]


def test_the_catalogue_is_large_enough():
    assert len(CASES) >= 30
    assert len({case.id for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_malformed_extract(case: Case, clean_rows, tmp_path, context):
    source = REGISTRY[case.source]
    rows = clean_rows(source, 10)
    folder = tmp_path / "extracts"
    folder.mkdir()
    if case.change:
        case.change(rows)
    text = _text(rows, source.column_names, case.separator)
    if case.raw:
        case.raw(folder, text)
    else:
        (folder / f"{source.file}.csv").write_bytes(text.encode(case.encoding))
    population = pl.Series([r["person_id"] for r in clean_rows(source, 10)] if "person_id" in source.column_names else [])
    registered = {"population.person_id": population}

    if case.error:
        with pytest.raises(ExtractError) as caught:
            validate_extract(read_extract(folder, source), source, context=context, today=TODAY, registered=registered)
        message = str(caught.value)
        assert case.error in message, message
        assert source.file in message, "the message must name the file"
        return

    validation = validate_extract(read_extract(folder, source), source, context=context, today=TODAY, registered=registered)
    assert validation.rows_in == validation.rows_valid + validation.rows_quarantined
    assert set(validation.valid["row_number"]) | set(validation.quarantine["row_number"]) == set(range(1, validation.rows_in + 1))
    reasons = {row: " | ".join(group["reason"]) for (row,), group in validation.quarantine.group_by("row_number")}
    assert set(reasons) == set(case.quarantined), reasons
    for row, fragment in case.quarantined.items():
        assert fragment in reasons[row], reasons[row]
    if case.check_value:
        column, row, value = case.check_value
        assert validation.valid.filter(pl.col("row_number") == row)[column].item() == value
    assert validation.rows_trimmed == case.trimmed
