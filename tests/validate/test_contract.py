"""validate_extract: clean extracts pass, each kind of bad row is quarantined with its reason, nothing is lost."""

from __future__ import annotations

import pickle
from datetime import date

import polars as pl
import pytest

from sources.readers import ExtractError, read_extract
from validate.contract import InvalidShareError, validate_extract
from validate.quarantine import QUARANTINE_SCHEMA

TODAY = date(2025, 6, 1)


def run(extract, source, context, **kwargs):
    return validate_extract(extract, source, context=context, today=TODAY, **kwargs)


def assert_accounted(validation):
    assert validation.rows_in == validation.rows_valid + validation.rows_quarantined
    assert validation.valid.height == validation.rows_valid
    assert validation.quarantine.get_column("row_number").n_unique() == validation.rows_quarantined
    rows = set(validation.valid["row_number"]) | set(validation.quarantine["row_number"])
    assert rows == set(range(1, validation.rows_in + 1))
    assert not set(validation.valid["row_number"]) & set(validation.quarantine["row_number"])


@pytest.mark.parametrize(
    "name",
    sorted(__import__("sources.registry", fromlist=["load_registry"]).load_registry()),
)
def test_clean_extract_of_every_source_passes_typed(name, registry, clean_rows, csv_extract, context):
    source = registry[name]
    validation = run(csv_extract(source, clean_rows(source)), source, context)
    assert validation.quarantine.is_empty()
    assert validation.quarantine.schema == pl.Schema(QUARANTINE_SCHEMA)
    assert (validation.rows_in, validation.rows_valid, validation.rows_quarantined) == (10, 10, 0)
    expected = {"str": pl.String, "date": pl.Date, "float": pl.Float64, "int": pl.Int64}
    assert validation.valid.columns == ["row_number", *source.column_names]
    for column in source.columns:
        assert validation.valid.schema[column.name] == expected[column.type], column.name
    assert validation.valid["row_number"].to_list() == list(range(1, 11))


def test_parquet_with_native_types_passes(registry, clean_rows, tmp_path, context):
    source = registry["school_absence"]
    frame = pl.DataFrame(clean_rows(source)).with_columns(
        pl.col("event_date", "known_date").str.to_date(), pl.col("absence_pct").cast(pl.Float64), pl.col("version").cast(pl.Int64)
    )
    frame.write_parquet(tmp_path / "school_absence.parquet")
    validation = run(read_extract(tmp_path, source), source, context)
    assert validation.quarantine.is_empty()
    assert validation.valid.drop("row_number").equals(frame)


def test_semicolon_csv_with_decimal_comma_is_read_as_numbers(registry, clean_rows, csv_extract, context):
    source = registry["school_absence"]
    rows = clean_rows(source)
    rows[0]["absence_pct"] = "12,5"
    validation = run(csv_extract(source, rows, separator=";"), source, context)
    assert validation.quarantine.is_empty()
    assert validation.valid["absence_pct"][0] == 12.5


BAD_ROWS = [
    # source, column, bad value, expectation, reason (exact), value kept in quarantine
    ("school_absence", "person_id", "", "expect_column_values_to_be_between", "person_id is missing", None),
    ("notifications", "notification_id", None, "expect_column_values_to_be_between", "notification_id is missing", None),
    ("population", "sex", "X", "expect_column_values_to_be_in_set", "sex 'X' is not one of F, M", "X"),
    ("notifications", "notifier", "teacher", "expect_column_values_to_be_in_set",
     "notifier 'teacher' is not one of school, daycare, health, police, hospital, relative, anonymous", "teacher"),
    ("school_absence", "person_id", "010190-12345", "expect_column_values_to_match_regex",
     r"person_id does not match the pattern ^\d{6}-\d{4}$", None),
    ("school_absence", "absence_pct", "140.0", "expect_column_values_to_be_between",
     "absence_pct 140.0 is above the maximum 100", "140.0"),
    ("school_absence", "absence_pct", "-0.5", "expect_column_values_to_be_between",
     "absence_pct -0.5 is below the minimum 0", "-0.5"),
    ("school_absence", "absence_pct", "lots", "expect_column_values_to_match_regex", "absence_pct 'lots' is not a number", "lots"),
    ("benefits", "event_date", "31-02-2024", "expect_column_values_to_match_regex",
     "event_date '31-02-2024' is not a calendar date written YYYY-MM-DD or DD-MM-YYYY (years 1000-2999)", "31-02-2024"),
    ("benefits", "event_date", "2024-02-31", "expect_column_values_to_match_regex",
     "event_date '2024-02-31' is not a calendar date written YYYY-MM-DD or DD-MM-YYYY (years 1000-2999)", "2024-02-31"),
    ("benefits", "known_date", "2023-02-29", "expect_column_values_to_match_regex",
     "known_date '2023-02-29' is not a calendar date written YYYY-MM-DD or DD-MM-YYYY (years 1000-2999)", "2023-02-29"),
    ("substance_treatment", "known_date", "2023-12-01", "expect_column_pair_values_a_to_be_greater_than_b",
     "known_date 2023-12-01 is before event_date 2024-01-02", "2023-12-01"),
    ("support_measures", "known_date", "2025-06-02", "expect_column_values_to_be_between",
     "known_date 2025-06-02 is in the future (after 2025-06-01)", "2025-06-02"),
    ("population", "birth_date", "2026-01-01", "expect_column_values_to_be_between",
     "birth_date is in the future (after 2025-06-01)", None),
]


