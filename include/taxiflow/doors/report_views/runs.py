"""What a ``borough_report`` run asked for and where it stands, read from Airflow's metadata DB.

Used by the report views in the api-server (which has the database); the request is re-validated
with ``ReportRequest.from_conf``, so a run that failed validation shows the very message its
``validate_request`` task failed with. "Waiting for" is read from the same ingest task states the
``wait_for_ingest`` gate reads, and means what it means there (``taxiflow.reports.ingest_status``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select

from taxiflow.config import INGEST_DAG_ID, REPORT_DAG_ID, REQUEST_SUFFIX, format_month
from taxiflow.data.refusals import refusal_outcome
from taxiflow.doors.request_files import request_file_stem
from taxiflow.reports.ingest_status import IngestStatus, ingest_statuses, month_logical_date, status_task_ids
from taxiflow.reports.request import InvalidRequest, ReportRequest


@dataclass
class ReportRun:
    """One ``borough_report`` run as the report views show it."""

    dag_id: str
    run_id: str
    state: str
    run_after: datetime | None
    start_date: datetime | None
    end_date: datetime | None
    conf: dict[str, Any]
    triggered_by: str | None
    triggering_user: str | None
    tasks: dict[str, str | None] = field(default_factory=dict)
    request: ReportRequest | None = None
    invalid: InvalidRequest | None = None
    ingest: list[IngestStatus] = field(default_factory=list)

    @property
    def rendered(self) -> bool:
        """True when the run's render task succeeded: only then are the outputs its own."""
        return self.tasks.get("render_report") == "success"

    @property
    def trigger_source(self) -> str:
        """Who or what asked: ``request file requests/x.json``, ``form (UI) by admin``, ..."""
        stem = request_file_stem(self.run_id)
        if stem is not None and self.triggered_by == "operator":
            return f"request file requests/{stem}{REQUEST_SUFFIX}"
        door = {
            "ui": "trigger form (UI)", "cli": "CLI", "rest_api": "REST API", "operator": "another DAG",
            "asset": "asset event", "timetable": "schedule", "backfill": "backfill", "test": "dag.test()",
        }.get(self.triggered_by or "", self.triggered_by or "unknown")
        return f"{door} by {self.triggering_user}" if self.triggering_user else door

    @property
    def waiting_for(self) -> list[IngestStatus]:
        return [item for item in self.ingest if item.state == "waiting"]

    @property
    def failed_ingest(self) -> list[IngestStatus]:
        return [item for item in self.ingest if item.state == "failed"]


def _enum_value(value: Any) -> str | None:
    return None if value is None else str(getattr(value, "value", value))


def read_ingest_states(
    session: Any, sources: Sequence[str], months: Sequence[str] | None = None
) -> tuple[dict[tuple[str, str], str | None], dict[str, str | None], dict[str, str]]:
    """What ``ingest_statuses`` reads, from the metadata database: ``(task_states, run_states, run_ids)``.

    For the ingest runs of ``months`` (their logical dates, ``month_logical_date``), or of every
    month an ingest run covers when ``months`` is None; ``status_task_ids(sources)``' states only.
    """
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance

    covered = (DagRun.logical_date.is_not(None) if months is None
               else DagRun.logical_date.in_([month_logical_date(month) for month in months]))
    rows = session.execute(
        select(DagRun.logical_date, DagRun.run_id, DagRun.state, TaskInstance.task_id, TaskInstance.state)
        .outerjoin(TaskInstance, (TaskInstance.dag_id == DagRun.dag_id) & (TaskInstance.run_id == DagRun.run_id)
                   & TaskInstance.task_id.in_(status_task_ids(sources)))
        .where(DagRun.dag_id == INGEST_DAG_ID, covered)
    ).all()
    run_states: dict[str, str | None] = {}
    run_ids: dict[str, str] = {}
    task_states: dict[tuple[str, str], str | None] = {}
    for logical_date, run_id, run_state, task_id, ti_state in rows:
        # A database without time zones (SQLite) gives back a naive datetime: it is UTC.
        month = format_month(logical_date.astimezone(UTC) if logical_date.tzinfo else logical_date)
        run_states[month] = _enum_value(run_state) or "queued"
        run_ids[month] = run_id
        if task_id:
            task_states[month, task_id] = _enum_value(ti_state)
    return task_states, run_states, run_ids


def ingest_status(session: Any, months: Sequence[str], sources: Sequence[str]) -> list[IngestStatus]:
    """The state of each (month, source) ingest a report needs, as the ingest gate sees it."""
    task_states, run_states, run_ids = read_ingest_states(session, sources, months)
    return ingest_statuses(months, sources, task_states, run_states,
                           refusal_lookup=lambda p, r: refusal_outcome(p, run_id=r), run_ids=run_ids)


def _from_row(session: Any, run: Any, with_ingest: bool) -> ReportRun:
    from airflow.models.taskinstance import TaskInstance

    tasks = dict(session.execute(
        select(TaskInstance.task_id, TaskInstance.state)
        .where(TaskInstance.dag_id == run.dag_id, TaskInstance.run_id == run.run_id)
    ).all())
    view = ReportRun(
        dag_id=run.dag_id, run_id=run.run_id, state=_enum_value(run.state) or "queued",
        run_after=run.run_after, start_date=run.start_date, end_date=run.end_date,
        conf=dict(run.conf or {}), triggered_by=_enum_value(run.triggered_by),
        triggering_user=run.triggering_user_name,
        tasks={task_id: _enum_value(state) for task_id, state in tasks.items()},
    )
    try:
        view.request = ReportRequest.from_conf(view.conf)
    except InvalidRequest as err:
        view.invalid = err
    if with_ingest and view.request is not None and not view.rendered:
        view.ingest = ingest_status(session, view.request.months, view.request.sources)
    return view


def get_report_run(session: Any, run_id: str, dag_id: str = REPORT_DAG_ID) -> ReportRun | None:
    """One run of the report DAG with its tasks, request and ingest status; ``None`` if unknown."""
    from airflow.models.dagrun import DagRun

    run = session.scalar(select(DagRun).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id))
    return None if run is None else _from_row(session, run, with_ingest=True)


def list_report_runs(
    session: Any, borough: str | None = None, page: int = 1, per_page: int = 20
) -> tuple[list[ReportRun], int]:
    """A page of report runs, newest first, optionally for one borough; and how many match in all.

    ``conf`` is JSON whose querying differs per database, so the borough filter reads the run ids
    and confs (two small columns) and pages in Python: cheap for the thousands of runs a
    deployment keeps between ``airflow db clean`` runs.
    """
    from airflow.models.dagrun import DagRun

    base = select(DagRun.id, DagRun.conf).where(DagRun.dag_id == REPORT_DAG_ID)
    order = (DagRun.run_after.desc(), DagRun.id.desc())
    if borough:
        ids = [row_id for row_id, conf in session.execute(base.order_by(*order)).all()
               if isinstance(conf, dict) and conf.get("borough") == borough]
        total = len(ids)
        page_ids = ids[(page - 1) * per_page: page * per_page]
    else:
        total = session.scalar(select(func.count()).select_from(DagRun).where(DagRun.dag_id == REPORT_DAG_ID)) or 0
        page_ids = list(session.scalars(
            select(DagRun.id).where(DagRun.dag_id == REPORT_DAG_ID).order_by(*order)
            .offset((page - 1) * per_page).limit(per_page)
        ))
    runs = {run.id: run for run in session.scalars(select(DagRun).where(DagRun.id.in_(page_ids)))} if page_ids else {}
    return [_from_row(session, runs[i], with_ingest=False) for i in page_ids if i in runs], total
