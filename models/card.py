"""The model card: intended use, data, metrics, fairness and limits, in markdown for MLflow and auditors."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

import polars as pl

from features.catalogue import CATALOGUE
from models.evaluate import ORACLE
from models.fairness import BAND, format_table

HEADLINE = ("roc_auc", "average_precision", "precision_at_capacity", "recall_at_capacity", "brier", "calibration_error")


def _num(value: float | None, digits: int = 3) -> str:
    return "—" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def _grid_table(result: Any) -> str:
    summary = result.cv.summary().filter(pl.col("metric").is_in(HEADLINE)).pivot("metric", index="candidate", values="mean")
    lines = ["| candidate | " + " | ".join(HEADLINE) + " |", "|---" * (len(HEADLINE) + 1) + "|"]
    for row in summary.sort("candidate").iter_rows(named=True):
        name = row["candidate"] + (" **(chosen)**" if row["candidate"] == result.candidate else "")
        lines.append(f"| {name} | " + " | ".join(_num(row.get(m)) for m in HEADLINE) + " |")
    return "\n".join(lines)


def _per_date_table(result: Any) -> str:
    rows = result.cv.metrics.filter(pl.col("candidate").is_in([result.candidate, ORACLE]) & pl.col("metric").is_in(HEADLINE[:4]))
    lines = ["| test as-of | who | rows | escalations | " + " | ".join(HEADLINE[:4]) + " |", "|---" * 8 + "|"]
    for (as_of, who), part in rows.group_by("as_of", "candidate", maintain_order=True):
        cells = {r["metric"]: f"{_num(r['value'])} [{_num(r['low'])}, {_num(r['high'])}]" for r in part.iter_rows(named=True)}
        counts = result.cv.metrics.filter((pl.col("candidate") == who) & (pl.col("as_of") == as_of))
        n = counts.filter(pl.col("metric") == "rows")["value"]
        pos = counts.filter(pl.col("metric") == "positives")["value"]
        lines.append(f"| {as_of} | {who} | {int(n[0]) if len(n) else '—'} | {int(pos[0]) if len(pos) else '—'} | "
                     + " | ".join(cells.get(m, "—") for m in HEADLINE[:4]) + " |")
    return "\n".join(lines[:2] + sorted(lines[2:]))


def model_card(result: Any, *, name: str, deployed: Any = None) -> str:
    """The card of a training result, and of the deployed evaluation when there is one, as markdown."""
    gate = result.gate
    missing_groups = [g for g in ("sex", "age_band", "district", "origin_group") if g not in result.fairness_groups]
    oracle = "oracle_average_precision_mean" in result.metrics
    features = "\n".join(f"- `{f.name}`: {f.why}" for f in CATALOGUE) + "\n- `age_years`: the child's age on the as-of date."
    return f"""# Model card: {name} ({result.candidate})

