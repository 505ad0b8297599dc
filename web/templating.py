"""Rendering pages: the Jinja2 environment with the language, the signed-in user and the formatters."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from web import i18n

TEMPLATES = Jinja2Templates(directory=Path(__file__).with_name("templates"))
# Templates ship with the package and do not change while it runs; skip checking their files on every page.
TEMPLATES.env.auto_reload = False
TEMPLATES.env.globals.update(pick=i18n.pick, feature_labels=i18n.FEATURE_LABELS)


def _current_page(request: Request) -> str:
    # After a form post the page shown is the one the form was on; the language switch returns there.
    if request.method == "GET":
        return request.url.path + (f"?{request.url.query}" if request.url.query else "")
    from urllib.parse import urlsplit

    referer = urlsplit(request.headers.get("referer", ""))
    return i18n.safe_next(referer.path + (f"?{referer.query}" if referer.query else ""), "/")


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """A page in the user's language, with what every page's frame needs."""
    language = i18n.language_of(request)
    viewer = getattr(request.state, "viewer", None)

    def t(key: str, **values: Any) -> str:
        return i18n.text(key, language, **values)

    frame = dict(
        lang=language,
        other_lang="en" if language == "da" else "da",
        t=t,
        viewer=viewer,
        csrf_token=viewer.csrf_token if viewer else context.pop("login_csrf", ""),
        current_path=_current_page(request),
        date=lambda value: i18n.format_date(value, language),
        datetime=lambda value: i18n.format_datetime(value, language),
        number=lambda value, decimals=0: i18n.format_number(value, language, decimals),
        duration=lambda seconds: i18n.format_duration(seconds, language),
        kind_text=lambda kind: i18n.kind_text(kind, language),
        register_title=lambda name: i18n.register_title(name, language),
    )
    return TEMPLATES.TemplateResponse(request, template, {**frame, **context}, status_code=status_code)
