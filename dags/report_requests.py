"""
### Report requests: drop a JSON file, get a borough report

Watches `<data root>/requests/*.json` (see `data/requests/README.md`), a local folder or the
`requests/` prefix of the bucket when the data root is `s3://...`. Each file asks for one
`borough_report`:

```json
{"borough": "Staten Island", "start_date": "2024-01-01", "end_date": "2024-02-01"}
```

* A new file, or a file whose bytes changed, starts exactly one `borough_report` run with run id
  `request__<file stem>__<sha256[:16]>` and conf `name=<file stem>`: its report is published as
  `outputs/<file stem>/` (PNG and CSV, named by its `manifest.json`).
  The run id is the memory: the same bytes always ask for the
  same run id and Airflow refuses a second run with it (`skip_when_already_exists`), so an
  unchanged file never triggers twice, not after a restart, not after the metadata of this DAG's
  own runs is cleaned. To run an unchanged request again, change its bytes (or trigger the report
  by hand).
* A bad file gets `outputs/<file stem>.error.json` (field, value, allowed values, sha256,
  checked_at) with the message the trigger form, CLI and REST give for the same input; other files
  proceed. Request files are only read, never modified, moved or deleted.

Tasks: `scan_request_files` (validates every file, writes/removes error files, returns the requests
whose run does not exist yet) → `trigger_report` (a `TriggerDagRunOperator` mapped over them; a
duplicate run id is skipped, not failed).

**Schedule: event-driven, with a slow safety net.** An `AssetWatcher` runs
`taxiflow.components.triggers.RequestFilesTrigger` in the triggerer: it lists `requests/` twice a
second on disk, every 2 s in a bucket (`TAXIFLOW_REQUESTS_WATCH_SECONDS`; reading nothing but
names, sizes and times or ETags, never moving or deleting a file) and fires when a file is new or
changed, so a run starts a second or two after a file lands, holding no worker slot while it waits.
Its watermark lives in the asset's state store, so a file fires once. Events
that arrive together coalesce into one run; that is fine because every run scans the whole folder
and triggers every file whose run does not exist yet (ten files at once give ten reports). A
`DeltaTriggerTimetable` poll every `TAXIFLOW_REQUESTS_POLL_SECONDS` (default 600 s) still runs, in
case the triggerer was down when a file landed. `max_active_runs=1` keeps scans from overlapping;
an event during a scan queues one more run.

**Run ids cannot be pre-claimed, nor claimed twice.** Before it asks for a run the scan creates a
claim (`state/request-claims/`, see `taxiflow.doors.request_claims`) only if none exists
(`If-None-Match: *` in a bucket, `O_EXCL` on disk), so of two scans on two hosts exactly one asks
for the run; `borough_report` refuses a `request__` run without a matching claim, and a file whose
run id someone else already used gets an `outputs/<file stem>.error.json` saying so.

Scan now instead of waiting for the next poll:

```bash
airflow dags trigger report_requests
```
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import Asset, AssetOrTimeSchedule, AssetWatcher, DeltaTriggerTimetable, dag, task

from taxiflow.components.triggers import RequestFilesTrigger
from taxiflow.config import REPORT_DAG_ID, REQUESTS_DAG_ID, env_seconds

POLL_SECONDS = env_seconds("TAXIFLOW_REQUESTS_POLL_SECONDS", 600)
REQUEST_FILES = Asset(
    name="report_request_files",
    watchers=[AssetWatcher(name="request_files_watcher", trigger=RequestFilesTrigger())],
)


@task
def scan_request_files(ti=None, run_id=None) -> list[dict]:
    """Validate every request file; claim and return trigger kwargs for those whose run is new."""
    from taxiflow.doors.request_claims import claim_new_requests
    from taxiflow.doors.request_files import scan_requests

    def existing(run_ids: list[str]) -> set[str]:
        if not ti.get_dr_count(dag_id=REPORT_DAG_ID, run_ids=run_ids):
            return set()  # almost every scan: one call
        return {run_id for run_id in run_ids if ti.get_dr_count(dag_id=REPORT_DAG_ID, run_ids=[run_id])}

    scan = scan_requests()
    for bad in scan.rejected:
        print(f"Refused {bad.path.name}: {bad.error} -> {bad.error_file}")
    for removed in scan.removed_error_files:
        print(f"Removed stale {removed}")
    new, clashes = claim_new_requests(scan.valid, existing, claimer=f"{REQUESTS_DAG_ID}/{run_id}")
    for clash in clashes:
        print(f"Refused {clash.path.name}: {clash.error} -> {clash.error_file}")
    print(f"{len(scan.valid)} valid, {len(scan.rejected) + len(clashes)} refused, {len(new)} new: "
          f"{', '.join(r.run_id for r in new) or '-'}")
    return [{"trigger_run_id": r.run_id, "conf": r.conf} for r in new]


@dag(
    dag_id=REQUESTS_DAG_ID,
    schedule=AssetOrTimeSchedule(
        timetable=DeltaTriggerTimetable(timedelta(seconds=POLL_SECONDS)), assets=[REQUEST_FILES]
    ),
    start_date=pendulum.datetime(2023, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(minutes=10),
    default_args={"retries": 2, "retry_delay": timedelta(seconds=10)},
    tags=["taxiflow", "reports", "requests"],
    doc_md=__doc__,
)
def report_requests():
    TriggerDagRunOperator.partial(
        task_id="trigger_report",
        trigger_dag_id=REPORT_DAG_ID,
        logical_date=None,
        skip_when_already_exists=True,
        wait_for_completion=False,
        map_index_template="{{ task.trigger_run_id }}",
    ).expand_kwargs(scan_request_files())


report_requests()
