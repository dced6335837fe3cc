"""Each ingest run says which month it ingests, beside its run id, in the UI.

An ``ingest_taxi_trips`` run's logical date is the first day of the month it ingests, but its run id
and its *Run After* are the moment the month ended: Airflow names backfill runs after ``run_after``
(``backfill__2024-01-01T00:00:00+00:00`` ingests December 2023), from ``DagRun.generate_run_id``,
which no timetable can change for a backfill. So when an ingest run starts, a scheduler listener
gives it a DAG run note, e.g. ``Ingests 2023-12 (December 2023): yellow, green``: the UI shows the
note in the run's header, marks the run in the grid, and ``/api/v2`` returns it (``note``).

A note someone already wrote is never replaced, and a cleared run keeps its note. The listener runs
in the scheduler (Airflow's listener interface, ``on_dag_run_running``); registered by
``plugins/taxiflow_run_notes.py``.
"""

from __future__ import annotations

import logging
from typing import Any

from airflow.listeners import hookimpl

from taxiflow.config import INGEST_DAG_ID, ingest_sources, month_of_logical_date, parse_month

log = logging.getLogger(__name__)


def ingest_run_note(logical_date: Any, sources: tuple[str, ...]) -> str | None:
    """``Ingests 2023-12 (December 2023): yellow, green``; None for a run that names no month."""
    try:
        month = month_of_logical_date(logical_date)
    except ValueError:
        return None  # the run fails on its own, saying why
    return f"Ingests {month} ({parse_month(month):%B %Y}): {', '.join(sources)}"


@hookimpl
def on_dag_run_running(dag_run: Any, msg: str) -> None:
    """Name the month on an ingest run that starts without a note."""
    if dag_run.dag_id != INGEST_DAG_ID or dag_run.note:
        return
    note = ingest_run_note(dag_run.logical_date, ingest_sources())
    if note:
        dag_run.note = note  # saved with the scheduler's own change of the run's state
        log.info("Run %s of %s: note %r", dag_run.run_id, dag_run.dag_id, note)
