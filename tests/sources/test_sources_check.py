"""`tidlig sources check DIR`: a data steward's look at a folder of extracts before a run."""

from __future__ import annotations

from datetime import date

from typer.testing import CliRunner

from sources.synth import SynthSpec, generate
from tidlig.cli import app


def test_check_reports_every_source_and_fails_on_a_broken_file(tmp_path, tidlig_home):
    folder = generate(SynthSpec(persons=5000, seed=2, start=date(2022, 1, 1), end=date(2025, 6, 30), mess=0.05)).write(tmp_path, "csv-dk")
    runner = CliRunner()
    ok = runner.invoke(app, ["sources", "check", str(folder)])
    assert ok.exit_code == 0, ok.output
    assert "school_absence" in ok.output and "superseded by the correction in row …" in ok.output

    (folder / "benefits.csv").write_text("person_id\tevent_date\n", encoding="utf-8")
    broken = runner.invoke(app, ["sources", "check", str(folder)])
    assert broken.exit_code == 1
    assert "benefits" in broken.output and "BROKEN" in broken.output and "benefits.csv" in broken.output
