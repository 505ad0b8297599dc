"""The GX context: results and Data Docs persist, repeated runs are idempotent, no personal data is stored."""

from __future__ import annotations

from datetime import date

import polars as pl

from tests.personal_data import PersonalData
from validate.context import data_docs_index, gx_context
from validate.contract import validate_extract

TODAY = date(2025, 6, 1)


def test_runs_keep_results_and_data_docs_and_can_repeat(registry, clean_rows, csv_extract, tmp_path):
    source = registry["school_absence"]
    rows = clean_rows(source)
    rows[1]["person_id"] = "010190-12345"
    rows[2]["absence_pct"] = "140"
    extract = csv_extract(source, rows)
    home = tmp_path / "home"

    first = validate_extract(extract, source, context=gx_context(home), today=TODAY, max_invalid_share=0.5)
    # A new process on the same home finds everything already there.
    context = gx_context(home)
    second = validate_extract(extract, source, context=context, today=date(2025, 6, 2), max_invalid_share=0.5)

    assert first.quarantine.equals(second.quarantine)
    assert first.rows_quarantined == 2
    index = data_docs_index(context)
    assert index.name == "index.html" and index.is_file()
    assert index.is_relative_to(home / "gx")
    stored = list((home / "gx" / "uncommitted" / "validations").rglob("*.json"))
    assert len(stored) == 2
    assert all(path.parent.parent.name == "school_absence.csv" for path in stored)  # the run is named after the file
    assert [suite.name for suite in context.suites.all()] == ["school_absence"]
    assert context.variables.progress_bars["globally"] is False


def test_stored_results_and_docs_hold_no_personal_values(registry, clean_rows, csv_extract, tmp_path):
    source = registry["population"]
    rows = clean_rows(source)
    rows[0]["person_id"] = "31129-99999"
    rows[1]["birth_date"] = "2031-12-24"
    rows[2]["person_id"] = rows[3]["person_id"]
    home = tmp_path / "home"
    validation = validate_extract(
        csv_extract(source, rows), source, context=gx_context(home), today=TODAY, max_invalid_share=1.0
    )
    assert validation.rows_quarantined == 4
    personal = {"31129-99999", "2031-12-24", rows[3]["person_id"]}
    for path in (home / "gx").rglob("*"):
        if path.suffix in (".json", ".html"):
            text = path.read_text(encoding="utf-8")
            assert not any(value in text for value in personal), path.relative_to(home)
    # Every personal value of every row, in every file GX wrote (results, suites, Data Docs), in any encoding.
    data = PersonalData({source.name: pl.DataFrame(rows)}, registry)
    assert data.values["cpr"] and data.values["address"] and data.values["birth_date"]
    found = data.in_tree("Data Docs", home / "gx")
    assert not found.count(), found.summary()


def test_a_run_stores_every_result_builds_docs_once_and_quarantines_as_a_single_check(registry, clean_rows, csv_extract, tmp_path, monkeypatch):
    from validate.context import validation_run

    source, other = registry["school_absence"], registry["homelessness"]
    rows = clean_rows(source)
    rows[1]["person_id"] = "010190-12345"
    rows[2]["absence_pct"] = "140"
    extract, clean = csv_extract(source, rows), csv_extract(other, clean_rows(other))
    context = gx_context(tmp_path / "home")
    alone = validate_extract(extract, source, context=context, today=TODAY, max_invalid_share=0.5)
    suite_file = next((tmp_path / "home" / "gx" / "expectations").glob("school_absence*.json"))
    saved = suite_file.stat().st_mtime_ns

    builds = []
    build = context.build_data_docs
    monkeypatch.setattr(context, "build_data_docs", lambda **kwargs: builds.append(kwargs) or build(**kwargs))
    with validation_run(context) as run:
        within = validate_extract(extract, source, context=context, today=TODAY, max_invalid_share=0.5, run=run)
        validate_extract(clean, other, context=context, today=TODAY, max_invalid_share=0.5, run=run)
        assert builds == []
    assert len(builds) == 1
    assert within.quarantine.equals(alone.quarantine)
    assert suite_file.stat().st_mtime_ns == saved, "an unchanged suite is not saved again"
    stored = list((tmp_path / "home" / "gx" / "uncommitted" / "validations").rglob("*.json"))
    pages = list((tmp_path / "home" / "gx" / "uncommitted" / "data_docs" / "local_site" / "validations").rglob("*.html"))
    assert len(stored) == len(pages) == 3
    text = "".join(path.read_text(encoding="utf-8") for path in stored + pages)
    assert "010190-12345" not in text


def test_a_changed_registry_saves_the_suite_again(registry, tmp_path):
    from dataclasses import replace

    from validate.context import checkpoint_for

    context = gx_context(tmp_path / "home")
    source = registry["homelessness"]
    first = checkpoint_for(context, source)
    assert checkpoint_for(context, source).validation_definitions[0].suite.id == first.validation_definitions[0].suite.id
    column = source.columns[0]
    changed = replace(source, columns=(replace(column, nullable=not column.nullable), *source.columns[1:]))
    again = checkpoint_for(context, changed).validation_definitions[0].suite
    assert len(again.expectations) != len(first.validation_definitions[0].suite.expectations)
    assert len(context.suites.get(source.name).expectations) == len(again.expectations)