@pytest.mark.parametrize(("name", "column", "bad", "expectation", "reason", "value"), BAD_ROWS)
def test_bad_value_is_quarantined_with_reason_and_row_number(
    name, column, bad, expectation, reason, value, registry, clean_rows, csv_extract, context
):
    source = registry[name]
    rows = clean_rows(source)
    rows[1][column] = bad
    validation = run(csv_extract(source, rows), source, context)
    assert_accounted(validation)
    assert validation.rows_quarantined == 1
    assert validation.quarantine.select("source", "file", "row_number", "column", "expectation", "reason", "value").rows() == [
        (name, f"{source.file}.csv", 2, column, expectation, reason, value)
    ]
    assert 2 not in validation.valid["row_number"]


def test_duplicate_keys_quarantine_every_copy(registry, clean_rows, csv_extract, context):
    source = registry["school_absence"]
    rows = clean_rows(source)
    rows[4] = dict(rows[1], absence_pct="50")
    validation = run(csv_extract(source, rows), source, context)
    assert_accounted(validation)
    quarantine = validation.quarantine
    assert quarantine["row_number"].to_list() == [2, 5]
    assert set(quarantine["expectation"]) == {"expect_column_values_to_be_between"}
    assert set(quarantine["column"]) == {"person_id, event_date"}
    assert set(quarantine["reason"]) == {"the key (person_id, event_date) is repeated in rows 2, 5"}
    assert quarantine["value"].is_null().all()  # the key holds a person id


def test_duplicate_of_a_non_personal_key_shows_the_key(registry, clean_rows, csv_extract, context):
    source = registry["notifications"]
    rows = clean_rows(source)
    rows[3]["notification_id"] = rows[0]["notification_id"]
    validation = run(csv_extract(source, rows), source, context)
    assert validation.quarantine.select("row_number", "expectation", "value").rows() == [
        (1, "expect_column_values_to_be_between", "notification_id-0"),
        (4, "expect_column_values_to_be_between", "notification_id-0"),
    ]


def test_row_failing_several_rules_is_listed_per_failure_and_counted_once(registry, clean_rows, csv_extract, context):
    source = registry["school_absence"]
    rows = clean_rows(source)
    rows[2].update(person_id="", absence_pct="101", known_date="2025-07-01")
    validation = run(csv_extract(source, rows), source, context)
    assert_accounted(validation)
    assert validation.rows_quarantined == 1
    assert sorted(validation.quarantine["column"]) == ["absence_pct", "known_date", "person_id"]
    assert set(validation.quarantine["row_number"]) == {3}


def test_nullable_column_may_be_empty(registry, clean_rows, csv_extract, context):
    source = registry["support_measures"]
    rows = clean_rows(source)
    rows[0]["team"] = ""
    validation = run(csv_extract(source, rows), source, context)
    assert validation.quarantine.is_empty()
    assert validation.valid["team"][0] is None


