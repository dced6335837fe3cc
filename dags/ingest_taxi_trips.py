"""
### Ingest NYC taxi trips

For each month and each ingested source (`TAXIFLOW_INGEST_SOURCES`: `yellow`, `green` by default;
add `fhv` and `fhvhv` for the for-hire vehicles, or say `all`), waits for the source's drop in
`landing/<source>/<YYYY-MM>/`: at least one data file (`.parquet`, `.csv`, `.csv.gz`) **and** a
`_SUCCESS` marker, written last by whoever drops the files. Then:

`wait_for_<source>` → `copy_to_raw_<source>` → `process_<source>` → `trigger_create_metrics_<source>`

and, beside them, `name_run`: gives the run a note naming the month it ingests ("Ingests 2023-12
(December 2023): yellow, green"), since a backfill run is named after the moment the month ended
(`backfill__2024-01-01...`). Through Airflow's REST API with the connection `taxiflow_api`; skipped
without it (docs/lineage.md).

* **wait** is a sensor in `reschedule` mode: while it waits it holds no worker slot, so hundreds of
  waiting months cannot starve the tasks that do work (`TAXIFLOW_DROP_POKE_INTERVAL`,
  `TAXIFLOW_DROP_TIMEOUT` in seconds; default 60 s and 6 h). Drops still missing
  `TAXIFLOW_DROP_ALERT_AFTER` seconds after the run was queued (default 2 h) are announced through
  the connection `taxiflow_alerts` (a webhook; see docs/alerts.md).
  A drop file that is a symbolic link, or reached through a folder leading outside `landing/`,
  fails the source's branch at once, naming the file; nothing of it is read or copied.
* **copy** copies the drop into a new raw version (`raw/<source>/<YYYY-MM>/<version>/`, named in
  `_staged.json` once complete); the month's raw copy is not replaced yet.
* **process** validates the staged files (columns, readable, at most 1 % of rows outside the month)
  and only then publishes them as the month's raw copy together with a new version of the
  warehouse partition `warehouse/trips/source=<source>/month=<YYYY-MM>/`: its `_summary.json`,
  naming both versions, is written last (re-running replaces it, never duplicates; readers never
  see old and new mixed). A refused re-drop fails the task, saying that the last good raw copy and partition were
  kept, and is recorded (`warehouse/refusals/`): reports keep using a good partition that has its
  metrics, and say so (the run stays failed, for the operator). Trips that started in the month
  before or after (a few per TLC file) are stored too and count in the month they started, once;
  rows further away or that cannot be parsed are counted in the log and in `_summary.json`, not
  stored.
* **trigger** starts `create_metrics` for that source and month and waits (deferred, in the
  triggerer; `TAXIFLOW_METRICS_POKE_INTERVAL`, default 2 s) until it finishes, so its success
  means "metrics done", the adjacent months' included when this month's strays changed them:
  `borough_report` gates on it.

Every column-name era TLC has published since 2009 is read (yellow and green trips before 2016-07
carry coordinates, placed in their taxi zone on the way). A month before TLC published a source
(green before 2013-08, fhv before 2015-01, fhvhv before 2019-02) skips that source's branch at once.

Sources are independent: one that never arrives fails only its own branch, after its timeout.
Months are independent too: runs waiting for a drop hold no slot and cannot use up
`max_active_runs`, so another month's ingest or a cleared (re-ingest) run starts at once.

**Schedule.** `CronDataIntervalTimetable("0 0 1 * *")`: a run's logical date is the **first day of
the month it ingests** and it starts when that month is over. `catchup=False`; ingest history with a
backfill, or one month by hand (the logical date is required):

```bash
airflow backfill create --dag-id ingest_taxi_trips --from-date 2023-12-01 --to-date 2024-01-01
airflow dags trigger ingest_taxi_trips -l 2024-01-01T00:00:00+00:00
```

**Re-ingesting a month** after a new drop: clear that month's run (UI: *Clear*, or
`airflow tasks clear ingest_taxi_trips -s 2024-01-01 -e 2024-01-01 -y`).
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import CronDataIntervalTimetable, PokeReturnValue, dag, task
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from taxiflow.components import lineage
from taxiflow.components.alerts import late_drop_deadline
from taxiflow.config import (
    INGEST_DAG_ID,
    METRICS_DAG_ID,
    Partition,
    copy_task_id,
    env_seconds,
    ingest_sources,
    process_task_id,
    published_from,
    trigger_metrics_task_id,
    wait_settings,
    wait_task_id,
)


@task.sensor(mode="reschedule", **wait_settings("DROP", poke_interval=60, timeout=6 * 3600))
def wait_for_drop(source: str, logical_date=None, run_id=None, outlet_events=None, ti=None) -> PokeReturnValue:
    """True once the month's drop has a data file and its `_SUCCESS` marker (then its asset event)."""
    from taxiflow.data import landing, refusals

    try:
        partition = Partition.from_logical_date(source, logical_date)
    except ValueError as err:  # a run for no month cannot succeed on retry
        raise AirflowFailException(str(err)) from err
    if partition.month < published_from(source):  # "YYYY-MM" strings order as months
        raise AirflowSkipException(
            f"TLC publishes {source} trips from {published_from(source)} on: nothing to ingest for "
            f"{partition.month}"
        )
    try:
        drop = landing.list_drop(partition)  # one listing for readiness, the log line and the facts
    except landing.UnsafeDropError as err:  # a link stays a link: fail this source's branch now
        refusals.record_refusal(partition, str(err), [], new_drop=True, run_id=run_id)
        raise AirflowFailException(str(err)) from None
    print(drop.describe())
    if drop.ready:  # the facts hashed go to copy_to_raw, which then need not read the drop again (S3)
        facts = lineage.tagged_facts(drop.files)
        ti.xcom_push(lineage.DROP_FACTS_KEY, lineage.emit_drop(outlet_events, partition, facts))
    return PokeReturnValue(is_done=drop.ready, xcom_value=partition.month if drop.ready else None)


