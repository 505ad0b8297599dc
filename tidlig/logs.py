"""Structured logs for Tidlig's own loggers: one line per event as key=value pairs (or JSON), never personal data.

Messages carry counts, stages, run ids and versions; pseudonyms and CPR numbers stay in the store.
As a last guard, anything shaped like a CPR number is blanked out before a line is written.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import datetime, timezone

from audit.cpr import redact_cpr

# The top-level packages whose loggers are Tidlig's own (logging.getLogger(__name__) in each module).
PACKAGES = ("tidlig", "sources", "validate", "link", "features", "models", "rules", "routing", "casework", "audit", "flows", "web")
FORMAT_ENV = "TIDLIG_LOG_FORMAT"  # "kv" (default) or "json"
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


def _fields(record: logging.LogRecord) -> dict[str, object]:
    fields = {
        "ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
        "level": record.levelname.lower(),
        "logger": record.name,
        "msg": redact_cpr(record.getMessage()),
    }
    # Values given as logger.info("...", extra={"rows": 12}) become fields of their own.
    fields.update({k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")})
    if record.exc_info:
        fields["error"] = redact_cpr(f"{record.exc_info[0].__name__}: {record.exc_info[1]}")
    return fields


def _quoted(value: object) -> str:
    text = redact_cpr(str(value))
    return json.dumps(text, ensure_ascii=False) if (not text or any(c in text for c in ' ="\n')) else text


class KeyValueFormatter(logging.Formatter):
    """ts=... level=info logger=validate.contract msg="..." key=value ..."""

    def format(self, record: logging.LogRecord) -> str:
        return " ".join(f"{key}={_quoted(value)}" for key, value in _fields(record).items())


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log shippers."""

    def format(self, record: logging.LogRecord) -> str:
        return json.dumps({k: redact_cpr(v) if isinstance(v, str) else v for k, v in _fields(record).items()},
                          ensure_ascii=False, default=str)


class RedactCpr(logging.Filter):
    """Blanks CPR numbers out of a record's message and traceback, for handlers Tidlig does not format (Prefect's)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = redact_cpr(record.getMessage()), None
        if record.exc_info:
            # Formatters use exc_text when it is set, instead of formatting the exception again.
            record.exc_text = redact_cpr(record.exc_text or logging.Formatter().formatException(record.exc_info))
        return True


def redact_prefect_logs() -> None:
    """Every handler of Prefect's loggers (its API's run logs, the console) writes through RedactCpr; safe to call twice.

    A task's failure is logged by Prefect with the exception's message and traceback: an error
    raised by a library may quote a value of the row it choked on.
    """
    names = [name for name in list(logging.root.manager.loggerDict) if name.startswith("prefect")]
    for handler in {h for logger in (logging.getLogger(), *map(logging.getLogger, names)) for h in logger.handlers}:
        if not any(isinstance(f, RedactCpr) for f in handler.filters):
            handler.addFilter(RedactCpr())


def configure(level: int | str = logging.INFO, fmt: str | None = None, stream=None) -> None:
    """Send Tidlig's own loggers to stderr (default), one structured line per event; safe to call twice."""
    fmt = fmt or os.environ.get(FORMAT_ENV, "kv")
    if fmt not in ("kv", "json"):
        raise ValueError(f"{FORMAT_ENV} must be 'kv' or 'json', got {fmt!r}")
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else KeyValueFormatter())
    handler.set_name("tidlig-structured")
    for package in PACKAGES:
        logger = logging.getLogger(package)
        logger.handlers = [h for h in logger.handlers if h.get_name() != "tidlig-structured"] + [handler]
        logger.setLevel(level)
        logger.propagate = False
