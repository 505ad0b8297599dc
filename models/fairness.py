"""A generic group-fairness audit of any scores table, with the metric definitions of the Aequitas toolkit.

Per attribute (e.g. sex) and group (e.g. "F"), over the rows of that group:
  group_size  rows;                          prev       positives (label 1) / group_size
  pp, pn      predicted positive / negative; pprev      pp / group_size
  ppr         pp / predicted positives of all groups of the attribute
  tp fp tn fn confusion counts;              precision  tp / pp
  tpr         tp / (tp + fn);                fpr        fp / (fp + tn)
  fnr         fn / (fn + tp);                fdr        fp / pp
  for         fn / pn (false omission rate)
Each metric's disparity is its value divided by the reference group's; it is outside the
tolerated band when below 0.8 or above 1.25 (Aequitas' default tau of 0.8, and 1/0.8).
A metric whose denominator is 0 is undefined: null, as are disparities that involve it, and
their `_outside` mark. Predicted positive means score >= threshold, or being among the top_k
rows by score (ties broken by row order, so exactly top_k rows are positive).

The gate judges two of these, following the Aequitas fairness tree for an assistive intervention
that reaches only a few: FNR parity (of the children who escalated, is any group missed more
often?) and FDR parity (of the children flagged, is any group flagged without need more often?).
Both compare the model's errors among children with the same outcome, so they do not move when
groups differ in how often escalations happen. pprev, ppr and FPR do: a group with fewer
escalations is rightly flagged less (teenagers escalate a third less often than small children
in the synthetic data), and with escalations as rare as 2% FPR is little more than pprev. Those
are reported, never gated. With precision that low, FDR sits near 1 for every group and its
ratios hide a precision gap of a third; the model card shows precision beside it for that reason.
A group, and its reference, are judged on a metric only when the metric's denominator (positives
for FNR, flagged children for FDR) is at least min_denominator in both: a ratio of two rates
measured on a handful of children is noise, not a finding.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

METRICS: tuple[str, ...] = ("pprev", "ppr", "precision", "tpr", "fpr", "fnr", "fdr", "for")
COUNTS: tuple[str, ...] = ("group_size", "prev", "pp", "pn", "tp", "fp", "tn", "fn")
BAND = (0.8, 1.25)
# The metrics the gate judges by default (see the module's docstring for why these two).
GATED: tuple[str, ...] = ("fnr", "fdr")
LARGEST = "largest"  # a reference group spelled this way means the attribute's largest group
# Each metric's denominator, for deciding whether a group is large enough to judge it by.
DENOMINATORS: dict[str, str] = {
    "pprev": "group_size", "ppr": "group_size", "precision": "pp", "fdr": "pp",
    "tpr": "positives", "fnr": "positives", "fpr": "negatives", "for": "pn",
}


class FairnessError(ValueError):
    """The audit cannot run as asked; the message says what is allowed."""


def _frame(scores: Any) -> pl.DataFrame:
    if isinstance(scores, pl.DataFrame):
        return scores
    try:
        return pl.from_pandas(scores)
    except (TypeError, ValueError, ImportError):
        raise FairnessError(f"scores must be a polars or pandas DataFrame, got {type(scores).__name__}") from None


def _check_columns(frame: pl.DataFrame, wanted: dict[str, str]) -> None:
    for option, column in wanted.items():
        if column not in frame.columns:
            raise FairnessError(f"{option} {column!r} is not a column; columns: {frame.columns}")


def predicted_positive(scores: pl.Series, *, threshold: float | None = None, top_k: int | None = None) -> pl.Series:
    """True where score >= threshold, or for the top_k rows by score (first rows win ties)."""
    if (threshold is None) == (top_k is None):
        raise FairnessError("give exactly one of threshold (score >= T is positive) or top_k (the K highest scores)")
    if scores.null_count():
        raise FairnessError(f"the score column has {scores.null_count()} missing value(s); drop or fill them first")
    if threshold is not None:
        return (scores >= threshold).alias("predicted")
    if top_k < 0:
        raise FairnessError(f"top_k must be 0 or more, got {top_k}")
    chosen = np.zeros(len(scores), dtype=bool)
    chosen[np.argsort(-scores.cast(pl.Float64).to_numpy(), kind="stable")[:top_k]] = True
    return pl.Series("predicted", chosen)


def _ratio(numerator: pl.Expr, denominator: pl.Expr) -> pl.Expr:
    return pl.when(denominator > 0).then(numerator / denominator).otherwise(None)


def group_metrics(frame: pl.DataFrame, attribute: str, label_col: str) -> pl.DataFrame:
    """Counts and metrics per group of one attribute, given a boolean `predicted` column."""
    y = pl.col(label_col) == 1
    p = pl.col("predicted")
    per_group = (
        frame.group_by(pl.col(attribute).cast(pl.String).fill_null("(missing)").alias("attribute_value"))
        .agg(
            group_size=pl.len(),
            positives=y.sum(),
            pp=p.sum(),
            tp=(p & y).sum(),
            fp=(p & ~y).sum(),
            tn=(~p & ~y).sum(),
            fn=(~p & y).sum(),
        )
        .with_columns(pl.col("group_size", "positives", "pp", "tp", "fp", "tn", "fn").cast(pl.Int64))
        .with_columns(pn=pl.col("group_size") - pl.col("pp"), negatives=pl.col("group_size") - pl.col("positives"))
    )
    total_pp = pl.col("pp").sum()
    return per_group.with_columns(
        attribute_name=pl.lit(attribute),
        prev=_ratio(pl.col("positives"), pl.col("group_size")),
        pprev=_ratio(pl.col("pp"), pl.col("group_size")),
        ppr=_ratio(pl.col("pp"), total_pp),
        precision=_ratio(pl.col("tp"), pl.col("pp")),
        tpr=_ratio(pl.col("tp"), pl.col("positives")),
        fpr=_ratio(pl.col("fp"), pl.col("negatives")),
        fnr=_ratio(pl.col("fn"), pl.col("positives")),
        fdr=_ratio(pl.col("fp"), pl.col("pp")),
        **{"for": _ratio(pl.col("fn"), pl.col("pn"))},
    ).sort("attribute_value")


def _reference(groups: pl.DataFrame, attribute: str, wanted: str) -> str:
    values = groups["attribute_value"].to_list()
    if wanted == LARGEST:
        return groups.sort(["group_size", "attribute_value"], descending=[True, False])["attribute_value"][0]
    if wanted not in values:
        raise FairnessError(f"reference group {wanted!r} does not occur in {attribute!r}; groups: {values}")
    return wanted


def audit(
    scores: Any,
    *,
    score_col: str,
    label_col: str,
    group_cols: Sequence[str],
    reference_groups: Mapping[str, str] | str = LARGEST,
    threshold: float | None = None,
    top_k: int | None = None,
) -> pl.DataFrame:
    """One row per attribute and group: counts, metrics, disparities to the reference and `_outside` marks.

    reference_groups maps each group column to its reference group ("largest" picks the largest
    group); a single string applies to every group column.
    """
    frame = _frame(scores)
    if not group_cols:
        raise FairnessError(f"give at least one group column; columns: {frame.columns}")
    _check_columns(frame, {"score column": score_col, "label column": label_col})
    for column in group_cols:
        _check_columns(frame, {"group column": column})
    references = dict.fromkeys(group_cols, reference_groups) if isinstance(reference_groups, str) else dict(reference_groups)
    unknown = sorted(set(references) - set(group_cols))
    missing = [c for c in group_cols if c not in references]
    if unknown or missing:
        raise FairnessError(f"reference groups are needed for exactly the group columns {list(group_cols)}; "
                            f"extra: {unknown}, missing: {missing}")
    labels = frame[label_col]
    bad = sorted(set(labels.drop_nulls().to_list()) - {0, 1, True, False}, key=str)
    if bad or labels.null_count():
        raise FairnessError(f"the label column must hold 0 or 1 only; found {bad[:5]}{' and missing values' if labels.null_count() else ''}")
    if not frame[score_col].dtype.is_numeric():
        raise FairnessError(f"the score column {score_col!r} must be numeric, got {frame[score_col].dtype}")
    frame = frame.with_columns(
        predicted_positive(frame[score_col], threshold=threshold, top_k=top_k),
        pl.col(label_col).cast(pl.Int64),
    )
    parts = []
    for column in group_cols:
        groups = group_metrics(frame, column, label_col)
        ref = _reference(groups, column, references[column])
        ref_row = groups.filter(pl.col("attribute_value") == ref)
        disparities = []
        for metric in METRICS:
            ref_value = ref_row[metric][0]
            ratio = pl.col(metric) / ref_value if ref_value not in (None, 0) else pl.lit(None, dtype=pl.Float64)
            disparities += [
                ratio.alias(f"{metric}_disparity"),
                ((ratio < BAND[0]) | (ratio > BAND[1])).alias(f"{metric}_outside"),
            ]
        parts.append(groups.with_columns(*disparities, reference_group=pl.lit(ref), is_reference=pl.col("attribute_value") == ref))
    leading = ["attribute_name", "attribute_value", "reference_group", "is_reference", *COUNTS, "positives", "negatives", *METRICS]
    result = pl.concat(parts, how="vertical_relaxed")
    return result.select(*leading, *[c for c in result.columns if c not in leading])


@dataclass(frozen=True)
class GateResult:
    """Whether a model may be promoted on fairness grounds, and every finding that says no."""

    passed: bool
    failures: tuple[str, ...] = ()
    checked: dict[str, Any] = field(default_factory=dict)

    @property
    def verdict(self) -> str:
        """passed, failed, or not_enough_data (only the audit of the deployed list says the last)."""
        return self.checked.get("verdict") or ("passed" if self.passed else "failed")

    def to_json(self) -> str:
        return json.dumps({"passed": self.passed, "verdict": self.verdict, "failures": list(self.failures), "checked": self.checked}, ensure_ascii=False)


def gate(
    audited: pl.DataFrame,
    *,
    metrics: Sequence[str] = GATED,
    min_denominator: int = 30,
    band: tuple[float, float] = BAND,
) -> GateResult:
    """Fail when a metric's disparity is outside the band for a group with enough rows to judge it.

    A group is judged on a metric only when the metric's denominator (e.g. the positives for FNR)
    is at least min_denominator in the group and in its reference: smaller groups are too noisy
    to block a model on, and the model card lists them as not judged.
    """
    unknown = sorted(set(metrics) - set(METRICS))
    if unknown:
        raise FairnessError(f"unknown metric(s) {unknown}; metrics: {list(METRICS)}")
    if min_denominator < 1:
        raise FairnessError(f"min_denominator must be at least 1, got {min_denominator}")
    references = {(r["attribute_name"], r["attribute_value"]): r for r in audited.filter(pl.col("is_reference")).iter_rows(named=True)}
    failures, judged, skipped = [], 0, []
    for row in audited.filter(~pl.col("is_reference")).iter_rows(named=True):
        reference = references[(row["attribute_name"], row["reference_group"])]
        for metric in metrics:
            where = f"{row['attribute_name']}={row['attribute_value']} (reference {row['reference_group']})"
            if min(row[DENOMINATORS[metric]], reference[DENOMINATORS[metric]]) < min_denominator:
                skipped.append(f"{metric} {where}")
                continue
            ratio = row[f"{metric}_disparity"]
            if ratio is None:
                skipped.append(f"{metric} {where}")
                continue
            judged += 1
            if not band[0] <= ratio <= band[1]:
                failures.append(f"{metric} disparity {ratio:.2f} for {where}, outside {band[0]}-{band[1]}")
    checked = {"metrics": list(metrics), "min_denominator": min_denominator, "band": list(band), "judged": judged, "not_judged": skipped}
    return GateResult(passed=not failures, failures=tuple(failures), checked=checked)


def format_table(audited: pl.DataFrame, metrics: Sequence[str] = METRICS) -> str:
    """The audit as a plain-text table: values with disparities, '*' outside the band, '—' undefined."""
    header = ["attribute", "group", "n", "prev", "pp", "tp", "fp", "tn", "fn", *metrics]
    rows = [header]
    for r in audited.iter_rows(named=True):
        cells = [r["attribute_name"], r["attribute_value"] + (" (ref)" if r["is_reference"] else ""), str(r["group_size"]),
                 _num(r["prev"]), str(r["pp"]), str(r["tp"]), str(r["fp"]), str(r["tn"]), str(r["fn"])]
        for m in metrics:
            value, ratio, outside = r[m], r[f"{m}_disparity"], r[f"{m}_outside"]
            mark = "*" if outside else ""
            cells.append(f"{_num(value)} ({_num(ratio, 2)}{mark})" if not r["is_reference"] else _num(value))
        rows.append(cells)
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)) for row in rows]
    return "\n".join(lines) + (
        f"\nvalue (disparity to the reference group); * outside {BAND[0]}-{BAND[1]}; — undefined (denominator 0)"
    )




# The audit of the list teams see, at capacity, pooled over replayed as-of dates.
LIST_GATED: tuple[str, ...] = ("recall", "precision")
PASSED, FAILED, NOT_ENOUGH_DATA = "passed", "failed", "not_enough_data"
# What each list metric is a share of, for deciding whether a group has enough of it to judge.
# Counted in persons, not person-dates: a child escalating once is positive on every weekly date
# before it, and one child seen 40 times is still one child's worth of evidence.
LIST_DENOMINATORS = {"recall": "positive_persons", "precision": "listed_persons"}


def audit_list(
    rows: pl.DataFrame, *, group_cols: Sequence[str], cluster_col: str = "person", label_col: str = "label",
    on_list_col: str = "on_list", n_boot: int = 1000, seed: int = 0,
) -> pl.DataFrame:
    """Per attribute and group: recall and precision of a list at capacity, with bootstrap intervals,
    and their ratio to the largest group with its interval (persons resampled, see cluster_bootstrap_sums).

    rows: one row per person and as-of date of the measured population, with the 0/1 label and
    whether the person was on a team's list within capacity. Counts are of person-dates, except
    positive_persons and listed_persons: the distinct persons a group's recall and precision rest on.
    """
    from models.evaluate import cluster_bootstrap_sums, percentile_interval, ratio

    _check_columns(rows, {"cluster column": cluster_col, "label column": label_col, "list column": on_list_col,
                          **{f"group column {c}": c for c in group_cols}})
    y = rows[label_col].cast(pl.Float64).to_numpy()
    chosen = rows[on_list_col].cast(pl.Float64).to_numpy()
    keys, columns = [], []
    for attribute in group_cols:
        values = rows[attribute].cast(pl.String).fill_null("(missing)").to_numpy()
        for value in sorted(set(values)):
            member = (values == value).astype(float)
            keys.append((attribute, value))
            columns += [member, member * y, member * chosen, member * chosen * y]
    sums = np.column_stack(columns) if columns else np.zeros((rows.height, 0))
    draws = cluster_bootstrap_sums(rows[cluster_col].to_numpy(), sums, n_boot=n_boot, seed=seed)
    point = sums.sum(axis=0)
    persons = {}
    for attribute in group_cols:
        value = pl.col(attribute).cast(pl.String).fill_null("(missing)")
        counted = rows.group_by(value.alias("value")).agg(
            positive_persons=pl.col(cluster_col).filter(pl.col(label_col) == 1).n_unique(),
            listed_persons=pl.col(cluster_col).filter(pl.col(on_list_col)).n_unique(),
        )
        persons |= {(attribute, v): (p, l) for v, p, l in counted.iter_rows()}
    out = []
    for attribute in group_cols:
        mine = [i for i, (a, _) in enumerate(keys) if a == attribute]
        reference = min(mine, key=lambda i: (-point[4 * i], keys[i][1]))  # the largest group
        for i in mine:
            row: dict[str, Any] = {
                "attribute_name": attribute, "attribute_value": keys[i][1], "reference_group": keys[reference][1],
                "is_reference": i == reference, "rows": int(point[4 * i]), "positives": int(point[4 * i + 1]),
                "on_list": int(point[4 * i + 2]), "hits": int(point[4 * i + 3]),
                "positive_persons": persons[keys[i]][0], "listed_persons": persons[keys[i]][1],
            }
            for metric, den in (("recall", 1), ("precision", 2)):
                value = ratio(point[4 * i + 3], point[4 * i + den])
                value_draws = ratio(draws[:, 4 * i + 3], draws[:, 4 * i + den])
                ref_value = ratio(point[4 * reference + 3], point[4 * reference + den])
                ref_draws = ratio(draws[:, 4 * reference + 3], draws[:, 4 * reference + den])
                row[metric] = float(value)
                row[f"{metric}_low"], row[f"{metric}_high"] = percentile_interval(value_draws)
                row[f"{metric}_disparity"] = float(ratio(value, ref_value))
                row[f"{metric}_disparity_low"], row[f"{metric}_disparity_high"] = percentile_interval(ratio(value_draws, ref_draws))
            out.append(row)
    return pl.DataFrame(out, infer_schema_length=None)


def list_gate(audited: pl.DataFrame, *, metrics: Sequence[str] = LIST_GATED, min_denominator: int = 30,
              band: tuple[float, float] = BAND) -> GateResult:
    """Each group and metric gets a verdict from its disparity's interval: passed, failed or not enough data.

    Passed: the 95% interval of the group's ratio to its reference lies inside the band. Failed: it
    lies wholly outside. Anything else, or fewer than min_denominator persons behind the metric in
    the group or its reference (escalated children for recall, children on a list for precision),
    is not enough data to judge: a verdict of its own, not a pass. The gate passes only when every
    group passed; a failure or a group that could not be judged blocks promotion until a named
    person overrides the gate with a reason.
    """
    unknown = sorted(set(metrics) - set(LIST_DENOMINATORS))
    if unknown:
        raise FairnessError(f"unknown list metric(s) {unknown}; metrics: {list(LIST_DENOMINATORS)}")
    if min_denominator < 1:
        raise FairnessError(f"min_denominator must be at least 1, got {min_denominator}")
    references = {(r["attribute_name"], r["attribute_value"]): r for r in audited.filter(pl.col("is_reference")).iter_rows(named=True)}
    failures, unjudged, verdicts = [], [], []
    for row in audited.filter(~pl.col("is_reference")).iter_rows(named=True):
        reference = references[(row["attribute_name"], row["reference_group"])]
        for metric in metrics:
            den = LIST_DENOMINATORS[metric]
            where = f"{row['attribute_name']}={row['attribute_value']} (reference {row['reference_group']})"
            value, low, high = (row[f"{metric}_disparity{end}"] for end in ("", "_low", "_high"))
            shown = f"{metric} disparity {_num(value, 2)} [{_num(low, 2)}, {_num(high, 2)}] for {where}"
            if min(row[den], reference[den]) < min_denominator:
                unjudged.append(f"not enough data to judge {metric} for {where}: {row[den]} vs {reference[den]} "
                                f"{den.replace('_', ' ')}, {min_denominator} needed in each")
                verdict = NOT_ENOUGH_DATA
            elif any(v is None or v != v for v in (low, high)):
                unjudged.append(f"not enough data to judge {shown}: undefined in some resamples")
                verdict = NOT_ENOUGH_DATA
            elif band[0] <= low and high <= band[1]:
                verdict = PASSED
            elif high < band[0] or low > band[1]:
                failures.append(f"{shown}, outside {band[0]}-{band[1]}")
                verdict = FAILED
            else:
                unjudged.append(f"not enough data to judge {shown}: the interval reaches both inside and outside {band[0]}-{band[1]}")
                verdict = NOT_ENOUGH_DATA
            verdicts.append((row["attribute_name"], row["attribute_value"], metric, verdict))
    verdict = FAILED if failures else NOT_ENOUGH_DATA if unjudged or not verdicts else PASSED
    checked = {"metrics": list(metrics), "min_denominator": min_denominator, "band": list(band), "verdict": verdict,
               "judged": sum(v[3] != NOT_ENOUGH_DATA for v in verdicts), "not_judged": unjudged,
               "verdicts": [list(v) for v in verdicts]}
    return GateResult(passed=verdict == PASSED, failures=tuple(failures + unjudged), checked=checked)


def _num(value: float | None, digits: int = 3) -> str:
    return "—" if value is None or value != value else f"{value:.{digits}f}"
