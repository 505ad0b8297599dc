"""What the municipality knew on an as-of date: the one definition every stage uses.

A row is known on the as-of date when its knowledge date is BEFORE that date. The nightly extract
is taken at the end of the day before the run, so a row that becomes known on the as-of day itself
is never in the extract the nightly scores from; training, labels and linking count the same rows,
or the model would learn from a day of knowledge it never has when it is used.
"""

from __future__ import annotations

from datetime import date
from typing import TypeVar

import polars as pl

Frame = TypeVar("Frame", pl.DataFrame, pl.LazyFrame)


def known_before(rows: Frame, as_of: date) -> Frame:
    """The rows (column known_date) the municipality had learned of before the as-of date."""
    return rows.filter(pl.col("known_date") < as_of)
