"""The gate between a report and the ingest runs it depends on.

``IngestGateSensor`` is an ``ExternalTaskSensor`` on ``ingest_taxi_trips``: it waits until, for
every month a report's date range touches, the ``trigger_create_metrics_<source>`` task of every
requested source succeeded in the ingest run for that month (that task waits for ``create_metrics``,
so its success means the metrics are written). The months come from the report's params through
``execution_date_fn``: a manually triggered report has no logical date of its own to match on.
Only the requested sources gate it: a source nobody asked for may never arrive. A source's branch
that was skipped (a month before TLC published that source) counts as done, with no trips.

``ExternalTaskSensor`` counts the tasks in the success and failed states; when the count says "not
yet", the gate looks at each month to say why, at every poke (what each state means is decided in
``taxiflow.reports.ingest_status``, which the report views use too):

* it fails at once, naming the month and source, when one of them failed (or its upstream did),
  unless that ingest failed on a refused re-drop over a good partition with metrics (a refusal
  record and ``_summary.json`` in storage, ``taxiflow.data.refusals``): reports then use that
  partition, and the gate's log says so ("green 2023-12 as ingested at ...; a re-drop at ... was
  refused: ..."); ``render_report`` writes the same note into the manifest and the Report tab;
* it logs what it still waits for, and says so when **no ingest run covers a month** (no run with
  that month's logical date exists yet: nothing will ever arrive unless someone starts one);
* it fails after ``uncovered_timeout`` seconds (``TAXIFLOW_REPORT_UNCOVERED_TIMEOUT``, default 30
  min, far shorter than the sensor's own timeout) when some month is still covered by no run.

In ``reschedule`` mode (the default) a waiting report holds no worker slot.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from airflow.providers.standard.exceptions import ExternalTaskFailedError
from airflow.providers.standard.sensors.external_task import ExternalTaskSensor
from airflow.sdk import BaseOperatorLink
from airflow.sdk.exceptions import AirflowFailException

from taxiflow.config import (
    INGEST_DAG_ID,
    Partition,
    env_seconds,
    ingest_sources,
    trigger_metrics_task_id,
)
from taxiflow.reports.ingest_status import (
    DONE_STATES,
    FAILED_STATES,
    USABLE,
    ingest_command,
    ingest_statuses,
    month_logical_date,
    status_task_ids,
)

UNCOVERED_TIMEOUT_ENV = "TAXIFLOW_REPORT_UNCOVERED_TIMEOUT"
# The gate's XCom: ``KeptPartition.to_json()`` of each kept partition it let the report use.
KEPT_XCOM_KEY = "kept_partitions"
DEFAULT_UNCOVERED_TIMEOUT = 30 * 60


def requested_months_and_sources(params: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """The months (``YYYY-MM``) and sources a report's params ask for, validated."""
    from taxiflow.reports.request import ReportRequest

    request = ReportRequest.from_conf(dict(params))
    return list(request.months), list(request.sources)


def ingest_logical_dates(logical_date: datetime, params: Mapping[str, Any], **_: Any) -> list[datetime]:
    """``execution_date_fn``: the ingest runs a report needs, from its params (not its own date)."""
    months, _sources = requested_months_and_sources(params)
    return [month_logical_date(month) for month in months]


class IngestRunsLink(BaseOperatorLink):
    """The gate's button in the UI: the ingest DAG's runs, where the months it waits for show.

    It replaces ``ExternalTaskSensor``'s own "External DAG" link, which opens the ingest run with
    the *report's* run id: a run that never exists, since one report waits on one run per month.
    """

    name = "Ingest runs"

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        from urllib.parse import urljoin

        from airflow.sdk.configuration import conf

        base_url = conf.get("api", "base_url", fallback="/")
        return urljoin(base_url.rstrip("/") + "/", f"dags/{INGEST_DAG_ID}/runs")


def _refusal(partition: Partition, run_id: str | None) -> Any:
    """The run's refusal of the drop, and the good partition it left in use (read from storage)."""
    from taxiflow.data.refusals import refusal_outcome

    return refusal_outcome(partition, run_id=run_id)


