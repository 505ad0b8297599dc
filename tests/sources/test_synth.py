import re
from datetime import date

import polars as pl
import pytest

from sources.registry import load_registry
from sources import synth
from sources.synth import SynthSpec, blocks, generate, write_municipality

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


def test_every_investigation_follows_the_notification_that_referred_it(town):
    # Dated back from the support measure it preceded, an investigation would tell a model of the
    # measure to come; dated from its referral, it says only what was known.
    investigations = town.extracts["child_investigations"].select("investigation_id", "person_id", inquiry="event_date")
    notes = town.extracts["notifications"].select("person_id", referral="event_date")
    referred = (
        investigations.join(notes, on="person_id")
        .filter(((pl.col("inquiry") - pl.col("referral")).dt.total_days()).is_between(7, 41))
        .select("investigation_id").unique()
    )
    assert investigations.height > 20
    assert referred.height == investigations.height


def test_a_measure_after_no_recent_investigation_waits_for_the_one_its_referral_opens(town):
    investigations = town.extracts["child_investigations"].select("person_id", inquiry="event_date")
    measures = town.extracts["support_measures"].select("person_id", begins="event_date")
    before = measures.join(investigations, on="person_id").filter(
        ((pl.col("begins") - pl.col("inquiry")).dt.total_days()).is_between(0, 365)
    ).select("person_id", "begins").unique()
    # A measure may follow an investigation opened on earlier notifications, up to a year before.
    started_in_history = measures.filter(pl.col("begins") > pl.lit(SPEC.start) + pl.duration(days=400))
    assert started_in_history.height > 10
    assert started_in_history.join(before, on=["person_id", "begins"], how="anti").height == 0


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


def test_mess_is_counted_and_validation_accounts_for_every_row(tmp_path):
    from sources.readers import read_extract
    from validate.context import gx_context
    from validate.contract import validate_extract

    spec = SynthSpec(persons=1500, seed=4, start=date(2023, 1, 1), end=date(2025, 6, 30), mess=0.05)
    folder = generate(spec).write(tmp_path, "csv-dk")
    mess = __import__("json").loads((tmp_path / "synth_mess.json").read_text())
    registry = load_registry()
    context = gx_context(tmp_path / "home")
    registered = None
    for name in ("population", "school_absence", "benefits"):
        source = registry[name]
        validation = validate_extract(read_extract(folder, source), source, context=context, today=spec.end, registered=registered)
        if name == "population":
            registered = {"population.person_id": validation.valid["person_id"]}
            continue
        injected = mess[name]
        # Each injected fault quarantines exactly one row: the superseded original, the copy, the stray.
        assert validation.rows_quarantined == injected["corrections"] + injected["duplicates"] + injected["redelivered"] + injected["unknown_ids"]
        assert validation.rows_in == validation.rows_valid + validation.rows_quarantined


def test_danish_csv_is_semicolon_decimal_comma_and_day_first(tmp_path):
    folder = generate(SPEC).write(tmp_path, "csv-dk")
    raw = (folder / "school_absence.csv").read_bytes()
    assert not raw.startswith(b"\xef\xbb\xbf")  # this source comes in Latin-1
    header, first = raw.decode("cp1252").splitlines()[:2]
    assert header.startswith("person_id;event_date;absence_pct")
    assert re.fullmatch(r"\d{6}-\d{4};\d{2}-\d{2}-\d{4};\d+,\d;\d{2}-\d{2}-\d{4};1", first)
    assert (folder / "benefits.csv").read_bytes().startswith(b"\xef\xbb\xbf")


def test_people_move_away_come_back_and_die(town):
    events = town.extracts["population_events"]
    assert {"moved_in", "moved_out", "died"} <= set(events["event"])
    moves = events.group_by("person_id").agg(pl.col("event").sort_by("event_date"))
    assert moves.filter(pl.col("event").list.join(",").str.contains("moved_out,moved_in")).height > 0


