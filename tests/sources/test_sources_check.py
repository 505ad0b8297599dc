"""`tidlig sources check DIR`: a data steward's look at a folder of extracts before a run."""

from __future__ import annotations

from datetime import date

from typer.testing import CliRunner

from sources.synth import SynthSpec, generate
from tidlig.cli import app


def test_check_reports_every_source_and_fails_on_a_broken_file(tmp_path, tidlig_home):
    folder = generate(SynthSpec(persons=5000, seed=2, start=date(2022, 1, 1), end=date(2025, 6, 30), mess=0.05)).write(tmp_path, "csv-dk")
    runner = CliRunner()
    ok = runner.invoke(app, ["sources", "check", str(folder), "--as-of", "2025-07-01"])
    assert ok.exit_code == 0, ok.output
    assert "school_absence" in ok.output and "superseded by the correction in row …" in ok.output

    # Five weeks on, the weekly registers' extracts are too old to score on.
    stale = runner.invoke(app, ["sources", "check", str(folder), "--as-of", "2025-08-06"])
    assert stale.exit_code == 1
    assert "the newest event_date in benefits.csv is 2025-06-" in stale.output and "(at most 21 expected)" in stale.output

    lines = (folder / "police_contacts.csv").read_bytes().split(b"\r\n")
    (folder / "police_contacts.csv").write_bytes(b"\r\n".join([lines[0] + b";note", *(line + b"; x " for line in lines[1:-1]), b""]))
    (folder / "benefits.csv").write_text("person_id\tevent_date\n", encoding="utf-8")
    broken = runner.invoke(app, ["sources", "check", str(folder), "--as-of", "2025-07-01"])
    assert broken.exit_code == 1
    assert "benefits" in broken.output and "BROKEN" in broken.output and "benefits.csv" in broken.output
    assert "warning: police_contacts.csv: column(s) note are not in the registry and are not read" in broken.output
    assert "Traceback" not in broken.output
