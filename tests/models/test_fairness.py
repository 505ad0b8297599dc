"""The fairness audit against numbers worked out by hand on a tiny table."""

from __future__ import annotations

import math

import pandas as pd
import polars as pl
import pytest

from models.fairness import FairnessError, audit, gate

# Group a: 6 rows, 3 positives; group b: 4 rows, 1 positive.
#   score  >= 0.5 positive   a: 0.9y1 0.8y0 0.7y1 0.4y1 0.3y0 0.1y0   b: 0.6y0 0.55y1 0.2y0 0.15y0
TINY = pl.DataFrame({
    "g": ["a"] * 6 + ["b"] * 4,
    "s": [0.9, 0.8, 0.7, 0.4, 0.3, 0.1, 0.6, 0.55, 0.2, 0.15],
    "y": [1, 0, 1, 1, 0, 0, 0, 1, 0, 0],
})


def _row(result: pl.DataFrame, group: str) -> dict:
    return result.filter(pl.col("attribute_value") == group).row(0, named=True)


def test_threshold_mode_every_metric_and_disparity_by_hand():
    result = audit(TINY, score_col="s", label_col="y", group_cols=["g"], reference_groups="a", threshold=0.5)
    a, b = _row(result, "a"), _row(result, "b")
    # a: predicted 0.9, 0.8, 0.7 -> tp 2 (0.9, 0.7), fp 1 (0.8); negatives predicted: 0.4y1 fn, 0.3, 0.1 tn
    assert (a["group_size"], a["pp"], a["pn"], a["tp"], a["fp"], a["tn"], a["fn"]) == (6, 3, 3, 2, 1, 2, 1)
    # b: predicted 0.6y0 fp, 0.55y1 tp; 0.2, 0.15 tn
    assert (b["group_size"], b["pp"], b["pn"], b["tp"], b["fp"], b["tn"], b["fn"]) == (4, 2, 2, 1, 1, 2, 0)
    expected_a = {"prev": 3 / 6, "pprev": 3 / 6, "ppr": 3 / 5, "precision": 2 / 3, "tpr": 2 / 3, "fpr": 1 / 3,
                  "fnr": 1 / 3, "fdr": 1 / 3, "for": 1 / 3}
    expected_b = {"prev": 1 / 4, "pprev": 2 / 4, "ppr": 2 / 5, "precision": 1 / 2, "tpr": 1.0, "fpr": 1 / 3,
                  "fnr": 0.0, "fdr": 1 / 2, "for": 0.0}
    for name, value in expected_a.items():
        assert a[name] == pytest.approx(value), name
    for name, value in expected_b.items():
        assert b[name] == pytest.approx(value), name
    ratios = {"pprev": 1.0, "ppr": (2 / 5) / (3 / 5), "precision": 0.75, "tpr": 1.5, "fpr": 1.0,
              "fnr": 0.0, "fdr": 1.5, "for": 0.0}
    for name, value in ratios.items():
        assert b[f"{name}_disparity"] == pytest.approx(value), name
        assert b[f"{name}_outside"] is (not 0.8 <= value <= 1.25), name
        assert a[f"{name}_disparity"] == pytest.approx(1.0) and a[f"{name}_outside"] is False
    assert a["is_reference"] and not b["is_reference"] and b["reference_group"] == "a"


def test_band_edges_are_inside_and_just_beyond_is_outside():
    # pprev of b over a: 0.8 exactly (inside), 1.25 exactly (inside), 0.75 (outside)
    def pprev_ratio(b_positive: int, b_size: int) -> tuple[float, bool]:
        frame = pl.DataFrame({
            "g": ["a"] * 10 + ["b"] * b_size,
            "s": [1] * 4 + [0] * 6 + [1] * b_positive + [0] * (b_size - b_positive),
            "y": [1, 0] * 5 + [1] * b_size,
        })
        row = _row(audit(frame, score_col="s", label_col="y", group_cols=["g"], reference_groups="a", threshold=1), "b")
        return row["pprev_disparity"], row["pprev_outside"]

    assert pprev_ratio(8, 25) == (pytest.approx(0.8), False)
    assert pprev_ratio(5, 10) == (pytest.approx(1.25), False)
    assert pprev_ratio(3, 10) == (pytest.approx(0.75), True)


