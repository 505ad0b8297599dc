import polars as pl
import pytest

from sources.pseudonym import KEY_ENV, load_key, pseudonymise


def test_pseudonyms_are_stable_keyed_and_leave_no_cpr(tmp_path, monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    key = load_key(tmp_path)
    assert load_key(tmp_path) == key
    assert (tmp_path / "pseudonym.key").stat().st_mode & 0o077 == 0
    frame = pl.DataFrame({"parent_id": ["010180-1234", None], "child_id": ["020210-4321", "020210-4321"]})
    out = pseudonymise(frame, ["parent_id", "child_id"], key)
    assert out["child_id"].n_unique() == 1 and out["parent_id"][1] is None
    assert not out.select(pl.all().cast(pl.Utf8).str.contains("-").any()).row(0)[0]
    other = pseudonymise(frame, ["child_id"], b"another key")
    assert other["child_id"][0] != out["child_id"][0]


def test_a_malformed_key_says_how_to_make_one(tmp_path, monkeypatch):
    monkeypatch.setenv(KEY_ENV, "not hex")
    with pytest.raises(ValueError, match="hex string"):
        load_key(tmp_path)
