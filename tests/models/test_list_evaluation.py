"""Intervals of the deployed list's metrics cover the truth; its fairness gate says when it cannot judge, and that blocks promotion."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from models import fairness, registry
from models.evaluate import calibration_in_top, cluster_bootstrap_sums, percentile_interval, ratio


def test_person_resampled_intervals_cover_a_known_precision_about_95_percent_of_the_time():
    # 300 children seen on 4 dates each; a child's outcome is the same on all its dates, as in the
    # replay. Resampling rows instead of children would give intervals twice too narrow.
    rng = np.random.default_rng(11)
    truth, covered, trials = 0.3, 0, 200
    children = np.repeat(np.arange(300), 4)
    for trial in range(trials):
        y = np.repeat(rng.random(300) < truth, 4).astype(float)
        draws = cluster_bootstrap_sums(children, np.column_stack([y, np.ones_like(y)]), n_boot=300, seed=trial)
        low, high = percentile_interval(ratio(draws[:, 0], draws[:, 1]))
        covered += low <= truth <= high
    assert 0.90 <= covered / trials <= 0.99, covered / trials


def test_rows_resampled_as_independent_would_undercover_the_same_case():
    # The reason for resampling persons: the same check with every row its own cluster falls short.
    rng = np.random.default_rng(11)
    covered, trials = 0, 200
    for trial in range(trials):
        y = np.repeat(rng.random(300) < 0.3, 4).astype(float)
        draws = cluster_bootstrap_sums(np.arange(1200), np.column_stack([y, np.ones_like(y)]), n_boot=300, seed=trial)
        low, high = percentile_interval(ratio(draws[:, 0], draws[:, 1]))
        covered += low <= 0.3 <= high
    assert covered / trials < 0.85


def test_calibration_in_the_top_is_slope_one_for_true_probabilities_and_flatter_for_overconfident_ones():
    rng = np.random.default_rng(3)
    p = rng.uniform(0.05, 0.6, 20000)
    y = (rng.random(20000) < p).astype(int)
    top = p >= np.quantile(p, 0.5)
    honest = calibration_in_top(y, p, top=top)
    assert abs(honest["slope"] - 1) < 0.25 and abs(honest["intercept"]) < 0.3
    logit = np.log(p / (1 - p))
    overconfident = calibration_in_top(y, 1 / (1 + np.exp(-3 * logit)), top=top)
    assert overconfident["slope"] < 0.5
    assert sum(b["rows"] for b in honest["reliability"]) == top.sum()


def _rows(per_group: dict[str, tuple[int, int, int]], seed: int = 0) -> pl.DataFrame:
    """Children per sex: (children, escalated, escalated on the list); plus unescalated children on the list."""
    rows = []
    for sex, (n, positives, listed_positives) in per_group.items():
        for i in range(n):
            escalated = i < positives
            on_list = i < listed_positives or (not escalated and i < positives + listed_positives)
            rows.append({"person": f"{sex}{i}", "sex": sex, "label": int(escalated), "on_list": on_list})
    return pl.DataFrame(rows)


def test_groups_too_small_to_judge_get_their_own_verdict_and_the_gate_does_not_pass():
    audited = fairness.audit_list(_rows({"F": (400, 80, 40), "M": (400, 10, 5)}), group_cols=["sex"], n_boot=200)
    gate = fairness.list_gate(audited)
    assert gate.verdict == fairness.NOT_ENOUGH_DATA and not gate.passed
    assert any("not enough data to judge recall for sex=M" in f for f in gate.failures)


def test_equal_groups_with_plenty_of_data_pass_and_a_clear_disparity_fails():
    same = fairness.audit_list(_rows({"F": (3000, 600, 300), "M": (3000, 600, 300)}), group_cols=["sex"], n_boot=200)
    assert fairness.list_gate(same).verdict == fairness.PASSED
    apart = fairness.audit_list(_rows({"F": (3000, 600, 300), "M": (3000, 600, 60)}), group_cols=["sex"], n_boot=200)
    gate = fairness.list_gate(apart)
    assert gate.verdict == fairness.FAILED
    assert gate.failures[0].startswith("recall disparity 0.20")


@pytest.fixture
def local_registry(tmp_path):
    from mlflow import MlflowClient

    registry.connect(f"sqlite:///{tmp_path / 'mlflow.db'}", tmp_path / "artifacts")
    client = MlflowClient()
    client.create_registered_model("m")
    version = client.create_model_version("m", source=(tmp_path / "artifacts").as_uri()).version
    from casework.store import Store

    store = Store.from_url(f"sqlite:///{tmp_path / 'tidlig.db'}")
    store.create_schema()
    return str(version), store


def test_not_enough_data_blocks_promotion_until_a_named_person_overrides_it(local_registry):
    from audit.log import read

    version, store = local_registry
    audited = fairness.audit_list(_rows({"F": (400, 80, 40), "M": (400, 10, 5)}), group_cols=["sex"], n_boot=100)
    registry.record_gate("m", version, fairness.list_gate(audited))
    with pytest.raises(registry.PromotionRefused, match="could not judge every group"):
        registry.promote("m", version, by="Birgit Leder", reason="better precision", engine=store.engine)
    assert registry.alias_version("m", registry.CHAMPION) is None
    done = registry.promote("m", version, by="Birgit Leder", reason="better precision", engine=store.engine,
                            override="Too few children in a small municipality; reviewed with the DPO")
    assert done.overridden and registry.alias_version("m", registry.CHAMPION) == version
    kinds = [e.kind for e in read(store.engine)]
    assert kinds == ["model.promotion_refused", "model.gate_overridden", "model.promoted"]


def test_many_findings_still_fit_the_tag_as_json():
    import json

    findings = tuple(f"not enough data to judge recall for district=D{i} (reference X): 3 vs 4 positive persons" for i in range(400))
    kept = json.loads(registry._findings_tag(findings))
    assert kept[-1].startswith("... and") and len(json.dumps(kept)) <= 5000