def test_top_k_mode_takes_exactly_k_rows_ties_by_row_order():
    frame = TINY.with_columns(s=pl.Series([5, 4, 4, 1, 1, 0, 4, 3, 0, 0]))
    result = audit(frame, score_col="s", label_col="y", group_cols=["g"], reference_groups="a", top_k=3)
    a, b = _row(result, "a"), _row(result, "b")
    # Top 3: the 5 (a, y1), then the first two 4s in row order (both in a: y0, y1); b's 4 is left out.
    assert (a["pp"], a["tp"], a["fp"]) == (3, 2, 1)
    assert (b["pp"], b["tp"], b["fp"], b["fn"], b["tn"]) == (0, 0, 0, 1, 3)
    assert a["ppr"] == 1.0 and b["ppr"] == 0.0


def test_a_group_without_predicted_positives_gives_undefined_not_a_crash():
    result = audit(TINY, score_col="s", label_col="y", group_cols=["g"], reference_groups="a", threshold=0.65)
    b = _row(result, "b")
    assert b["pp"] == 0 and b["pprev"] == 0.0
    assert b["precision"] is None and b["fdr"] is None  # 0 / 0
    assert b["precision_disparity"] is None and b["precision_outside"] is None
    assert b["pprev_disparity"] == 0.0 and b["pprev_outside"] is True
    # With the undefined group as reference every disparity of that metric is undefined too.
    flipped = audit(TINY, score_col="s", label_col="y", group_cols=["g"], reference_groups="b", threshold=0.65)
    assert _row(flipped, "a")["precision_disparity"] is None


def test_pandas_input_several_attributes_and_largest_reference():
    frame = TINY.with_columns(sex=pl.Series(list("FMFMFMFFFF"))).to_pandas()
    assert isinstance(frame, pd.DataFrame)
    result = audit(frame, score_col="s", label_col="y", group_cols=["g", "sex"], reference_groups="largest", threshold=0.5)
    assert set(zip(result["attribute_name"], result["attribute_value"])) == {("g", "a"), ("g", "b"), ("sex", "F"), ("sex", "M")}
    assert set(result.filter(pl.col("is_reference"))["attribute_value"]) == {"a", "F"}
    by_attr = result.group_by("attribute_name").agg(pl.col("ppr").sum())
    assert all(math.isclose(v, 1.0) for v in by_attr["ppr"])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"score_col": "risk"}, r"score column 'risk' is not a column; columns: \['g', 's', 'y'\]"),
        ({"label_col": "outcome"}, r"label column 'outcome' is not a column; columns: \['g', 's', 'y'\]"),
        ({"group_cols": ["district"]}, r"group column 'district' is not a column; columns: \['g', 's', 'y'\]"),
        ({"reference_groups": "c"}, r"reference group 'c' does not occur in 'g'; groups: \['a', 'b'\]"),
        ({"threshold": None}, "exactly one of threshold"),
        ({"top_k": 2}, "exactly one of threshold"),
    ],
)
def test_bad_arguments_say_what_is_allowed(kwargs, message):
    args = {"score_col": "s", "label_col": "y", "group_cols": ["g"], "reference_groups": "a", "threshold": 0.5} | kwargs
    with pytest.raises(FairnessError, match=message):
        audit(TINY, **args)


def test_labels_must_be_zero_or_one():
    with pytest.raises(FairnessError, match="0 or 1"):
        audit(TINY.with_columns(y=pl.col("y") * 2), score_col="s", label_col="y", group_cols=["g"], reference_groups="a", threshold=0.5)


def test_gate_judges_only_groups_with_enough_rows_for_the_metric():
    result = audit(TINY, score_col="s", label_col="y", group_cols=["g"], reference_groups="a", threshold=0.5)
    # b: fnr disparity 0 is outside the band, but b has 1 positive: not judged with min_denominator 2.
    verdict = gate(result, metrics=("fnr",), min_denominator=2)
    assert verdict.passed and verdict.checked["not_judged"]
    strict = gate(result, metrics=("fnr", "fpr"), min_denominator=1)
    assert not strict.passed and any(f.startswith("fnr disparity 0.00 for g=b") for f in strict.failures)
    with pytest.raises(FairnessError, match="unknown metric"):
        gate(result, metrics=("accuracy",))


