"""`tidlig run nightly --accept-incomplete`: refused before any run unless it names a source, a person and a reason."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from tidlig.cli import app


@pytest.mark.parametrize(("extra", "message"), [
    (["--accept-incomplete", "school_absense", "--by", "Ole", "--reason", "r"], "no registered source is called school_absense"),
    (["--accept-incomplete", "school_absence", "--reason", "resten kommer i morgen"], "needs --by NAME and --reason TEXT"),
    (["--accept-incomplete", "school_absence", "--by", "Ole", "--reason", "  "], "needs --by NAME and --reason TEXT"),
    (["--by", "Ole", "--reason", "r"], "--by and --reason go with --accept-incomplete SOURCE"),
])
def test_an_acceptance_without_source_name_or_reason_is_refused_before_the_run(extra, message, tidlig_home, monkeypatch):
    import flows.nightly

    monkeypatch.setattr(flows.nightly, "nightly", lambda *args, **kwargs: pytest.fail("the run must not start"))
    result = CliRunner().invoke(app, ["run", "nightly", "--as-of", "2026-11-01", *extra])
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output


def test_the_accepted_sources_and_who_and_why_reach_the_flow(tidlig_home, monkeypatch):
    import flows.nightly

    given = {}

    def nightly(params):
        given["params"] = params
        raise RuntimeError("stopped here")

    monkeypatch.setattr(flows.nightly, "nightly", nightly)
    CliRunner().invoke(app, ["run", "nightly", "--as-of", "2026-11-01", "--accept-incomplete", "school_absence",
                             "--accept-incomplete", "benefits", "--by", "Driftsvagt Ole", "--reason", "resten kommer i morgen"])
    params = given["params"]
    assert params.accept_incomplete == ("school_absence", "benefits")
    assert (params.accepted_by, params.accept_reason) == ("Driftsvagt Ole", "resten kommer i morgen")
