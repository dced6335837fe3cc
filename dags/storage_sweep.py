"""
### Storage sweep: remove what crashed writers left behind

Daily. A publish cleans up after every earlier writer of the same trips partition or report,
including one that crashed (a retried task removes its failed try's version). This DAG removes
what nobody publishes again (`taxiflow.reports.housekeeping`):

* trips partition versions that no `_summary.json` names, 6 hours old;
* report versions that no `manifest.json` names, 1 hour old;
* unfinished multipart uploads below the data root (a process killed, or the S3 server dying,
  mid-upload), 24 hours old.

A version a summary or manifest names is never touched, and a writer never publishes a version
past its deadline (2 hours for a partition, 10 minutes for a report), so none of these ages
can delete something a live writer is still going to publish. Rules and reasons:
docs/object-storage.md, "Cleaning up". Run it by hand with
`airflow dags trigger storage_sweep`, or outside Airflow with `python -m taxiflow.reports.housekeeping`.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import dag, task

from taxiflow.config import SWEEP_DAG_ID


@task(multiple_outputs=False)
def sweep_storage() -> dict:
    """Remove abandoned partition and report versions and stale multipart uploads; return what went."""
    from taxiflow.reports import housekeeping

    return housekeeping.sweep_storage()


@dag(
    dag_id=SWEEP_DAG_ID,
    schedule="@daily",
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=5)},
    tags=["taxiflow", "maintenance"],
    doc_md=__doc__,
)
def storage_sweep():
    sweep_storage()


storage_sweep()
