"""What a report waits for: the state of the ingest of each month and source it needs.

Worked out here once, for the two places that show it: the report's gate
(``taxiflow.components.gates``, which reads the ingest task states through the Task SDK, in a
worker) and the report views (``taxiflow.doors.report_views``, which read them from the metadata
database, in the api-server). Each reads the states its own way; what they mean is decided here.

The ingest of (month, source) is ``done`` once the ``trigger_create_metrics_<source>`` task
succeeded (or was skipped: a month before TLC published that source) in the ingest run whose logical
date is the month's first day (that task waits for ``create_metrics``, so its success means the
metrics are written); ``failed`` when that task failed or its upstream did; otherwise ``waiting``,
either on a run still going or on a month that **no** ingest run covers yet (``covered`` is False:
nothing will arrive unless someone starts one).

``kept``: the ingest failed because it refused a re-drop (``wait_for_<source>`` or ``copy_to_raw_<source>``:
an unsafe file; ``process_<source>``: a corrupt or misplaced one), but an earlier ingest
published a good partition with its metrics (``taxiflow.data.refusals.refusal_outcome``, read from
storage: the refusal record and ``_summary.json``). Reports use that partition, like a ``done`` one,
and say so with its note. A month never ingested successfully has no such partition: ``failed``.

No Airflow import: states are plain strings, as Airflow's enums print.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from taxiflow.config import (
    INGEST_DAG_ID,
    Partition,
    copy_task_id,
    parse_month,
    process_task_id,
    trigger_metrics_task_id,
    wait_task_id,
)
from taxiflow.data.refusals import KeptPartition, Refusal, shown

# (partition, the run id of its ingest run or None) -> (that run's refusal of its drop, if any; the
# partition kept in spite of it, if reports may use one): ``taxiflow.data.refusals.refusal_outcome``
RefusalLookup = Callable[[Partition, str | None], tuple[Refusal | None, KeptPartition | None]]
USABLE = ("done", "kept")  # the states a report may go ahead on

FAILED_STATES = frozenset({"failed", "upstream_failed"})
# skipped: the month is before TLC published that source, so there is nothing to wait for (no trips)
DONE_STATES = ("success", "skipped")  # a tuple: its order is the serialized gate's allowed_states
# The tasks of a source's branch that refuse a drop (and record why, ``taxiflow.data.refusals``).
REFUSING_TASKS = (wait_task_id, copy_task_id, process_task_id)


def status_task_ids(sources: Sequence[str]) -> list[str]:
    """The ingest tasks whose states ``ingest_statuses`` reads: the metrics trigger and the refusing tasks."""
    return [task(source) for source in sources for task in (trigger_metrics_task_id, *REFUSING_TASKS)]


def month_logical_date(month: str) -> datetime:
    """The logical date of the ingest run for ``month``: its first day, 00:00 UTC."""
    first = parse_month(month)
    return datetime(first.year, first.month, 1, tzinfo=UTC)


def ingest_command(month: str) -> str:
    """The command that starts the ingest run for ``month``."""
    return f"airflow dags trigger {INGEST_DAG_ID} -l {month_logical_date(month).isoformat()}"


@dataclass(frozen=True)
class IngestStatus:
    """The ingest of one (month, source) a report needs: ``done``, ``kept``, ``failed`` or ``waiting``."""

    month: str
    source: str
    state: str
    task_state: str | None  # of trigger_create_metrics_<source>; None: not started (or no run)
    covered: bool  # some ingest run exists for the month
    run_state: str | None = None  # that run's state, where the reader knows it
    kept: KeptPartition | None = None  # for ``kept``: the partition in use, and the refusal
    refusal: Refusal | None = None  # for ``failed``/``kept``: the drop the run refused, if that was why

    @property
    def task_id(self) -> str:
        return trigger_metrics_task_id(self.source)

    @property
    def detail(self) -> str:
        """Why, in a few words, as the report views show it."""
        if self.state == "done":
            return "ingested"
        if self.kept is not None:
            return self.kept.note
        if self.state == "failed" and self.refusal is not None:
            return (f"{INGEST_DAG_ID} run for {self.month} failed: its drop was refused at "
                    f"{shown(self.refusal.refused_at)}: {self.refusal.reason}; no earlier good partition "
                    "with metrics to use instead")
        if self.state == "failed":
            return f"{INGEST_DAG_ID} run for {self.month} failed"
        if not self.covered:
            return f"no {INGEST_DAG_ID} run for {self.month} yet"
        return (f"{INGEST_DAG_ID} run for {self.month} is {self.run_state or 'running'}; "
                f"waiting for landing/{self.source}/{self.month}/ or its processing")


def ingest_statuses(
    months: Sequence[str],
    sources: Sequence[str],
    task_states: Mapping[tuple[str, str], str | None],
    run_states: Mapping[str, str | None],
    refusal_lookup: RefusalLookup | None = None,
    run_ids: Mapping[str, str] | None = None,
) -> list[IngestStatus]:
    """The ingest state of every (month, source), month by month.

    :param task_states: ``{(month, task_id): state}`` of the tasks ``status_task_ids`` names.
    :param run_states: ``{month: run state or None}`` for each month an ingest run covers.
    :param refusal_lookup: asked, for a failed ingest whose refusing task failed, whether it
        refused the drop and a good partition is kept (``taxiflow.data.refusals.refusal_outcome``);
        None: never.
    :param run_ids: ``{month: run id}`` of the ingest runs, where the reader knows them.
    """
    result = []
    for month in months:
        for source in sources:
            task_state = task_states.get((month, trigger_metrics_task_id(source)))
            kept = refusal = None
            if task_state in DONE_STATES:
                state = "done"
            elif task_state in FAILED_STATES:
                state = "failed"
                refused = any(task_states.get((month, task(source))) == "failed" for task in REFUSING_TASKS)
                if refusal_lookup is not None and refused:
                    refusal, kept = refusal_lookup(Partition(source, month), (run_ids or {}).get(month))
                    state = "kept" if kept is not None else "failed"
            else:
                state = "waiting"
            result.append(IngestStatus(month, source, state, task_state, month in run_states,
                                       run_states.get(month), kept, refusal))
    return result