@task
def copy_to_raw(source: str, month: str, run_id=None, outlet_events=None, ti=None) -> list[str]:
    """Copy the drop into a new raw version (`raw/<source>/<month>/<version>/`); the month's raw copy stays as it is."""
    from taxiflow.data import landing, raw, refusals

    seen = ti.xcom_pull(task_ids=wait_task_id(source), key=lineage.DROP_FACTS_KEY) if ti else None
    try:
        copied = raw.copy_to_raw(Partition(source, month), seen=seen)
    except landing.UnsafeDropError as err:
        refusals.record_refusal(Partition(source, month), str(err), [], new_drop=True, run_id=run_id)
        raise AirflowFailException(str(err)) from None
    lineage.emit_raw(outlet_events, Partition(source, month), copied)
    return [path.name for path in copied]


@task
def name_run(run_id=None, logical_date=None) -> None:
    """Note on the run the month it ingests: its id names the moment that month ended."""
    from taxiflow.components import run_notes

    note = run_notes.ingest_run_note(logical_date, ingest_sources())
    if note is None:
        raise AirflowSkipException("this run names no month (wait_for_* says why it fails)")
    try:
        print(run_notes.name_ingest_run(INGEST_DAG_ID, run_id, note))
    except run_notes.NoApiConnection as err:
        raise AirflowSkipException(str(err)) from None


# One heavy normalisation per source at a time bounds memory; the summary is one XCom, not one per key.
@task(max_active_tis_per_dag=1, multiple_outputs=False)
def process(source: str, month: str, raw_files: list[str], run_id=None, outlet_events=None) -> dict:
    """Validate the staged drop; only if it passes, publish it with a new version of the warehouse partition.

    A refused drop is recorded (`warehouse/refusals/`): reports keep using the good partition.
    """
    from taxiflow.data import ingest

    try:
        summary = ingest.process_partition(Partition(source, month), run_id=run_id)
    except ingest.DropRefused as err:  # the same files fail the same way on retry
        raise AirflowFailException(str(err)) from None
    lineage.emit_partition(outlet_events, Partition(source, month), summary)
    return summary


@dag(
    dag_id=INGEST_DAG_ID,
    schedule=CronDataIntervalTimetable("0 0 1 * *", timezone="UTC"),
    start_date=pendulum.datetime(2009, 1, 1, tz="UTC"),
    catchup=False,
    # Waiting sensors hold no slot (reschedule), and no limit here may fill up with months that
    # wait: 256 is more than every month TLC has published since 2009. The heavy step is bounded
    # per task instead (process: one month per source at a time).
    max_active_runs=256,
    max_active_tasks=16,
    default_args={"retries": 2, "retry_delay": timedelta(seconds=10)},
    tags=["taxiflow", "ingest"],
    deadline=late_drop_deadline(ingest_sources()),  # missing drops announced long before the timeout
    doc_md=__doc__,
    # The create_metrics run id and conf come from the run's partition, derived in one place.
    user_defined_macros={"ingest_partition": Partition.from_logical_date},
)
def ingest_taxi_trips():
    name_run()
    for source in ingest_sources():
        month = wait_for_drop.override(task_id=wait_task_id(source), **lineage.drop_outlets(source))(source)
        raw_files = copy_to_raw.override(task_id=copy_task_id(source), **lineage.raw_lineage(source))(source, month)
        summary = process.override(task_id=process_task_id(source), **lineage.trips_lineage(source))(
            source, month, raw_files
        )
        summary >> TriggerDagRunOperator(
            task_id=trigger_metrics_task_id(source),
            trigger_dag_id=METRICS_DAG_ID,
            params={"source": source},
            trigger_run_id="{{ ingest_partition(params.source, logical_date).metrics_run_id }}",
            conf="{{ ingest_partition(params.source, logical_date).metrics_conf | tojson }}",
            logical_date=None,
            reset_dag_run=True,
            wait_for_completion=True,
            deferrable=True,
            # Each look is one small API call from the triggerer; every month of a backfill waits on
            # average half of it (benchmarks/bench_backfill.py, docs/benchmarks.md).
            poke_interval=env_seconds("TAXIFLOW_METRICS_POKE_INTERVAL", 2),
            execution_timeout=timedelta(hours=1),
            failed_states=["failed"],
        )


ingest_taxi_trips()
