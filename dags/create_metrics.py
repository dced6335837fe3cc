"""
### Create metrics for one ingested partition

Triggered by `ingest_taxi_trips` (one run per source and month, conf `{"source", "month"}`);
`schedule=None`. Aggregates the trips that month counts by pickup date × hour × pickup borough
and zone (trips, passengers, distance, fare, tip, total) into `warehouse/metrics/hourly_zone/` and
`warehouse/metrics/hourly_borough/`, replacing the partition (idempotent per source and month):
`pick_source` runs the source's `build_metrics_<source>` task, whose success is an event on the
`<source>_metrics` asset (docs/lineage.md).
Then rebuilds the metrics of the month before and after if the strays they count changed (see
below), and refreshes the weekly summary of the source, `outputs/trips_by_week_<source>.csv`
(week, trips, passengers, total_amount, distance).

Trip counts are by **pickup date**: a trip filed in January's file that started on 31 December
counts on 31 December, in December's metrics, once (not if December's own file lists it too).
So ingesting January can change December's metrics: this run rebuilds them, and its success means
both are done. One `build_metrics` at a time (across hosts), so a month's last build saw every
partition published before it. `borough_report` reads these metrics, never the raw trips.

Re-compute a partition by hand:

```bash
airflow dags trigger create_metrics --conf '{"source": "green", "month": "2024-01"}'
```
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Param, dag, task
from airflow.sdk.exceptions import AirflowFailException

from taxiflow.components import lineage
from taxiflow.components.params import month_param_schemas
from taxiflow.config import METRICS_DAG_ID, Partition, ingest_sources


def build_task_id(source: str) -> str:
    return f"build_metrics_{source}"


@task.branch
def pick_source(params=None) -> str:
    """Run only the build task of the run's source (each source's task has that source's asset)."""
    if params["source"] not in ingest_sources():
        raise AirflowFailException(
            f"source {params['source']!r} is not ingested by this deployment (TAXIFLOW_INGEST_SOURCES lists "
            f"{', '.join(ingest_sources())}): it has no trips to aggregate"
        )
    return build_task_id(params["source"])


# One dict for the next task, not one XCom per key; one at a time across hosts (per source): a month's
# metrics read its neighbours' strays, and the last build of a month must have seen every partition.
@task(multiple_outputs=False, max_active_tis_per_dag=1)
def build_metrics(source: str, params=None, outlet_events=None) -> dict:
    """Replace this month's metrics, and its neighbours' if their strays changed (`taxiflow.data.metrics`)."""
    from taxiflow.data import metrics

    partition = Partition(source, params["month"])
    result = metrics.refresh_metrics(partition)
    lineage.emit_metrics(outlet_events, partition, result)
    return result


# One at a time across every host (a file lock holds on one host only): the last writer saw every partition.
@task(max_active_tis_per_dag=1, trigger_rule="none_failed_min_one_success")
def write_weekly_summary(params=None) -> str:
    """Recompute `outputs/trips_by_week_<source>.csv` from every `hourly_borough` partition of the source."""
    from taxiflow.data import metrics

    return str(metrics.write_weekly_summary(params["source"]))


@dag(
    dag_id=METRICS_DAG_ID,
    schedule=None,
    start_date=pendulum.datetime(2009, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=4,
    params={name: Param(**schema) for name, schema in month_param_schemas().items()},
    default_args={"retries": 2, "retry_delay": timedelta(seconds=30)},
    tags=["taxiflow", "metrics"],
    doc_md=__doc__,
)
def create_metrics():
    picked, weekly = pick_source(), write_weekly_summary()
    for source in ingest_sources():
        build = build_metrics.override(task_id=build_task_id(source), **lineage.metrics_lineage(source))(source)
        picked >> build >> weekly


create_metrics()
