"""
### Download TLC trip records

Once a month, for each ingested source (`TAXIFLOW_INGEST_SOURCES`: yellow and green by default,
fhv and fhvhv too when listed): wait until NYC TLC publishes the month's trip file
(`<source>_tripdata_<YYYY-MM>.parquet`),
then download it into `landing/<source>/<YYYY-MM>/` and write `_SUCCESS` next to it. That marker
is what the `ingest_taxi_trips` DAG waits for. The zone table in `reference/` is refreshed on the
way when it is older than 30 days.

**What a run means.** The schedule is a monthly *data-interval* timetable: the run whose logical
date is `2024-01-01` covers January 2024 and downloads `*_tripdata_2024-01.parquet`. It is created
when January ends; TLC publishes about two months later, so `wait_for_publication_<source>`
re-checks (HTTP HEAD) every 6 hours, holding no worker slot, for up to 100 days.

**Where from.** The Airflow connection `nyc_tlc` holds the base URL and must be defined
(`AIRFLOW_CONN_NYC_TLC=https://d37ci6vzurychx.cloudfront.net` for TLC's public host, as compose sets
it); without it the tasks fail naming the connection.

**Paused until you opt in.** This is the one DAG that reaches outside the deployment, so it is
created paused (`is_paused_upon_creation=True`): a fresh or offline server makes no call to TLC.
Point the `nyc_tlc` connection where you want, then unpause it (UI toggle, or
`airflow dags unpause download_tlc_trips`). A run triggered while it is paused waits, queued.

**Trigger one month** (the logical date picks the month):

    airflow dags trigger download_tlc_trips -l 2024-01-01T00:00:00+00:00

or pass it as conf (a manual run without a logical date needs this):

    airflow dags trigger download_tlc_trips -c '{"month": "2024-01"}'

**Backfill** a range of months (one run per month, already-published months go straight through):

    airflow backfill create --dag-id download_tlc_trips --from-date 2023-01-01 --to-date 2023-12-01
"""

from __future__ import annotations

from datetime import timedelta
from functools import partial

# Named here, though only taxiflow.components uses it, so the dag-processor imports the HTTP provider
# (requests, aiohttp) once in its parent process instead of in every parse ([dag_processor]
# parsing_pre_import_modules pre-imports the airflow.* modules a DAG file names). Measured 2026-12-04
# with benchmarks/bench_parse.py: a parse of this file costs 0.028 s CPU with it, 0.164 s without
# (forked; 0.72x -> 4.28x the empty DAG), and 0.082 s -> 0.158 s as a live dag-processor records it.
import airflow.providers.http.sensors.http  # ruff: ignore[unused-import]
import pendulum
from airflow.sdk import CronDataIntervalTimetable, Param, dag

from taxiflow.components import lineage
from taxiflow.components.operators import TlcDownloadOperator
from taxiflow.components.params import download_param_schemas
from taxiflow.components.sensors import TlcPublishedSensor
from taxiflow.config import DOWNLOAD_DAG_ID, ingest_sources, month_of_logical_date

# conf "month" wins; otherwise the month of the run's logical date, worked out as the ingest DAG does.
MONTH = "{{ params.month or run_month(logical_date) }}"


@dag(
    dag_id=DOWNLOAD_DAG_ID,
    doc_md=__doc__,
    schedule=CronDataIntervalTimetable("0 0 1 * *", timezone="UTC"),
    start_date=pendulum.datetime(2009, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=3,
    # It calls TLC's public host: the operator opts in by unpausing it (see above).
    is_paused_upon_creation=True,
    tags=["taxiflow", "download", "tlc"],
    params={name: Param(**schema) for name, schema in download_param_schemas().items()},
    default_args={"retries": 3, "retry_delay": timedelta(minutes=10), "retry_exponential_backoff": True},
    user_defined_macros={"run_month": partial(month_of_logical_date, dag_id=DOWNLOAD_DAG_ID)},
)
def download_tlc_trips():
    for source in ingest_sources():
        published = TlcPublishedSensor(
            task_id=f"wait_for_publication_{source}",
            source=source,
            month=MONTH,
            poke_interval=timedelta(hours=6),
            timeout=timedelta(days=100),
        )
        download = TlcDownloadOperator(
            task_id=f"download_{source}",
            source=source,
            month=MONTH,
            execution_timeout=timedelta(hours=1),
            **lineage.drop_outlets(source),  # the same <source>_drop asset the ingest DAG reads
        )
        published >> download


download_tlc_trips()
