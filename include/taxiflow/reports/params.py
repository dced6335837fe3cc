"""JSON-schema definitions of the ``borough_report`` params, shared by the DAG and every other door.

The Airflow trigger form renders these (a dropdown for ``borough``, date pickers for the dates),
and Airflow validates conf against them before it creates a run, whether the conf came from the
UI, the CLI, REST v2, the /api/v1 plugin or a request file. What JSON schema cannot say (start
before end, start within TLC's history) is re-checked by ``taxiflow.reports.request.ReportRequest``.

Light on purpose: DAG files import it at parse time.
"""

from __future__ import annotations

from typing import Any

from taxiflow.config import BOROUGHS, FIRST_MONTH, MONTH_PATTERN, SOURCE_NAMES

# Output stems: no dots or slashes (cannot leave outputs/), and not the weekly summaries' prefix.
RESERVED_NAME_PREFIX = "trips_by_week_"
NAME_PATTERN = rf"^(?!{RESERVED_NAME_PREFIX})[A-Za-z0-9][A-Za-z0-9_-]{{0,79}}$"
DATE_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"

# The range the form opens with: fixed strings, never today(), so parsing is stable.
DEFAULT_START = "2024-01-01"
DEFAULT_END = "2024-02-01"


def report_param_schemas() -> dict[str, dict[str, Any]]:
    """Keyword arguments for ``airflow.sdk.Param``, one entry per report param."""
    return {
        "borough": {
            "default": "Manhattan",
            "type": "string",
            "enum": list(BOROUGHS),
            "title": "Borough",
            "description": "Count trips whose pickup zone is in this borough.",
        },
        "start_date": {
            "default": DEFAULT_START,
            "type": "string",
            "format": "date",
            "pattern": DATE_PATTERN,
            "title": "Start date (included)",
            "description": f"First pickup day counted, YYYY-MM-DD, on or after {FIRST_MONTH.isoformat()}.",
        },
        "end_date": {
            "default": DEFAULT_END,
            "type": "string",
            "format": "date",
            "pattern": DATE_PATTERN,
            "title": "End date (excluded)",
            "description": "First pickup day NOT counted, YYYY-MM-DD; must be after the start date.",
        },
        "sources": {
            "default": list(SOURCE_NAMES),
            "type": "array",
            "items": {"type": "string", "enum": list(SOURCE_NAMES)},
            "uniqueItems": True,
            "minItems": 1,
            "title": "Sources",
            "description": f"Trip sources to count, any of: {', '.join(SOURCE_NAMES)}.",
            "examples": list(SOURCE_NAMES),
        },
        "name": {
            "default": None,
            "type": ["null", "string"],
            "pattern": NAME_PATTERN,
            "title": "Output name (optional)",
            "description": (
                "File stem of the PNG and CSV in outputs/: 1-80 letters, digits, '-' and '_' only, "
                f"not starting with '{RESERVED_NAME_PREFIX}'. Empty: <borough>_<start>_<end>."
            ),
        },
    }


def month_param_schemas() -> dict[str, dict[str, Any]]:
    """Params of ``create_metrics``: which partition to aggregate."""
    return {
        "source": {
            "default": SOURCE_NAMES[0],
            "type": "string",
            "enum": list(SOURCE_NAMES),
            "title": "Source",
            "description": "Which trip source's partition to aggregate.",
        },
        "month": {
            "default": "2024-01",
            "type": "string",
            "pattern": MONTH_PATTERN,
            "title": "Month",
            "description": "The ingested month, YYYY-MM.",
        },
    }
