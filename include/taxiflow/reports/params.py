"""JSON-schema definitions of the ``borough_report`` params, shared by the DAG and every other door.

The Airflow trigger form renders these (a dropdown for ``borough``, date pickers for the dates),
and Airflow validates conf against them before it creates a run, whether the conf came from the
UI, the CLI, REST v2, the /api/v1 plugin or a request file. What JSON schema cannot say (start
before end, nothing after the current month, at most ``MAX_RANGE_DAYS`` days) is re-checked by
``taxiflow.reports.request`` in the report's first task (and before any run exists at the /api/v1
and request-file doors).

``borough``, ``start_date`` and ``end_date`` have no default on purpose: Airflow then refuses a
conf without them at every door ("Invalid input for param borough: No value passed"), and the
trigger form marks them required (its fields are required when their type does not allow null).

Light on purpose: DAG files import it at parse time.
"""

from __future__ import annotations

from typing import Any

from taxiflow.config import BOROUGHS, DEFAULT_REPORT_SOURCES, FIRST_MONTH, SOURCE_NAMES, SOURCES

# Output stems: no dots or slashes (cannot leave outputs/), and not the weekly summaries' prefix.
RESERVED_NAME_PREFIX = "trips_by_week_"
NAME_PATTERN = rf"^(?!{RESERVED_NAME_PREFIX})[A-Za-z0-9][A-Za-z0-9_-]{{0,79}}$"
# YYYY-MM-DD with a year from 2009 (TLC's first records, ``config.FIRST_MONTH``) to 2999: the
# static half of the date limits; "not after the current month" moves, so the first task checks it.
DATE_PATTERN = r"^(2009|20[1-9][0-9]|2[1-9][0-9]{2})-[0-9]{2}-[0-9]{2}$"

# The longest range a report may span, end_date - start_date in days (three years). It bounds the
# months the ingest gate looks up at every poke (at most 37 months x the sources) and the report's
# query; a longer history is a few reports, or a query on the warehouse itself.
MAX_RANGE_DAYS = 1096


def families_counted(sources: tuple[str, ...] | list[str]) -> str:
    """Which trip families a report counts, in words: ``yellow taxi + green taxi (for-hire vehicles not counted)``."""
    labels = " + ".join(SOURCES[source].label.lower() for source in sources)
    missing = [name for name in SOURCE_NAMES if name not in sources]
    if not missing:
        return f"{labels} (every TLC trip family)"
    if set(missing) >= {"fhv", "fhvhv"}:
        return f"{labels} (for-hire vehicles, Uber and Lyft included, not counted)"
    return f"{labels} (not counted: {', '.join(SOURCES[name].label.lower() for name in missing)})"


def sources_help() -> str:
    """The form's help for ``sources``: which trip families exist and what the default counts."""
    families = "; ".join(f"{name}: {source.description}" for name, source in SOURCES.items())
    return (
        f"Trip families to count, any of {', '.join(SOURCE_NAMES)} ({families}). Default: "
        f"{', '.join(DEFAULT_REPORT_SOURCES)} (taxis only); add fhv and fhvhv to count for-hire "
        "vehicles, Uber and Lyft included."
    )


def report_param_schemas() -> dict[str, dict[str, Any]]:
    """Keyword arguments for ``airflow.sdk.Param``, one entry per report param."""
    return {
        "borough": {
            "type": "string",
            "enum": list(BOROUGHS),
            "title": "Borough",
            "description": "Count trips whose pickup zone is in this borough.",
        },
        "start_date": {
            "type": "string",
            "format": "date",
            "pattern": DATE_PATTERN,
            "title": "Start date (included)",
            "description": (
                f"First pickup day counted, YYYY-MM-DD, on or after {FIRST_MONTH.isoformat()} and "
                "not after the current month."
            ),
        },
        "end_date": {
            "type": "string",
            "format": "date",
            "pattern": DATE_PATTERN,
            "title": "End date (excluded)",
            "description": (
                "First pickup day NOT counted, YYYY-MM-DD: after the start date, at most "
                f"{MAX_RANGE_DAYS} days after it, and at most the first day of next month."
            ),
        },
        "sources": {
            "default": list(DEFAULT_REPORT_SOURCES),
            "type": "array",
            "items": {"type": "string", "enum": list(SOURCE_NAMES)},
            "uniqueItems": True,
            "minItems": 1,
            "title": "Sources (trip families counted)",
            "description": sources_help(),
            "examples": list(SOURCE_NAMES),
        },
        "name": {
            "default": None,
            "type": ["null", "string"],
            "pattern": NAME_PATTERN,
            "title": "Output name (optional)",
            "description": (
                "File stem of the PNG and CSV in outputs/: 1-80 letters, digits, '-' and '_' only, "
                f"not starting with '{RESERVED_NAME_PREFIX}'. Empty: <borough>_<start>_<end>_<sources>."
            ),
        },
    }
