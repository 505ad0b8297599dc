"""`tidlig sources check DIR`: a data steward's look at a folder of extracts before a run."""

from __future__ import annotations

from datetime import date

import pytest

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


def _zip(path):
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(path.name, path.read_bytes())
    path.write_bytes(buffer.getvalue())


def _reencoded(encoding: str, line_end: str = "\r\n"):
    def change(path):
        text = path.read_bytes().decode("cp1252").replace("\r\n", line_end)  # the synthetic population comes in Windows-1252
        path.write_bytes(text.encode(encoding))
    return change


def _header_only(path):
    path.write_bytes(path.read_bytes().split(b"\r\n", 1)[0] + b"\r\n")


def _without_column(path):
    lines = path.read_bytes().split(b"\r\n")
    path.write_bytes(b"\r\n".join(b";".join(line.split(b";")[:-2]) for line in lines))


def _extra_column(path):
    lines = path.read_bytes().split(b"\r\n")
    path.write_bytes(b"\r\n".join([lines[0] + b";kommentar", *(line + b"; " for line in lines[1:-1]), b""]))


def _last_line_cut(path):
    path.write_bytes(path.read_bytes().rstrip(b"\r\n")[:-14])


# What a steward may find in the extracts folder; None: the file is read and the check passes.
KINDS = {
    "empty-file": (lambda p: p.write_bytes(b""), "the file is empty"),
    "header-only": (_header_only, "the file has no data rows"),
    "missing-column": (_without_column, "missing column(s)"),
    "missing-file": (lambda p: p.unlink(), "no extract for source 'population'"),
    "zip-named-csv": (_zip, "is a zip archive, not a CSV file; unpack it"),
    "gzip-named-csv": (lambda p: p.write_bytes(__import__("gzip").compress(p.read_bytes())), "is a gzip-compressed file, not a CSV file"),
    "unreadable-file": (None, "cannot be read: permission denied"),
    "directory-instead-of-file": (lambda p: (p.unlink(), p.mkdir()), "is a folder, not a file"),
    "truncated-last-line": (_last_line_cut, "without a line break: the file was cut off"),
    "utf-16": (_reencoded("utf-16"), None),
    "cp1252": (_reencoded("cp1252"), None),
    "utf-8-bom": (_reencoded("utf-8-sig"), None),
    "crlf": (_reencoded("utf-8", "\r\n"), None),
    "cr": (_reencoded("utf-8", "\r"), None),
    "extra-column": (_extra_column, "warning: population.csv: column(s) kommentar are not in the registry and are not read"),
}


@pytest.fixture(scope="module")
def delivered(tmp_path_factory):
    from tidlig.settings import load_config

    config = load_config()
    out = tmp_path_factory.mktemp("town")
    return generate(SynthSpec(persons=400, seed=4, start=config.synth.start, end=config.synth.end)).write(out, "csv-dk")


@pytest.mark.slow
@pytest.mark.parametrize("kind", list(KINDS))
def test_each_kind_of_bad_delivery_is_named_with_its_file_and_no_traceback(kind, delivered, tmp_path, tidlig_home, monkeypatch):
    import shutil
    from pathlib import Path

    damage, fragment = KINDS[kind]
    folder = Path(shutil.copytree(delivered, tmp_path / "extracts"))
    path = folder / "population.csv"
    if damage is None:  # tests may run as root, for whom permissions do not hold: refuse the read as the OS would
        real = Path.read_bytes
        monkeypatch.setattr(Path, "read_bytes", lambda self: (_ for _ in ()).throw(PermissionError(13, "Permission denied")) if self == path else real(self))
    else:
        damage(path)
    result = CliRunner().invoke(app, ["sources", "check", str(folder), "--as-of", "2026-11-01"])
    assert "Traceback" not in result.output and result.exception is None or isinstance(result.exception, SystemExit), result.output
    population = next(line for line in result.output.splitlines() if line.startswith("population "))
    if fragment is None or fragment.startswith("warning"):
        assert result.exit_code == 0, result.output
        assert "BROKEN" not in result.output
        assert population.split()[1] == population.split()[2] == "400", population  # every resident read and valid
        if fragment:
            assert fragment in result.output
    else:
        assert result.exit_code == 1, result.output
        assert "population" in population and "BROKEN" in population and fragment in population, population
