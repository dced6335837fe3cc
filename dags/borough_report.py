"""
### Borough report: trips by hour of day and day of week

A stakeholder asks: *how many trips started in Manhattan, by hour of day and day of week, between
two dates?* Trigger this DAG with a borough and a date range `[start_date, end_date)` and get:

* `outputs/<name>.png`: a stacked bar chart, trips by hour of day (0-23), stacked by day of week;
* `outputs/<name>.csv`: the numbers behind it, `hour_of_day,day_of_week,num_trips` (all 24 × 7 cells).

`name` defaults to `<borough>_<start>_<end>`, e.g. `manhattan_2023-12-18_2024-01-08`.

Tasks: `validate_request` (checks what the form cannot: start before end, sources; and refuses a
`request__` run id that its request file did not start) →
`wait_for_ingest` (an `ExternalTaskSensor` on `ingest_taxi_trips`, in reschedule mode: waits until
every month the range touches has been ingested, with metrics, for every requested source, and fails
at once, naming the month and source, if that ingest failed) → `render_report`.

Trigger it from the form (*Trigger* button), or:

```bash
airflow dags trigger borough_report \\
  --conf '{"borough": "Manhattan", "start_date": "2023-12-18", "end_date": "2024-01-08"}'
```
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Param, dag, task
from airflow.sdk.exceptions import AirflowFailException

from taxiflow.components.gates import IngestGateSensor
from taxiflow.config import REPORT_DAG_ID, wait_settings
from taxiflow.reports.params import report_param_schemas


@task(multiple_outputs=False)  # one dict for the next task, not one XCom per key
def validate_request(params=None, run_id=None) -> dict:
    """Re-check what JSON schema cannot: start before end, dates within TLC's history, run id length;
    and that a ``request__`` run id was started by its request file."""
    from taxiflow.doors.limits import run_id_problem
    from taxiflow.reports.request import InvalidRequest, ReportRequest
    from taxiflow.reports.request_claims import RequestRunRefused, check_request_run

    if run_id and run_id_problem(run_id):  # the CLI writes runs straight to the database: no door
        raise AirflowFailException(run_id_problem(run_id))

    try:
        request = ReportRequest.from_conf(dict(params))
        check_request_run(run_id, dict(params))
    except (InvalidRequest, RequestRunRefused) as err:  # bad input never gets better on retry
        raise AirflowFailException(str(err)) from err
    print(f"Report for {request.borough}, {request.start_date} to {request.end_date} (excluded), "
          f"sources {', '.join(request.sources)}, months {', '.join(request.months)}")
    return request.to_conf()


@task(multiple_outputs=False)
def render_report(request: dict) -> dict:
    """Write `outputs/<name>.png` and `.csv` from the `hourly_borough` metrics (`taxiflow.reports.render`)."""
    from taxiflow.reports.render import render_report
    from taxiflow.reports.request import ReportRequest

    outputs = render_report(ReportRequest.from_conf(request))
    print(f"Wrote {outputs.png} and {outputs.csv} ({outputs.total_trips} trips)")
    return {"png": str(outputs.png), "csv": str(outputs.csv), "total_trips": outputs.total_trips}


@dag(
    dag_id=REPORT_DAG_ID,
    schedule=None,
    start_date=pendulum.datetime(2009, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=8,
    params={name: Param(**schema) for name, schema in report_param_schemas().items()},
    default_args={"retries": 1, "retry_delay": timedelta(seconds=20)},
    tags=["taxiflow", "reports"],
    doc_md=__doc__,
)
def borough_report():
    request = validate_request()
    wait_for_ingest = IngestGateSensor(
        task_id="wait_for_ingest",
        **wait_settings("REPORT_WAIT", poke_interval=30, timeout=6 * 3600),
    )
    request >> wait_for_ingest >> render_report(request)


borough_report()
