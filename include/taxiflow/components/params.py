"""JSON-schema params of the ingest-side DAGs: which month (and source) ``create_metrics`` and
``download_tlc_trips`` work on, when not the run's own.

Keyword arguments for ``airflow.sdk.Param``, like the report's params (``taxiflow.reports.params``).
Light on purpose: DAG files import it at parse time.
"""

from __future__ import annotations

from typing import Any

from taxiflow.config import MONTH_PATTERN, SOURCE_NAMES


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


def download_param_schemas() -> dict[str, dict[str, Any]]:
    """Params of ``download_tlc_trips``: which month to fetch, when not the run's own."""
    return {
        "month": {
            "default": None,
            "type": ["null", "string"],
            "pattern": MONTH_PATTERN,
            "title": "Month",
            "description": "YYYY-MM to download; empty = the month of the run's logical date.",
        },
    }
