"""Back-testing: current and proposed rules replayed over past dates of a synthetic municipality."""

from __future__ import annotations

from datetime import date

import polars as pl
import pytest

from routing.table import load_routing_table
from routing.backtest import backtest, replay_dates, report
from rules.engine import RULES_DIR, load_rules
from sources.synth import SynthSpec, generate
from tidlig.settings import load_config

POLICY = load_config().ranking.policy()
DATES = [date(2025, 1, 6), date(2026, 6, 1)]  # the second one's year of outcomes is not over yet


@pytest.fixture(scope="module")
def town():
    return generate(SynthSpec(persons=1500, seed=3, start=date(2021, 1, 1), end=date(2026, 10, 31))).extracts


def rules_with(folder, old: str, new: str):
    folder.mkdir()
    for path in RULES_DIR.glob("*.yaml"):
        text = path.read_text(encoding="utf-8")
        (folder / path.name).write_text(text.replace(old, new), encoding="utf-8")
    return load_rules(folder)


def test_a_looser_rule_only_adds_and_precision_waits_for_known_outcomes(town, tmp_path):
    proposed = rules_with(tmp_path / "p", "school_absence_pct_90d >= 15", "school_absence_pct_90d >= 10")
    result = backtest(town, load_rules(), proposed, DATES, load_routing_table(), policy=POLICY)
    summary = {row["as_of"]: row for row in result.summary.iter_rows(named=True)}
    early, late = summary[DATES[0]], summary[DATES[1]]
    # Within capacity, the flags a looser rule adds can push others below the cut.
    assert early["added"] > 0
    assert early["flagged_proposed"] == early["flagged_current"] + early["added"] - early["removed"]
    assert 0 <= early["precision_current"] <= 1 and early["precision_added"] is not None
    assert late["precision_current"] is None and late["precision_proposed"] is None
    assert result.current_version != result.proposed_version


def test_the_same_rules_change_nothing_and_load_covers_every_team_and_week(town):
    table = load_routing_table()
    result = backtest(town, load_rules(), load_rules(), DATES, table, policy=POLICY)
    assert result.summary.select(pl.col("added", "removed").sum()).row(0) == (0, 0)
    assert result.load.height == len(DATES) * 2 * len(table.teams)
    assert set(result.load["week"]) == {"2025-W02", "2026-W23"}
    row = result.load.filter(pl.col("side") == "current").select(pl.col("flags", "within_capacity", "below_capacity").sum()).row(0)
    assert row[0] == row[1] + row[2] > 0
    text = report(result)
    assert "2025-W02" in text and "familie-nord" in text


def test_replay_dates_step_and_refuse_a_reversed_range():
    assert replay_dates(date(2025, 1, 1), date(2025, 1, 15)) == [date(2025, 1, 1), date(2025, 1, 8), date(2025, 1, 15)]
    with pytest.raises(ValueError, match="before"):
        replay_dates(date(2025, 2, 1), date(2025, 1, 1))


def test_nights_of_one_week_count_a_person_once_and_the_report_sums_the_week(town):
    table = load_routing_table()
    nights = [date(2025, 1, 6), date(2025, 1, 7)]  # a Monday and a Tuesday
    result = backtest(town, load_rules(), load_rules(), nights, table, policy=POLICY)
    monday, tuesday = result.summary.sort("as_of").iter_rows(named=True)
    # Tuesday's flags for persons still open from Monday are held back, not raised twice.
    assert monday["flagged_current"] > 0 and tuesday["flagged_current"] < monday["flagged_current"]
    assert tuesday["suppressed_current"] > monday["suppressed_current"]
    weekly = result.load.filter(pl.col("side") == "current").group_by("team").agg(pl.col("within_capacity", "below_capacity").sum())
    team, within, below = weekly.sort("team").row(0)
    assert f"  2025-W02  {team:<15} capacity" in report(result)
    line = next(l for l in report(result).splitlines() if f"2025-W02  {team} " in l)
    assert f"{within:>3} + {below:>3} below  ->" in line