## Intended use
Ranks children without an open case by their risk of a support measure or placement within
{result.horizon_days} days, so that each family team can offer early, voluntary help to the few it has capacity
for. The score (1-20, twentieths of the training population's risk) is one input to a caseworker's
judgement next to the rules that fired and the signals behind them. **A person decides**; the score
never opens a case, never triggers a measure and is never shown to anyone outside the child's team.

Not for: deciding on measures or placements, assessing parents, any use outside the cohort below,
or any use without the caseworker reading the reasons.

## Data
{result.definition.markdown(result.horizon_days)}
- As-of dates: {", ".join(str(d) for d in result.training_as_of)} ({result.rows} person-dates, {result.positives} escalations)
- Data snapshot SHA-256: `{result.data_hash}`
- Features (computed with only what was known on each as-of date):
{features}

## Training and selection
Temporal cross-validation: each test date is predicted by models trained only on earlier as-of dates
whose {result.horizon_days}-day outcome window had closed, with labels as known on the test date.
Probabilities are calibrated ({result.model.calibration}) on the training rows only. The candidate with the
best mean average precision over the test dates is refitted on all as-of dates.

Mean over test dates ({len(result.cv.folds)} folds):

{_grid_table(result)}

Team capacities used for precision/recall at capacity: {result.cv.capacity}

## Metrics per test date (chosen model{" and oracle" if oracle else ""}; 95% bootstrap intervals)
{_per_date_table(result)}
{"The oracle is the true risk known to the synthetic municipality: the gap to it is what better data or models could still win." if oracle else ""}

{deployed_card(deployed) if deployed is not None else ""}
## Fairness of the score's cut{" (reported; the gate is the deployed list's, above)" if deployed is not None else ""}
Audit of the out-of-time predictions at the score rule's cut (score >= 19), per group of sex, age
band, district and origin (Statistics Denmark's groups: Danish origin, Western, non-Western), with
disparities to the largest group (Aequitas definitions; band {BAND[0]}-{BAND[1]}). **Origin is used
only for this audit, never as a model input**: the model's inputs are the features listed above.

{"Without the deployed list's evaluation, this audit is the gate" if deployed is None else "This audit's own verdict"}: **{"PASSED" if gate.passed else "FAILED"}** (metrics {", ".join(gate.checked.get("metrics", []))};
groups judged only where the metric's denominator is at least {gate.checked.get("min_denominator")} in
the group and in its reference). The help offered is voluntary and reaches few, so the gate asks
whether any group's escalations are missed more often (FNR) or its flags more often wrong (FDR);
flag rates (pprev, ppr) and FPR follow how often a group escalates, so they are reported, not
gated. With escalations this rare FDR stays near 1 for every group: read precision beside it.
{"".join(f"{chr(10)}- {f}" for f in gate.failures)}
{f"Not judged (too few rows): {len(gate.checked.get('not_judged', []))} group-metric pairs." if gate.checked.get("not_judged") else ""}
{f"Not audited, no such column in the data: {', '.join(missing_groups)}." if missing_groups else ""}

```
{format_table(result.fairness, ("pprev", "precision", "fpr", "fnr"))}
```

## Limits
- The label is a municipal decision (a measure or placement), not harm itself: the model learns where
  the municipality has acted before, including its blind spots and biases.
- A child's own behaviour, the most common placement reason, shows in no parental register; teenagers'
  risk is under-read.
- Parents' problems only count once a register knows them (e.g. a treatment start reaches the
  municipality weeks late), and most substance abuse is never treated.
- Escalations are rare: with few of them per date the intervals above are wide; read them, not the point values.
- Trained on {"synthetic data: the numbers say nothing about a real municipality" if oracle else "the data described above"}.
"""


LIST_NAMES = {"deployed": "deployed list", "model": "model's top-k", "points": "points rule", ORACLE: "oracle (true risk)"}


def _interval(value: float | None, low: float | None, high: float | None) -> str:
    return f"{_num(value)} [{_num(low)}, {_num(high)}]"


def deployed_card(evaluation: Any) -> str:
    """The deployed evaluation (routing/deployed.py) as markdown: the list teams see, beside the alternatives."""
    ev = evaluation
    total = ev.at_capacity.filter(pl.col("team") == "all")
    lines = [
        "## The deployed list at capacity",
        f"The nightly decision (model {ev.model_version}, rules {ev.rules_version}, suppression, family dedup, routing at "
        f"each team's weekly capacity) replayed on {len(ev.dates)} weekly as-of dates, {ev.dates[0]} to {ev.dates[-1]}, "
        f"and measured against the {ev.horizon_days} days after each. Measured: the scored children who lived in the "
        f"municipality on the date ({ev.excluded.get('moved_away_or_died', 0)} child-dates of children who had moved away "
        f"or died are left out; {ev.excluded.get('list_places_to_non_residents', 0)} list places went to them). The other "
        "lists look at as many children per team and date as the deployed list did. 95% intervals resample children.",
        "",
        *([f"The model learned from outcomes of as-of dates up to {ev.trained_until}, whose {ev.horizon_days}-day windows "
           "reach into these dates' own: its numbers here lean optimistic. The temporal cross-validation is free of that."]
          if ev.trained_until is not None and ev.trained_until + timedelta(days=ev.horizon_days) > ev.dates[0] else []),
        f"Team capacities: {ev.capacity}",
        "",
        "| list | children looked at (child-dates) | escalated among them | precision at capacity | recall at capacity |",
        "|---|---|---|---|---|",
    ]
    for r in total.iter_rows(named=True):
        lines.append(f"| {LIST_NAMES.get(r['list'], r['list'])} | {r['k']} | {r['hits']} | "
                     f"{_interval(r['precision'], r['precision_low'], r['precision_high'])} | "
                     f"{_interval(r['recall'], r['recall_low'], r['recall_high'])} |")
    lists = total["list"].to_list()
    lines += ["", "Per team (precision at capacity):", "",
              "| team | k | " + " | ".join(LIST_NAMES.get(n, n) for n in lists) + " |", "|---" * (len(lists) + 2) + "|"]
    teams = ev.at_capacity.filter(pl.col("team") != "all")
    for team, part in teams.group_by("team", maintain_order=True):
        by_list = {r["list"]: r for r in part.iter_rows(named=True)}
        lines.append(f"| {team[0]} | {by_list['deployed']['k']} | "
                     + " | ".join(_interval(by_list[n]["precision"], by_list[n]["precision_low"], by_list[n]["precision_high"]) for n in lists) + " |")
    lines += ["", "Paired differences (all teams; an interval that excludes 0 is a difference the data shows):", "",
              "| difference | precision | recall |", "|---|---|---|"]
    diffs = ev.differences.filter(pl.col("team") == "all")
    for (a, b), part in diffs.group_by("list", "versus", maintain_order=True):
        cells = {r["metric"]: _interval(r["difference"], r["low"], r["high"]) for r in part.iter_rows(named=True)}
        lines.append(f"| {LIST_NAMES.get(a, a)} − {LIST_NAMES.get(b, b)} | {cells.get('precision', '—')} | {cells.get('recall', '—')} |")
    cal = ev.calibration
    lines += ["", f"Calibration among each date's top 5% by the model's risk ({cal['rows']} child-dates, {cal['positives']} escalated): "
              f"slope {_num(cal['slope'], 2)}, intercept {_num(cal['intercept'], 2)} (well calibrated: slope 1, intercept 0).", "",
              "| mean predicted risk | observed rate | child-dates |", "|---|---|---|"]
    lines += [f"| {_num(b['predicted'])} | {_num(b['observed'])} | {b['rows']} |" for b in cal["reliability"]]
    lines += ["", deployed_fairness_card(ev.fairness, ev.gate)]
    return "\n".join(lines) + "\n"


def deployed_fairness_card(audited: pl.DataFrame, gate: Any) -> str:
    """The fairness audit of the deployed list and its gate's verdict per group, as markdown."""
    verdicts = {(a, v, m): verdict for a, v, m, verdict in gate.checked.get("verdicts", [])}
    lines = [
        "## Fairness of the deployed list",
        f"Recall and precision at capacity per group of the children measured, pooled over the dates, with the ratio to the "
        f"largest group. Gate: **{gate.verdict.replace('_', ' ').upper()}**. A group passes when the 95% interval of its "
        f"ratio lies inside {BAND[0]}-{BAND[1]}, fails when it lies wholly outside, and is *not enough data to judge* "
        f"otherwise or with fewer than {gate.checked.get('min_denominator')} children behind the metric; that blocks "
        "promotion like a failure, unless a named person overrides the gate with a reason.",
        "",
        "| group | children escalated | children listed | recall | ratio | verdict | precision | ratio | verdict |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in audited.iter_rows(named=True):
        key = (r["attribute_name"], r["attribute_value"])
        cells = []
        for m in ("recall", "precision"):
            ratio_text = "reference" if r["is_reference"] else _interval(r[f"{m}_disparity"], r[f"{m}_disparity_low"], r[f"{m}_disparity_high"])
            cells += [_interval(r[m], r[f"{m}_low"], r[f"{m}_high"]), ratio_text,
                      "—" if r["is_reference"] else verdicts.get((*key, m), "—").replace("_", " ")]
        lines.append(f"| {key[0]}={key[1]} | {r['positive_persons']} | {r['listed_persons']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
