"""Whether a delivery is whole and current: its row count against the last accepted one and its count file, its newest event against the as-of date."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import PurePath

from sources.registry import Source
from validate.contract import Refused, Validation

CHECKS = ("count_file", "rows", "age")


@dataclass(frozen=True)
class DeliveryProblem:
    """One failed delivery check; the message names the file and gives counts and dates only, never a row."""

    check: str  # one of CHECKS
    message: str


def delivery_problems(validation: Validation, source: Source, *, as_of: date, last_rows: int | None) -> tuple[DeliveryProblem, ...]:
    """The source's delivery checks (sources/registry.yaml, delivery) that the validated extract fails."""
    rules, file, rows = source.delivery, validation.file, validation.rows_in
    counted = f"{PurePath(file).stem}.count"
    problems = []
    if validation.declared_rows is not None and validation.declared_rows != rows:
        problems.append(DeliveryProblem("count_file", (
            f"{file} has {rows:,} data rows but {counted} says {validation.declared_rows:,}: the file was cut short "
            "or the count belongs to another delivery"
        )))
    elif rules.count_file and validation.declared_rows is None and PurePath(file).suffix in (".csv", ".parquet"):
        problems.append(DeliveryProblem("count_file", (
            f"{counted} is missing beside {file}: source '{source.name}' always sends its number of rows, so "
            "whether the file is whole cannot be told"
        )))
    if rules.max_row_drop is not None and last_rows and rows < last_rows * (1 - rules.max_row_drop):
        problems.append(DeliveryProblem("rows", (
            f"{file} has {rows:,} rows, {1 - rows / last_rows:.0%} fewer than the {last_rows:,} of the last accepted "
            f"delivery (at most {rules.max_row_drop:.0%} fewer is expected): the extract looks cut short"
        )))
    if rules.max_age_days is not None:
        newest = validation.valid.get_column(source.event_date).max()
        if newest is None:
            problems.append(DeliveryProblem("age", f"{file} has no valid {source.event_date} at all, so how current it is cannot be told"))
        elif (as_of - newest).days > rules.max_age_days:
            problems.append(DeliveryProblem("age", (
                f"the newest {source.event_date} in {file} is {newest.isoformat()}, {(as_of - newest).days} days before the "
                f"as-of date {as_of.isoformat()} (at most {rules.max_age_days} expected): the extract looks old"
            )))
    return tuple(problems)


def refusal(source: Source, validation: Validation, problems: tuple[DeliveryProblem, ...], as_of: date) -> Refused:
    """The run's refusal of a delivery that failed its checks, saying how to get a whole one or to accept this one."""
    found = "; ".join(p.message for p in problems)
    return Refused(source.name, (
        f"{found}. Ask {source.owner} for a whole, current extract; or, if it is right as it is, let this run use it: "
        f"tidlig run nightly --as-of {as_of.isoformat()} --accept-incomplete {source.name} --by NAME --reason TEXT "
        "(written to the audit log)."
    ), validation)
