"""The deployed evaluation replays the nightly decision, measures residents only and compares lists pairwise."""

from __future__ import annotations

from datetime import date

import numpy as np
import polars as pl
import pytest

from features.table import feature_table
from models.labels import cohort
from routing import deployed
from routing.table import load_routing_table
from rules.engine import load_rules
from sources.synth import SynthSpec, generate
from tidlig.settings import load_config

AS_OF = date(2025, 6, 6)
POLICY = load_config().ranking.policy()


class ByNotifications:
    """A stand-in champion: risk rises with notifications (enough to replay; no training needed)."""

    def predict_proba(self, X):
        p = 1 - np.exp(-0.5 * np.nan_to_num(X[:, 1]) - 0.01)
        return np.column_stack([1 - p, p])

    def score_levels(self, X):
        return np.clip(np.ceil(self.predict_proba(X)[:, 1] * 20), 1, 20).astype(int)


@pytest.fixture(scope="module")
def town():
    return generate(SynthSpec(persons=2500, seed=7, start=date(2021, 1, 1), end=date(2026, 10, 31)))


def test_the_replay_measures_only_children_who_still_live_here(town):
    table, _ = feature_table(town.extracts, AS_OF)
    children = table.filter(pl.col("target") == "child")
    gone = set(children.filter(pl.col("moved_away") | pl.col("deceased"))["person"])
    assert gone, "the town should have children who moved away before the date"
    scored = cohort(table, town.extracts["support_measures"], AS_OF)
    rows, _ = deployed.replay(town.extracts, AS_OF, model=ByNotifications(), model_version="m/1", ruleset=load_rules(),
                              table=load_routing_table(), policy=POLICY, horizon_days=365)
    assert not gone & set(rows["person"])
    assert rows.height == scored.height


def test_paired_differences_have_the_sign_of_the_better_list():
    # 200 children, 40 escalated; list "a" finds 30 of them, list "b" 10, each looking at 50.
    y = np.r_[np.ones(40), np.zeros(160)].astype(int)
    a = np.r_[np.ones(30), np.zeros(10), np.ones(20), np.zeros(140)].astype(bool)
    b = np.r_[np.ones(10), np.zeros(30), np.ones(40), np.zeros(120)].astype(bool)
    rows = pl.DataFrame({"person": [f"p{i}" for i in range(200)], "team": "t", "label": y,
                         deployed.DEPLOYED: a, deployed.POINTS: b})
    table, diffs = deployed._at_capacity(rows, [deployed.DEPLOYED, deployed.POINTS], n_boot=300, seed=0)
    d = diffs.filter((pl.col("team") == "all") & (pl.col("metric") == "precision")).row(0, named=True)
    assert (d["list"], d["versus"]) == (deployed.DEPLOYED, deployed.POINTS)
    assert d["difference"] == pytest.approx(30 / 50 - 10 / 50) and d["low"] > 0
    swapped = rows.rename({deployed.DEPLOYED: "x"}).rename({deployed.POINTS: deployed.DEPLOYED, "x": deployed.POINTS})
    _, back = deployed._at_capacity(swapped, [deployed.DEPLOYED, deployed.POINTS], n_boot=300, seed=0)
    assert back.filter((pl.col("team") == "all") & (pl.col("metric") == "precision"))["high"][0] < 0


def test_the_evaluation_refuses_fewer_than_twelve_weeks(town):
    with pytest.raises(ValueError, match="at least 12"):
        deployed.evaluate_deployed(town.extracts, [AS_OF], model=ByNotifications(), model_version="m/1",
                                   ruleset=load_rules(), table=load_routing_table(), policy=POLICY)


def test_weeks_before_the_rules_were_in_force_are_refused_with_the_reason(town):
    dates = deployed.replay_dates(date(2024, 1, 5), date(2024, 3, 22))  # the rules are valid from 2025
    with pytest.raises(ValueError, match="valid_from"):
        deployed.evaluate_deployed(town.extracts, dates, model=ByNotifications(), model_version="m/1",
                                   ruleset=load_rules(), table=load_routing_table(), policy=POLICY)


@pytest.mark.slow
def test_a_tiny_municipality_end_to_end(town, monkeypatch):
    from models.card import deployed_card, model_card  # noqa: F401  (the card must render it)
    from models.scorer import RiskScorer
    from models.train import train

    trained = train(town.extracts, [date(2023, 5, 1), date(2023, 11, 1), date(2024, 5, 1), date(2024, 11, 1)], 365,
                    candidates={"logistic_C1": RiskScorer(C=1.0)}, n_boot=0)
    dates = deployed.evaluation_dates(town.extracts, 365, after=date(2025, 1, 1))
    dates = dates[:12]
    routed = []
    real = deployed.teams_list

    def spy(*args, **kwargs):
        drafts = real(*args, **kwargs)
        routed.append(drafts)
        return drafts

    monkeypatch.setattr(deployed, "teams_list", spy)
    ev = deployed.evaluate_deployed(town.extracts, dates, model=trained.model, model_version="m/1", ruleset=load_rules(),
                                    table=load_routing_table(), policy=POLICY, oracle=town.oracle, n_boot=200, trained_until=date(2024, 11, 1))
    assert len(routed) == 12  # every date goes through the one seam to routing
    total = ev.at_capacity.filter(pl.col("team") == "all")
    assert set(total["list"]) == {"deployed", "model", "points", "oracle"}
    assert total["k"].n_unique() == 1 and total["k"][0] > 0  # every list looks at as many children
    per_team = ev.at_capacity.filter(pl.col("team") != "all")
    assert per_team.group_by("team").agg(pl.col("k").n_unique())["k"].max() == 1
    for name in ("deployed", "oracle"):
        value, low, high = ev.value(name)
        assert low <= value <= high
    assert {(r["list"], r["versus"]) for r in ev.differences.iter_rows(named=True)} == set(deployed.PAIRS)
    assert set(ev.curve["list"]) == {"deployed", "model", "points", "oracle"}
    assert ev.gate.verdict in ("passed", "failed", "not_enough_data")
    assert set(ev.fairness["attribute_name"]) == {"sex", "age_band", "district", "origin_group"}
    card = deployed_card(ev)
    assert "## Fairness of the deployed list" in card and "points rule" in card
    assert "lean optimistic" in card  # its last training date's outcome year reaches into these weeks
    persons = set(town.extracts["population"]["person_id"])
    assert not any(p in card for p in list(persons)[:500])  # aggregates only
    assert all(np.isfinite(v) for v in ev.metrics().values())
