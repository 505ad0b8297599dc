import re
from datetime import date

import polars as pl
import pytest

from sources.registry import load_registry
from sources.synth import SynthSpec, generate

SPEC = SynthSpec(persons=1500, seed=3, start=date(2022, 1, 1), end=date(2025, 12, 31))


@pytest.fixture(scope="module")
def town():
    return generate(SPEC)


def test_same_seed_same_municipality(town):
    again = generate(SPEC)
    for name, frame in town.extracts.items():
        assert frame.equals(again.extracts[name]), name


def test_every_registered_source_is_generated_with_its_columns(town):
    for name, source in load_registry().items():
        assert town.extracts[name].columns == source.column_names, name


def test_ids_look_like_cpr_numbers_with_sex_in_the_last_digit(town):
    pop = town.extracts["population"]
    assert pop["person_id"].str.contains(r"^\d{6}-\d{4}$").all()
    assert pop["person_id"].n_unique() == pop.height
    odd = pop["person_id"].str.slice(-1).cast(pl.Int32) % 2 == 1
    assert ((pop["sex"] == "M") == odd).all()


def test_nothing_is_known_before_it_happened_or_after_the_extract_date(town):
    for name, frame in town.extracts.items():
        assert (frame["known_date"] >= frame["event_date"]).all(), name
        assert (frame["known_date"] <= SPEC.end).all(), name


def test_children_are_a_fifth_and_the_truth_stays_out_of_the_extracts(town):
    truth = town.ground_truth
    assert 0.17 < (truth["role"] == "child").mean() < 0.23
    for frame in town.extracts.values():
        assert "oracle_risk_12m" not in frame.columns


def test_parental_abuse_raises_the_childrens_notification_rate(town):
    """The causal story holds: children of abusing families are notified more often."""
    kids = town.ground_truth.filter(pl.col("role") == "child").select("person_id", "family_abuse")
    notified = town.extracts["notifications"].group_by("person_id").len()
    rate = kids.join(notified, on="person_id", how="left").fill_null(0).group_by("family_abuse").agg(pl.col("len").mean())
    by_abuse = dict(rate.iter_rows())
    assert by_abuse[True] > 1.5 * by_abuse[False]
