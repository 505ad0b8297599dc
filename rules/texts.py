"""Reason templates: which fields they use, and filling them with readably formatted values."""

from __future__ import annotations

import math
from string import Formatter
from typing import Any

from features.texts import ago

LANGUAGES = ("da", "en")
_UNKNOWN = {"da": "ukendt", "en": "unknown"}
_YES_NO = {"da": {True: "ja", False: "nej"}, "en": {True: "yes", False: "no"}}
# Danish writes 1.234,5 where English writes 1,234.5.
_SEPARATORS = {"da": str.maketrans({",": ".", ".": ","}), "en": str.maketrans({})}
# A unit belongs to the column, so a text never says "ukendt %"; Danish puts a space before %.
_UNITS = {"school_absence_pct_90d": {"da": " %", "en": "%"}}
# A flag number is looked up as written: "nr. 1234", never "nr. 1.234".
_IDENTIFIERS = {"open_flag_id"}


class TemplateError(ValueError):
    """A reason template that cannot be filled; the caller adds where it was found."""


def template_fields(template: object, allowed: tuple[str, ...]) -> tuple[str, ...]:
    """The column names a template fills in, or TemplateError when one is unknown or formatted.

    Besides {column}, a template may say {column:ago} for a number of days as a person says it
    ("for 3 måneder siden" / "3 months ago"), and {one|other} for the word that agrees with the
    value of the field before it ("{notifications_365d} {underretning|underretninger}").
    """
    if not isinstance(template, str) or not template.strip():
        raise TemplateError(f"expected a text such as '{{notifications_365d}} underretninger', got {template!r}")
    try:
        parts = list(Formatter().parse(template))
    except ValueError as exc:
        raise TemplateError(f"cannot read {template!r}: {exc}; write a literal brace as {{{{ or }}}}") from None
    fields = []
    for _, name, spec, conversion in parts:
        if name is None:
            continue
        if "|" in name:
            forms = name.split("|")
            if len(forms) != 2 or not all(form.strip() for form in forms) or spec or conversion:
                raise TemplateError(f"{{{name}}} should name two forms, singular and plural, as {{underretning|underretninger}}")
            if not fields:
                raise TemplateError(f"{{{name}}} agrees with the field before it, and there is none; put it after a field")
            continue
        if conversion or spec not in ("", "ago"):
            # The engine formats numbers per language; a spec in the file would bypass that.
            raise TemplateError(
                f"field {{{name}}} has a format; write just {{{name}}}, or {{{name}:ago}} for days said as 'for 3 måneder siden'"
            )
        if name not in allowed:
            raise TemplateError(f"unknown field {{{name}}}; allowed: {list(allowed)}")
        fields.append(name)
    return tuple(dict.fromkeys(fields))


def format_value(value: Any, language: str) -> str:
    """A value as a reader of the language expects it: 1.234 and 17,5 in Danish, 1,234 and 17.5 in English."""
    if value is None:
        return _UNKNOWN[language]
    if isinstance(value, bool):
        return _YES_NO[language][value]
    if isinstance(value, float) and round(value, 1).is_integer():
        value = int(round(value))
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}".translate(_SEPARATORS[language])
    if isinstance(value, float):
        return f"{value:,.1f}".translate(_SEPARATORS[language])
    return str(value)


def format_column(column: str, value: Any, language: str) -> str:
    """A column's value formatted, with the column's unit when it has one and the value is known."""
    if column in _IDENTIFIERS and value is not None:
        return str(value)
    text = format_value(value, language)
    return text + _UNITS[column][language] if value is not None and column in _UNITS else text


def fill(template: str, values: dict[str, Any], language: str) -> str:
    """The template with every field replaced by its formatted value and every {one|other} chosen."""
    out, last = [], None
    for literal, name, spec, _ in Formatter().parse(template):
        out.append(literal)
        if name is None:
            continue
        if "|" in name:
            one, other = name.split("|")
            out.append(one if last == 1 else other)
            continue
        last = values.get(name)
        known = last is not None and not (isinstance(last, float) and math.isnan(last))
        out.append(ago(last, language) if spec == "ago" and known else format_column(name, last, language))
    return "".join(out)