class IngestGateSensor(ExternalTaskSensor):
    """Wait for the ingest (and metrics) of every month and source a report asks for."""

    operator_extra_links = [IngestRunsLink()]  # ruff: ignore[mutable-class-default]  (the base class declares a list)

    def __init__(self, *, uncovered_timeout: float | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("mode", "reschedule")
        super().__init__(
            external_dag_id=INGEST_DAG_ID,
            # every source at parse time; each poke narrows them to the requested ones
            external_task_ids=[trigger_metrics_task_id(source) for source in ingest_sources()],
            execution_date_fn=ingest_logical_dates,
            allowed_states=list(DONE_STATES),
            failed_states=sorted(FAILED_STATES),
            deferrable=False,  # reschedule: a wait costs one short task start per poke, no triggerer
            **kwargs,
        )
        self.uncovered_timeout = (
            env_seconds(UNCOVERED_TIMEOUT_ENV, DEFAULT_UNCOVERED_TIMEOUT)
            if uncovered_timeout is None
            else uncovered_timeout
        )

    def poke(self, context: Any) -> bool:
        """True once every requested (month, source) ingest succeeded; fails fast on a failed one."""
        months, sources = requested_months_and_sources(context["params"])
        self.external_task_ids = [trigger_metrics_task_id(source) for source in sources]
        try:
            done = super().poke(context)
        except ExternalTaskFailedError:
            done = False  # the look-up below names the month and source
        # The counts said "not yet": look at each month to say why (and to see an ingest that
        # finished between the two looks, rather than wait a poke interval for it).
        kept: list[dict[str, Any]] = []
        if done or self._all_done(context, months, sources, kept):
            self.log.info("Ingest done for %s", ", ".join(f"{s} {m}" for m in months for s in sources))
            context["ti"].xcom_push(key=KEPT_XCOM_KEY, value=kept)
            return True
        return False

    def _all_done(self, context: Any, months: list[str], sources: list[str], kept: list[dict[str, Any]]) -> bool:
        """Whether every (month, source) is usable; fails on a failed ingest, logs what is missing."""
        ti = context["ti"]
        task_ids = status_task_ids(sources)
        task_states: dict[tuple[str, str], str | None] = {}
        covered: dict[str, str | None] = {}  # the months some ingest run covers (run state unknown here)
        run_ids: dict[str, str] = {}
        for month in months:
            logical_dates = [month_logical_date(month)]
            # One look-up per month: {run_id: {task_id: state}}, at most one run per logical date.
            runs = ti.get_task_states(dag_id=INGEST_DAG_ID, task_ids=task_ids, logical_dates=logical_dates)
            for run_id, states in runs.items():
                run_ids[month] = run_id
                task_states.update({(month, task_id): state for task_id, state in states.items()})
            if any(runs.values()) or ti.get_dr_count(dag_id=INGEST_DAG_ID, logical_dates=logical_dates):
                covered[month] = None
        statuses = ingest_statuses(months, sources, task_states, covered, refusal_lookup=_refusal, run_ids=run_ids)
        for status in statuses:
            if status.kept is not None:
                self.log.warning("Using a kept partition: %s", status.kept.note)
                kept.append(status.kept.to_json())
        failed = [f"{s.source} {s.month} (task {s.task_id}: {s.task_state}"
                  + (f"; the drop was refused: {s.refusal.reason}, and no earlier good partition with metrics "
                     "is there to use instead" if s.refusal else "") + ")"
                  for s in statuses if s.state == "failed"]
        uncovered = [month for month in months if month not in covered]
        waiting = [f"{s.source} {s.month} ({s.task_state or 'not started'})"
                   for s in statuses if s.state == "waiting" and s.covered]
        if failed:
            raise AirflowFailException(
                f"The ingest this report needs failed: {'; '.join(failed)}. Fix the drop in "
                f"landing/<source>/<month>/, clear that {INGEST_DAG_ID} run so it re-runs, then "
                "trigger this report again."
            )
        if uncovered:
            self._check_uncovered(context, uncovered)
        if waiting:
            self.log.info("Still waiting for the ingest of: %s", ", ".join(waiting))
        return not uncovered and all(status.state in USABLE for status in statuses)

    def _check_uncovered(self, context: Any, uncovered: list[str]) -> None:
        """Log the months no ingest run covers; fail once they stayed so past ``uncovered_timeout``."""
        first_poke = context["ti"].get_first_reschedule_date(context)
        waited = (datetime.now(UTC) - first_poke).total_seconds() if first_poke else 0.0
        commands = "; ".join(ingest_command(month) for month in uncovered)
        if waited >= self.uncovered_timeout:
            raise AirflowFailException(
                f"No {INGEST_DAG_ID} run covers {', '.join(uncovered)} after {waited:.0f} s (the limit "
                f"for months no run covers is {self.uncovered_timeout:.0f} s, "
                f"{UNCOVERED_TIMEOUT_ENV}): nothing would ever arrive. Start the ingest ({commands}) "
                "or backfill those months, then trigger this report again."
            )
        self.log.warning(
            "No %s run covers %s: no run with that logical date exists, so this report would wait "
            "forever. Start one (%s) or backfill; this report gives up after %.0f s "
            "(waited %.0f s so far, %s).",
            INGEST_DAG_ID, ", ".join(uncovered), commands, self.uncovered_timeout, waited,
            UNCOVERED_TIMEOUT_ENV,
        )