def test_origin_groups_near_national_shares_and_the_hidden_risk_never_reads_origin(town, monkeypatch):
    shares = town.extracts["population"]["origin_group"].value_counts(normalize=True)
    share = dict(zip(shares["origin_group"], shares["proportion"]))
    assert set(share) == {"danish", "western", "non_western"} and 0.78 < share["danish"] < 0.92
    # Households of one origin: every member shares it.
    truth = town.ground_truth
    assert truth.group_by("household").agg(pl.col("origin_group").n_unique())["origin_group"].max() == 1
    # Everyone of Danish origin: only the origin column changes, every register and the oracle stay the same.
    monkeypatch.setattr(synth, "ORIGIN_SHARES", (1.0, 0.0, 0.0))
    danish = generate(SPEC)
    assert set(danish.extracts["population"]["origin_group"]) == {"danish"}
    for name, frame in town.extracts.items():
        assert frame.drop("origin_group", strict=False).equals(danish.extracts[name].drop("origin_group", strict=False)), name
    assert town.oracle.equals(danish.oracle)
    assert truth.drop("origin_group").equals(danish.ground_truth.drop("origin_group"))


def test_one_block_writes_exactly_what_generate_writes(tmp_path):
    generate(SPEC).write(tmp_path / "whole", "parquet")
    write_municipality(SPEC, tmp_path / "blocks", "parquet", block_persons=SPEC.persons)
    for path in sorted((tmp_path / "whole").rglob("*.parquet")):
        assert pl.read_parquet(path).equals(pl.read_parquet(tmp_path / "blocks" / path.relative_to(tmp_path / "whole"))), path.name


def test_blocks_are_appended_with_ids_apart_and_mess_summed(tmp_path):
    assert blocks(1500, 600) == [500, 500, 500] and blocks(10, 600) == [10]
    spec = SynthSpec(persons=1500, seed=3, start=date(2024, 1, 1), end=date(2025, 6, 30), mess=0.05)
    seen = []
    folder = write_municipality(spec, tmp_path, "csv-dk", block_persons=600, on_block=lambda done, total: seen.append((done, total)))
    assert seen == [(1, 3), (2, 3), (3, 3)]
    from sources.readers import read_extract

    registry = load_registry()
    population = read_extract(folder, registry["population"]).frame
    assert population.height == pl.read_parquet(tmp_path / "ground_truth.parquet").height
    # Ids of different blocks never meet: one person per CPR number and notification, one address per household.
    assert population["person_id"].n_unique() == population.height
    assert population.group_by("household_id").agg(pl.col("address").n_unique())["address"].max() == 1
    notes = read_extract(folder, registry["notifications"]).frame
    assert notes.group_by("notification_id").agg(pl.col("person_id").n_unique())["person_id"].max() == 1
    raw = (folder / "benefits.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf") and raw.count(b"\xef\xbb\xbf") == 1 and raw.count(b"person_id;") == 1
    mess = __import__("json").loads((tmp_path / "synth_mess.json").read_text())
    assert mess["benefits"]["duplicates"] > 0


@pytest.mark.slow
def test_base_rates_come_near_the_danish_figures():
    """Rates measured on 80,000 residents against the national targets and tolerances of sources/baserates.py."""
    from sources.baserates import TARGETS, measure, report

    spec = SynthSpec(persons=80_000, seed=7, start=date(2021, 1, 1), end=date(2026, 10, 31))
    town = generate(spec)
    measured = measure(town.extracts, town.ground_truth, spec.end)
    off = [name for name, target in TARGETS.items() if not target.accepts(measured[name])]
    assert not off, report(measured)


def test_the_synth_command_writes_extracts_and_truth(tmp_path, tidlig_home):
    from typer.testing import CliRunner

    from tidlig.cli import app

    done = CliRunner().invoke(app, ["synth", "--out", str(tmp_path), "--persons", "400", "--format", "csv-dk"])
    assert done.exit_code == 0, done.output
    assert {p.name for p in (tmp_path / "extracts").iterdir()} == {f"{name}.csv" for name in load_registry()}
    assert pl.read_parquet(tmp_path / "ground_truth.parquet").height > 350
