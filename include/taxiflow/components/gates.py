"""The gate between a report and the ingest runs it depends on.

``IngestGateSensor`` is an ``ExternalTaskSensor`` on ``ingest_taxi_trips`` that waits until, for
every month a report's date range touches, the ``trigger_create_metrics_<source>`` task of every
requested source succeeded (that task waits for ``create_metrics``, so its success means the
metrics are written). The months come from the report's params through ``execution_date_fn``:
a manually triggered report has no logical date of its own to match on.

It fails fast, naming the month and the source, when one of those ingests failed.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from airflow.providers.standard.sensors.external_task import ExternalTaskSensor
from airflow.sdk.exceptions import AirflowFailException

from taxiflow.config import INGEST_DAG_ID, SOURCE_NAMES, parse_month, trigger_metrics_task_id

FAILED_STATES = ("failed", "upstream_failed")


def requested_months_and_sources(params: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """The months (``YYYY-MM``) and sources a report's params ask for, validated."""
    from taxiflow.reports.request import ReportRequest

    request = ReportRequest.from_conf(dict(params))
    return list(request.months), list(request.sources)


def month_logical_date(month: str) -> datetime:
    """The logical date of the ingest run for ``month``: its first day, 00:00 UTC."""
    first = parse_month(month)
    return datetime(first.year, first.month, 1, tzinfo=UTC)


def ingest_logical_dates(logical_date: datetime, params: Mapping[str, Any], **_: Any) -> list[datetime]:
    """``execution_date_fn``: the ingest runs a report needs, from its params (not its own date)."""
    months, _sources = requested_months_and_sources(params)
    return [month_logical_date(month) for month in months]


class IngestGateSensor(ExternalTaskSensor):
    """Wait for the ingest (and metrics) of every month and source a report asks for."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("mode", "reschedule")
        super().__init__(
            external_dag_id=INGEST_DAG_ID,
            external_task_ids=[trigger_metrics_task_id(source) for source in SOURCE_NAMES],
            execution_date_fn=ingest_logical_dates,
            allowed_states=["success"],
            failed_states=list(FAILED_STATES),
            **kwargs,
        )

    def poke(self, context: Any) -> bool:
        months, sources = requested_months_and_sources(context["params"])
        # Only the requested sources gate the report: a source nobody asked for may never arrive.
        self.external_task_ids = [trigger_metrics_task_id(source) for source in sources]
        self._pairs = [(month, source) for month in months for source in sources]
        self._ti = context["ti"]
        if super().poke(context):
            self.log.info("Ingest done for %s", ", ".join(f"{s} {m}" for m, s in self._pairs))
            return True
        waiting = [
            f"{source} {month}" for month, source in self._pairs if not self._pair_in(month, source, ["success"])
        ]
        self.log.info("Still waiting for the ingest of: %s", ", ".join(waiting) or "(runs being updated)")
        return False

    def _pair_in(self, month: str, source: str, states: list[str]) -> bool:
        count = self._ti.get_ti_count(
            dag_id=INGEST_DAG_ID,
            task_ids=[trigger_metrics_task_id(source)],
            logical_dates=[month_logical_date(month)],
            states=states,
        )
        return bool(count)

    def _handle_failed_states(self, count_failed: float | int) -> None:
        if count_failed <= 0:
            return
        failed = [(m, s) for m, s in self._pairs if self._pair_in(m, s, list(FAILED_STATES))]
        described = "; ".join(
            f"{source} {month} (run with logical date {month_logical_date(month).date()}, "
            f"task {trigger_metrics_task_id(source)})"
            for month, source in failed
        )
        raise AirflowFailException(
            f"The ingest this report needs failed: {described or 'see ' + INGEST_DAG_ID}. "
            f"Fix the drop in landing/<source>/<month>/, clear that {INGEST_DAG_ID} run so it re-runs, "
            "then trigger this report again."
        )