def test_personal_values_never_reach_the_quarantine(registry, clean_rows, csv_extract, context):
    source = registry["family_relations"]
    rows = clean_rows(source)
    rows[0]["parent_id"] = "12345-67890"
    rows[1]["child_id"] = "32" + rows[1]["child_id"][2:]  # no 32nd day: quarantined without quoting it
    rows[2]["child_id"] = rows[3]["child_id"]
    rows[2]["parent_id"] = rows[3]["parent_id"]
    validation = run(csv_extract(source, rows), source, context, max_invalid_share=1.0)
    quarantine = validation.quarantine
    assert set(quarantine["column"]) == {"parent_id", "child_id", "parent_id, child_id"}
    assert quarantine["value"].is_null().all()
    text = " ".join(quarantine["reason"])
    for row in rows:
        assert row["parent_id"] not in text and row["child_id"] not in text
        assert row["parent_id"].replace("-", "") not in text and row["child_id"].replace("-", "") not in text


def test_too_many_invalid_rows_stop_the_run_with_the_worst_rules(registry, clean_rows, csv_extract, context):
    source = registry["school_absence"]
    rows = clean_rows(source, 10)
    for row in rows[:3]:
        row["absence_pct"] = "250"
    extract = csv_extract(source, rows)
    with pytest.raises(ExtractError) as caught:
        run(extract, source, context, max_invalid_share=0.2)
    message = str(caught.value)
    assert "school_absence.csv" in message
    assert "3 of 10 rows (30%)" in message
    assert "absence_pct expect_column_values_to_be_between: 3 rows" in message
    assert isinstance(caught.value, InvalidShareError)
    kept = run(extract, source, context, max_invalid_share=0.2, refuse=False)
    assert kept.refused == message and kept.rows_quarantined == 3
    # What a stored failure holds (Prefect pickles the exception): the message, never the rows.
    stored = pickle.dumps(caught.value)
    assert not any(row["person_id"].encode() in stored for row in rows)
    assert run(extract, source, context, max_invalid_share=0.3).rows_valid == 7


@pytest.mark.slow
def test_a_hundred_thousand_rows_are_all_accounted_for(registry, clean_rows, tmp_path, context):
    # How fast is measured in bench/ingest_bench.py, never here: timing assertions flake on busy machines.
    source = registry["school_absence"]
    frame = pl.DataFrame(clean_rows(source, 100_000))
    frame = frame.with_columns(
        pl.when(pl.int_range(pl.len()) % 1000 == 7).then(pl.lit("101")).otherwise(pl.col("absence_pct")).alias("absence_pct")
    )
    frame.write_csv(tmp_path / "school_absence.csv")
    extract = read_extract(tmp_path, source)
    validation = validate_extract(extract, source, context=context, today=TODAY)
    assert validation.rows_quarantined == 100
    assert_accounted(validation)


def test_dates_on_the_day_of_the_run_are_not_in_the_future(registry, clean_rows, csv_extract, context):
    source = registry["benefits"]
    rows = clean_rows(source)
    rows[0].update(event_date=TODAY.isoformat(), known_date=TODAY.isoformat())
    assert run(csv_extract(source, rows), source, context).quarantine.is_empty()


def test_whole_number_columns_are_checked_and_typed(csv_extract, context):
    from sources.registry import Column, Source

    source = Source(
        name="home_visits", title="t", sector="s", owner="o", legal_basis="l", retention_days=1, file="home_visits",
        keys=("visit_id",), event_date="event_date", known_date="known_date",
        columns=(Column("visit_id", "str"), Column("visits", "int", min=0, max=52),
                 Column("event_date", "date"), Column("known_date", "date")),
    )
    rows = [{"visit_id": f"v{i}", "visits": v, "event_date": "2024-01-01", "known_date": "2024-01-02"}
            for i, v in enumerate(["3", "+4", "2.5", "60", "-1", "0", "7", "12", "52", "1"])]
    validation = run(csv_extract(source, rows), source, context, max_invalid_share=0.5)
    assert validation.quarantine.select("row_number", "reason").rows() == [
        (3, "visits '2.5' is not a whole number"),
        (4, "visits 60 is above the maximum 52"),
        (5, "visits -1 is below the minimum 0"),
    ]
    assert validation.valid.schema["visits"] == pl.Int64
    assert validation.valid["visits"].to_list() == [3, 4, 0, 7, 12, 52, 1]
