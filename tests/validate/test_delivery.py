"""Delivery checks: the row count against the last accepted delivery and the count file, the newest event against the as-of date."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import polars as pl

from sources.registry import Delivery, load_registry
from validate.contract import Validation
from validate.delivery import delivery_problems, refusal

SOURCE = load_registry()["school_absence"]
AS_OF = date(2026, 11, 1)


def validation(rows: int = 100, newest: date = date(2026, 10, 30), declared: int | None = None, file: str = "school_absence.csv") -> Validation:
    valid = pl.DataFrame({SOURCE.event_date: [date(2026, 1, 1), newest]})
    return Validation(source=SOURCE.name, valid=valid, quarantine=pl.DataFrame(), rows_in=rows, rows_valid=rows,
                      rows_quarantined=0, file=file, declared_rows=declared)


def checks(found) -> list[str]:
    return [p.check for p in found]


def test_a_whole_current_delivery_passes():
    assert delivery_problems(validation(), SOURCE, as_of=AS_OF, last_rows=105) == ()
    assert delivery_problems(validation(declared=100), SOURCE, as_of=AS_OF, last_rows=None) == ()


def test_half_the_rows_of_the_last_accepted_delivery():
    [problem] = delivery_problems(validation(rows=27_540), SOURCE, as_of=AS_OF, last_rows=55_091)
    assert problem.check == "rows"
    assert problem.message.startswith("school_absence.csv has 27,540 rows, 50% fewer than the 55,091 of the last accepted delivery")
    assert "(at most 10% fewer is expected)" in problem.message


def test_the_count_file_disagrees_or_is_missing():
    [problem] = delivery_problems(validation(rows=27_540, declared=55_091), SOURCE, as_of=AS_OF, last_rows=None)
    assert problem.message.startswith("school_absence.csv has 27,540 data rows but school_absence.count says 55,091")
    sends = replace(SOURCE, delivery=replace(SOURCE.delivery, count_file=True))
    assert checks(delivery_problems(validation(), sends, as_of=AS_OF, last_rows=None)) == ["count_file"]
    # A database table has no file to put a count beside.
    assert delivery_problems(validation(file="school_absence"), sends, as_of=AS_OF, last_rows=None) == ()


def test_an_extract_five_weeks_old():
    [problem] = delivery_problems(validation(newest=date(2026, 9, 19)), SOURCE, as_of=AS_OF, last_rows=None)
    assert problem.check == "age"
    assert problem.message == (
        "the newest event_date in school_absence.csv is 2026-09-19, 43 days before the as-of date 2026-11-01 "
        "(at most 42 expected): the extract looks old"
    )
    assert delivery_problems(validation(newest=date(2026, 9, 20)), SOURCE, as_of=AS_OF, last_rows=None) == ()
    undeclared = replace(SOURCE, delivery=Delivery(max_row_drop=0.1))
    assert delivery_problems(validation(newest=date(2020, 1, 1)), undeclared, as_of=AS_OF, last_rows=None) == ()


def test_the_refusal_names_the_file_every_problem_and_how_to_accept_it():
    problems = delivery_problems(validation(rows=10, declared=100, newest=date(2026, 1, 1)), SOURCE, as_of=AS_OF, last_rows=100)
    assert checks(problems) == ["count_file", "rows", "age"]
    refused = refusal(SOURCE, validation(), problems, AS_OF)
    assert refused.source == "school_absence" and refused.validation is not None
    assert refused.message.count("school_absence.csv") == 3
    assert "tidlig run nightly --as-of 2026-11-01 --accept-incomplete school_absence --by NAME --reason TEXT" in refused.message