def test_the_command_prints_the_table_and_writes_csv_and_json(tmp_path):
    from typer.testing import CliRunner

    from tidlig.cli import app

    path = tmp_path / "scores.csv"
    TINY.write_csv(path)
    runner = CliRunner()
    args = ["fairness", "audit", "--scores", str(path), "--score-col", "s", "--label-col", "y", "--group-col", "g",
            "--reference-group", "a", "--threshold", "0.5"]
    done = runner.invoke(app, args)
    assert done.exit_code == 0, done.output
    assert "b" in done.output and "(ref)" in done.output
    written = pl.read_csv(tmp_path / "scores_fairness.csv")
    assert written.filter(pl.col("attribute_value") == "b")["fdr_disparity"][0] == pytest.approx(1.5)
    assert (tmp_path / "scores_fairness.json").exists()
    wrong = runner.invoke(app, [*args[:5], "score", *args[6:]])
    assert wrong.exit_code == 2 and "columns: ['g', 's', 'y']" in wrong.output


def _counts(**groups: tuple[int, int, int, int]) -> pl.DataFrame:
    """Rows per group from its confusion counts (tp, fp, fn, tn): score 1 is flagged, y the outcome."""
    rows = []
    for name, (tp, fp, fn, tn) in groups.items():
        rows += [(name, 1, 1)] * tp + [(name, 1, 0)] * fp + [(name, 0, 1)] * fn + [(name, 0, 0)] * tn
    return pl.DataFrame(rows, schema=["g", "s", "y"], orient="row")


def _gate(frame: pl.DataFrame, **kwargs):
    return gate(audit(frame, score_col="s", label_col="y", group_cols=["g"], reference_groups="largest", threshold=1), **kwargs)


def test_gate_lets_a_group_with_fewer_escalations_be_flagged_less_but_not_missed_more():
    # b escalates half as often and is flagged half as often, with the same FNR and FDR as a:
    # pprev and FPR disparities of 0.5 are what different prevalence looks like, not unfairness.
    fair = _counts(a=(60, 140, 40, 1760), b=(30, 70, 20, 1880))
    result = audit(fair, score_col="s", label_col="y", group_cols=["g"], reference_groups="a", threshold=1)
    b = _row(result, "b")
    assert b["pprev_disparity"] == pytest.approx(0.5) and b["fpr_disparity"] < 0.8
    assert _gate(fair).passed and _gate(fair).checked["metrics"] == ["fnr", "fdr"]
    assert not _gate(fair, metrics=("pprev",)).passed
    # b's escalations missed twice as often (FNR 0.8 against 0.4): the default gate fails.
    missed = _counts(a=(60, 140, 40, 1760), b=(10, 60, 40, 1890))
    verdict = _gate(missed)
    assert not verdict.passed and verdict.failures[0].startswith("fnr disparity 2.00 for g=b (reference a)")
    # b flagged without need far more often (FDR 0.98 against 0.70).
    assert any(f.startswith("fdr disparity 1.40 for g=b") for f in _gate(_counts(a=(60, 140, 40, 1760), b=(2, 98, 48, 1852))).failures)


def test_gate_does_not_judge_when_the_group_or_its_reference_is_too_small():
    # b's FNR is half a's, but b has only 25 escalations: not judged on FNR; FDR (67 flagged) is.
    few = _counts(a=(60, 140, 40, 1760), b=(20, 47, 5, 928))
    verdict = _gate(few, min_denominator=30)
    assert verdict.passed and "fnr g=b (reference a)" in verdict.checked["not_judged"] and verdict.checked["judged"] == 1
    # The largest group is the reference yet has few escalations: every FNR ratio to it is noise.
    small_reference = _counts(a=(3, 47, 2, 2948), b=(60, 40, 40, 860))
    verdict = _gate(small_reference, min_denominator=30)
    assert "fnr g=b (reference a)" in verdict.checked["not_judged"]
    assert not _gate(small_reference, min_denominator=5).passed
    with pytest.raises(FairnessError, match="min_denominator must be at least 1"):
        _gate(few, min_denominator=0)
