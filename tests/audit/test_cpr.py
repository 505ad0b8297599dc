"""CPR numbers are found and blanked out however they are written, and nothing else is."""

from __future__ import annotations

import pytest

from audit.cpr import canonical_cpr, looks_like_cpr, redact_cpr

# One number, as people and systems write it.
SPELLINGS = [
    "0403131001", "040313-1001", "040313 1001", "040313\u20131001", "040313\u20141001", "040313\u00a01001",
    "040313/1001", "040313.1001", "040313\u20111001", "040313\u22121001", "040313 - 1001", "040313\u202f1001",
]
NOT_CPR = [
    "3850e9a1550504321f",  # a pseudonym: the digits sit inside a longer word
    "12040313100199",  # inside a longer run of digits
    "1765041028689",  # a timestamp in milliseconds
    "3201901234",  # the 32nd day
    "0113901234",  # the 13th month
    "040313-100",  # a serial number of three digits
    "2026-11-01",
    "row 4 of 1001",
]


@pytest.mark.parametrize("spelling", SPELLINGS)
def test_every_spelling_is_found_blanked_out_and_read(spelling):
    text = f"Borger {spelling}, ring tilbage"
    assert looks_like_cpr(text)
    assert redact_cpr(text) == "Borger [CPR fjernet], ring tilbage"
    assert canonical_cpr(f" {spelling} ") == "040313-1001"


@pytest.mark.parametrize("text", NOT_CPR)
def test_other_numbers_are_left_alone(text):
    assert not looks_like_cpr(text)
    assert redact_cpr(text) == text
    assert canonical_cpr(text) is None


def test_several_numbers_in_one_text_are_all_blanked_out():
    assert redact_cpr("040313 1001 og 111290–2002.") == "[CPR fjernet] og [CPR fjernet]."
