"""
### Borough report: trips by hour of day and day of week

A stakeholder asks: *how many trips started in Manhattan, by hour of day and day of week, between
two dates?* Trigger this DAG with a borough and a date range `[start_date, end_date)` and get:

* `<name>.png`: a stacked bar chart, trips by hour of day (0-23), stacked by day of week;
* `<name>.csv`: the numbers behind it, `hour_of_day,day_of_week,num_trips` (all 24 × 7 cells);
* `outputs/<name>/manifest.json`: the request, run id and checksums. The PNG and CSV go under a
  fresh version prefix (`outputs/<name>/v-<time>-<token>/`) and the manifest that names them is
  written last, so readers always get one version's PNG and CSV together (on disk and in S3).

`borough`, `start_date` and `end_date` are required. `sources` says which trip families are
counted: `yellow`, `green` (the default: taxis only, as reports always counted), `fhv` (for-hire
vehicles dispatched by bases) and `fhvhv` (high-volume for-hire: Uber, Lyft, Via, Juno); a source
must be ingested by this deployment (`TAXIFLOW_INGEST_SOURCES`). The chart's subtitle says which
families it counts. `name` defaults to
`<borough>_<start>_<end>_<sources>`, e.g. `manhattan_2023-12-18_2024-01-08_yellow-green`; a name
already holding a *different* request's report is refused, never overwritten.

Tasks: `validate_request` (checks what the form cannot: start before end, nothing after the current
month, at most 1096 days; and refuses a `request__` run id that its request file did not start) →
`wait_for_ingest` (`IngestGateSensor`, an `ExternalTaskSensor` in reschedule mode: waits until
every month the range touches has been ingested, with metrics, for every requested source; fails at
once, naming the month and source, if that ingest failed; says so in its log when no ingest run
covers a month, and gives up on such a month after `TAXIFLOW_REPORT_UNCOVERED_TIMEOUT`, default
30 min; a month whose latest re-drop was refused counts as ingested when an earlier ingest left a
good partition with metrics: the report uses it and says so in its log, manifest and Report tab)
→ `render_report`.

Waiting reports do not delay ready ones: a waiting gate holds no worker slot between pokes, and
`max_active_runs=256` is a fuse, not a queue (`render_report` runs at most 4 at a time).

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

from taxiflow.components import lineage
from taxiflow.components.gates import KEPT_XCOM_KEY, IngestGateSensor
from taxiflow.config import REPORT_DAG_ID, ingest_sources, wait_settings
from taxiflow.reports.params import report_param_schemas


@task(multiple_outputs=False)  # one dict for the next task, not one XCom per key
def validate_request(params=None, run_id=None) -> dict:
    """Re-check what JSON schema cannot: start before end, not after this month, at most 1096 days,
    run id length; and that a ``request__`` run id was started by its request file."""
    from taxiflow.doors.request_claims import RequestRunRefused, check_request_run
    from taxiflow.reports.request import InvalidRequest, ReportRequest, check_limits
    from taxiflow.reports.run_ids import run_id_problem

    if run_id and run_id_problem(run_id):  # the CLI writes runs straight to the database: no door
        raise AirflowFailException(run_id_problem(run_id))

    try:
        request = check_limits(ReportRequest.from_conf(dict(params)))
        check_request_run(run_id, dict(params))
    except (InvalidRequest, RequestRunRefused) as err:  # bad input never gets better on retry
        raise AirflowFailException(str(err)) from err
    print(f"Report for {request.borough}, {request.start_date} to {request.end_date} (excluded), "
          f"sources {', '.join(request.sources)}, months {', '.join(request.months)}")
    return request.to_conf()


@task(multiple_outputs=False, max_active_tis_per_dag=4)  # bounds the drawing work, whatever number of reports wait
def render_report(request: dict, run_id=None, ti=None, outlet_events=None) -> dict:
    """Count the trips and publish a new version of `outputs/<name>/` (PNG + CSV, then the manifest)."""
    from taxiflow.data.storage import url
    from taxiflow.doors.request_files import request_file_owner
    from taxiflow.reports.render import render_report
    from taxiflow.reports.request import InvalidRequest, ReportRequest

    report = ReportRequest.from_conf(request)
    kept = ti.xcom_pull(task_ids="wait_for_ingest", key=KEPT_XCOM_KEY) or []
    for note in kept:
        print(f"Note: {note['note']}")
    try:
        outputs = render_report(report, run_id=run_id, owner=request_file_owner(run_id, report.name),
                                ingest_notes=kept)
    except InvalidRequest as err:  # the name belongs to another request: retrying cannot help
        raise AirflowFailException(str(err)) from err
    shown = {key: url(getattr(outputs, key)) for key in ("folder", "manifest", "png", "csv")}
    print(f"Published {shown['manifest']} -> version {outputs.version}: {outputs.png.name}, "
          f"{outputs.csv.name} ({outputs.total_trips} trips)")
    lineage.emit_report(outlet_events, request, outputs.manifest_document, report.months)
    return {**shown, "version": outputs.version, "total_trips": outputs.total_trips}


@dag(
    dag_id=REPORT_DAG_ID,
    schedule=None,
    start_date=pendulum.datetime(2009, 1, 1, tz="UTC"),
    catchup=False,
    # Waiting runs hold no slot (reschedule gate), so the limit only needs to exceed what can wait
    # at once; render_report's max_active_tis_per_dag bounds the work.
    max_active_runs=256,
    params={name: Param(**schema) for name, schema in report_param_schemas().items()},
    # A crash of the metadata database or of a component kills the task in flight, which then costs a
    # try (or two, when a retry lands while the database is still coming back: tests/drills/
    # test_sigkill.py). Every task is safe to run again; bad input fails at once, never retried.
    default_args={"retries": 3, "retry_delay": timedelta(seconds=10), "retry_exponential_backoff": True},
    tags=["taxiflow", "reports"],
    doc_md=__doc__,
)
def borough_report():
    request = validate_request()
    wait_for_ingest = IngestGateSensor(
        task_id="wait_for_ingest",
        **wait_settings("REPORT_WAIT", poke_interval=30, timeout=6 * 3600),
    )
    rendered = render_report.override(**lineage.report_lineage(ingest_sources()))(request)
    request >> wait_for_ingest >> rendered


borough_report()
