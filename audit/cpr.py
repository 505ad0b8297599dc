"""CPR numbers in text: the one place that knows how they are written, to find, blank out or read them.

Every text Tidlig writes (audit events, logs, quarantine reasons, exception messages) goes through
redact_cpr; a person search turns a typed number into the registers' spelling with canonical_cpr.
"""

from __future__ import annotations

import re

# Between the date and the serial number people write a dash (or a look-alike: hyphen, en- or
# em-dash, minus), a space (also a non-breaking one), a slash or a dot, or nothing at all.
_SEPARATOR = r"[ \u00a0\u202f]?[-\u2010\u2011\u2012\u2013\u2014\u2212/.]?[ \u00a0\u202f]?"
# DDMMYY then SSSS, standing alone: digits inside a longer word or number (a hex pseudonym such as
# 3850e9a1550504321f, a timestamp in milliseconds) are not a CPR number.
CPR_PATTERN = re.compile(
    rf"(?<![0-9A-Za-z])((?:0[1-9]|[12]\d|3[01])(?:0[1-9]|1[0-2])\d{{2}}){_SEPARATOR}(\d{{4}})(?![0-9A-Za-z])"
)
REDACTED = "[CPR fjernet]"


def looks_like_cpr(text: str) -> bool:
    """True when the text holds something shaped like a Danish CPR number, however it is spelled."""
    return bool(CPR_PATTERN.search(text))


def redact_cpr(text: str) -> str:
    """The text with every CPR-shaped number, in any spelling, replaced by a marker."""
    return CPR_PATTERN.sub(REDACTED, text)


def canonical_cpr(typed: str) -> str | None:
    """A typed CPR number as the registers write it (DDMMYY-SSSS), or None when the text is not one."""
    found = CPR_PATTERN.fullmatch(typed.strip())
    return f"{found[1]}-{found[2]}" if found else None
