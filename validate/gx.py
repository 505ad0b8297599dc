"""Import Great Expectations quietly: no telemetry, no import-time deprecation noise."""

from __future__ import annotations

import logging
import os
import warnings
from types import ModuleType


def import_gx() -> ModuleType:
    """The great_expectations module, imported on first use (it takes seconds)."""
    # Municipal data systems phone no one home; GX reads this when it is imported.
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    with warnings.catch_warnings():
        # GX 1.24 imports the deprecated sre_* modules; nothing for us to act on.
        warnings.simplefilter("ignore", DeprecationWarning)
        import great_expectations
        import great_expectations.expectations  # noqa: F401
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    return great_expectations
