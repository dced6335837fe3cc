"""Drills: inputs that must not corrupt the numbers, at every door they can come through, on live Airflow.

One deployment for this module (its own waits: drops may wait 15 minutes, a month no ingest run
covers gives up after 20 s). What is checked is what a user sees: the CLI's exit code and message,
the HTTP status and body, the error file, the task's state and log, and the files on disk.

Months used here (no other module touches them): 2021-03 and 2021-08 both sources, ingested;
2021-04 a green drop that is a symbolic link; 2021-05 a yellow file of June's trips;
2020-01..2020-04 green only, yellow never comes (they wait for the whole module); 2015-06 no
ingest run at all. The drill table in docs/drills.md is this module, row by row.
"""

from __future__ import annotations

import json
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import requests

from taxiflow.config import INGEST_DAG_ID, REPORT_DAG_ID, SUCCESS_MARKER
from tests.support.live import FAST_WAITS, live_deployment

pytestmark = [pytest.mark.e2e, pytest.mark.drills]

SECRET = "drill-secret-line-0f1e"
READY = "2021-03"
REDROP = "2021-08"
WAITING = ("2020-01", "2020-02", "2020-03", "2020-04")
PICKUP = {"yellow": "tpep_pickup_datetime", "green": "lpep_pickup_datetime"}
DRILL_WAITS = {
    **FAST_WAITS,
    # Pokes every 10 s, not 3: under heavy load a 3 s reschedule can race the executor's event
    # for the previous poke, and Airflow then marks the waiting sensor failed (not taxiflow's doing).
    "TAXIFLOW_DROP_POKE_INTERVAL": "10",
    "TAXIFLOW_REPORT_WAIT_POKE_INTERVAL": "10",
    "TAXIFLOW_DROP_TIMEOUT": "900",
    "TAXIFLOW_REPORT_WAIT_TIMEOUT": "900",
    "TAXIFLOW_REPORT_UNCOVERED_TIMEOUT": "20",
}


# --- helpers ----------------------------------------------------------------------------------


def trips_file(path: Path, source: str, month: str, n: int = 240) -> Path:
    """A small file in TLC's parquet schema: n trips spread over ``month``, zones 4 and 7."""
    first = datetime.strptime(month, "%Y-%m")
    pickups = [first + timedelta(hours=2 * i + 1) for i in range(n)]
    pq.write_table(pa.table({
        "VendorID": pa.array([2] * n, pa.int32()),
        PICKUP[source]: pa.array(pickups, pa.timestamp("us")),
        "PULocationID": pa.array([4 if i % 3 else 7 for i in range(n)], pa.int32()),
        "DOLocationID": pa.array([236] * n, pa.int32()),
        "passenger_count": pa.array([1] * n, pa.int64()),
        "trip_distance": pa.array([1.5] * n, pa.float64()),
        "fare_amount": pa.array([10.0] * n, pa.float64()),
        "tip_amount": pa.array([2.0] * n, pa.float64()),
        "total_amount": pa.array([14.5] * n, pa.float64()),
    }), path)
    return path


def drop(stack, source: str, month: str, writer=None, name: str | None = None) -> Path:
    folder = stack.data_dir / "landing" / source / month
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / (name or f"{source}_tripdata_{month}.parquet")
    (writer or (lambda p: trips_file(p, source, month)))(target)
    (folder / SUCCESS_MARKER).touch()
    return folder


def ingest(stack, month: str, token: str | None = None) -> str:
    """Start the month's ingest run through /api/v2 (what the drills check is the landing folder's
    door, not how the run was started; an ``airflow dags trigger`` costs seconds of CPU, this call none)."""
    run_id = f"drill_{month}"
    status, body = stack.api("POST", f"/api/v2/dags/{INGEST_DAG_ID}/dagRuns",
                             {"dag_run_id": run_id, "logical_date": f"{month}-01T00:00:00Z"}, token=token)
    assert status == 200, body
    return run_id


def task_log(stack, dag_id: str, run_id: str, task_id: str) -> str:
    logs = stack.home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task_id}"
    return "\n".join(p.read_text(errors="replace") for p in sorted(logs.rglob("*.log")))


def all_logs(stack) -> str:
    return "\n".join(p.read_text(errors="replace") for p in (stack.home / "logs").rglob("*.log"))


def state(stack, dag_id: str, run_id: str) -> str:
    status, run = stack.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id, safe='')}")
    return run["state"] if status == 200 else f"http {status}"


def v2_trigger(stack, conf: dict, run_id: str | None = None) -> tuple[int, dict]:
    """POST a run; again if SQLite lost a write race (500 "Database error": nothing was created)."""
    for attempt in range(4):
        status, body = stack.api("POST", f"/api/v2/dags/{REPORT_DAG_ID}/dagRuns",
                                 {"logical_date": None, "dag_run_id": run_id, "conf": conf})
        if status != 500 or "Database error" not in str(body):
            break
        time.sleep(2 * (attempt + 1))
    return status, body


def v1_trigger(stack, conf: dict, run_id: str | None = None) -> requests.Response:
    body = {"conf": conf, **({"dag_run_id": run_id} if run_id else {})}
    return requests.post(f"{stack.base_url}/api/v1/dags/{REPORT_DAG_ID}/dagRuns", json=body,
                         auth=("admin", "admin"), timeout=60)


def cli_trigger(stack, conf: dict, run_id: str):
    return stack.airflow("dags", "trigger", REPORT_DAG_ID, "--conf", json.dumps(conf), "-r", run_id, check=False)


def request_file_error(stack, stem: str, conf: dict, timeout: float = 120) -> dict:
    requests_dir = stack.data_dir / "requests"
    requests_dir.mkdir(exist_ok=True)
    (requests_dir / f"{stem}.json").write_text(json.dumps(conf))
    error_file = stack.data_dir / "outputs" / f"{stem}.error.json"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if error_file.exists():
            return json.loads(error_file.read_text())
        time.sleep(0.5)
    raise AssertionError(f"no {error_file} after {timeout}s")


def report_runs(stack) -> set[str]:
    _status, body = stack.api("GET", f"/api/v2/dags/{REPORT_DAG_ID}/dagRuns?limit=200")
    return {run["dag_run_id"] for run in body["dag_runs"]}


# --- the deployment -------------------------------------------------------------------------------


def secret_file(stack) -> Path:
    """A private file outside the data root, that a drop links to."""
    return stack.home.parent / "outside" / "private.csv"


def make_drops(stack) -> None:
    """The drops, made before the processes start, so the first pokes find them."""
    secret_file(stack).parent.mkdir()
    secret_file(stack).write_text(f"{SECRET}\n{SECRET}\n")
    for month in (READY, REDROP, "2021-05"):
        for source in ("yellow", "green"):
            drop(stack, source, month)
    drop(stack, "yellow", "2021-05", lambda p: trips_file(p, "yellow", "2021-06"),
         name="yellow_tripdata_2021-06.parquet")
    (stack.data_dir / "landing/yellow/2021-05/yellow_tripdata_2021-05.parquet").unlink()
    drop(stack, "yellow", "2021-04")
    folder = stack.data_dir / "landing/green/2021-04"
    folder.mkdir(parents=True)
    (folder / "green_tripdata_2021-04.csv").symlink_to(secret_file(stack))
    (folder / SUCCESS_MARKER).touch()
    for month in WAITING:
        drop(stack, "green", month)


@pytest.fixture(scope="module")
def drills():
    with live_deployment("drills-inputs", before_start=make_drops, extra_env=DRILL_WAITS) as stack:
        # The months that wait first, then the rest: none of the later ones may queue behind them.
        token = stack.token()
        runs = {month: ingest(stack, month, token) for month in (*WAITING, READY, REDROP, "2021-04", "2021-05")}
        yield {"stack": stack, "runs": runs, "secret": secret_file(stack)}


# --- landing, month check, re-drops ---------------------------------------------------------------


def test_waiting_months_never_delay_other_months(drills):
    stack, runs = drills["stack"], drills["runs"]
    for month in (READY, REDROP):
        assert stack.wait_for_run(INGEST_DAG_ID, runs[month], timeout=420)["state"] == "success"
    for month in WAITING:  # four months waiting for yellow: more than the old limit of three runs
        assert state(stack, INGEST_DAG_ID, runs[month]) == "running"
        assert stack.task_states(INGEST_DAG_ID, runs[month])["wait_for_yellow"] not in ("success", "failed")


def test_a_symlinked_drop_fails_its_branch_naming_the_file(drills):
    stack, runs = drills["stack"], drills["runs"]
    run_id = runs["2021-04"]
    assert stack.wait_for_task(INGEST_DAG_ID, run_id, "wait_for_green", {"failed"}) == "failed"
    log = task_log(stack, INGEST_DAG_ID, run_id, "wait_for_green")
    assert "refused landing/green/2021-04/green_tripdata_2021-04.csv: it is a symbolic link" in log
    assert stack.wait_for_task(INGEST_DAG_ID, run_id, "process_yellow", {"success", "failed"}) == "success"
    assert not (stack.data_dir / "raw/green/2021-04").exists()
    assert not list((stack.data_dir / "raw/green").glob(".2021-04*"))
    assert SECRET not in all_logs(stack)


def test_a_month_in_the_wrong_folder_is_refused_with_counts(drills):
    stack, runs = drills["stack"], drills["runs"]
    run_id = runs["2021-05"]
    assert stack.wait_for_task(INGEST_DAG_ID, run_id, "process_yellow", {"failed", "success"}) == "failed"
    log = task_log(stack, INGEST_DAG_ID, run_id, "process_yellow")
    assert "yellow_tripdata_2021-06.parquet: 240 of its 240 rows (100.0%) have pickups outside 2021-05" in log
    assert "(240 in 2021-06)" in log and "wrong month" in log
    assert not (stack.data_dir / "warehouse/trips/source=yellow/month=2021-05").exists()
    assert stack.wait_for_task(INGEST_DAG_ID, run_id, "process_green", {"failed", "success"}) == "success"


def test_a_corrupt_redrop_keeps_raw_and_partition_and_the_run_says_so(drills):
    stack, runs = drills["stack"], drills["runs"]
    run_id = runs[REDROP]
    assert stack.wait_for_run(INGEST_DAG_ID, run_id, timeout=420)["state"] == "success"
    raw = stack.data_dir / f"raw/green/{REDROP}"
    partition = stack.data_dir / f"warehouse/trips/source=green/month={REDROP}"

    def files() -> dict:
        return {p: p.read_bytes() for folder in (raw, partition) for p in sorted(folder.rglob("*")) if p.is_file()}

    before = files()  # raw's version and _staged.json, the partition's _summary.json and the version it names
    landing_file = stack.data_dir / f"landing/green/{REDROP}/green_tripdata_{REDROP}.parquet"
    landing_file.write_bytes(SECRET.encode() * 50)  # a broken re-drop, same name

    # Re-ingest the green branch while four other months still wait for their yellow drop.
    # -t matches a substring of task ids in Airflow 3.3 (not a regex): the four green tasks.
    stack.airflow("tasks", "clear", INGEST_DAG_ID, "-s", f"{REDROP}-01", "-e", f"{REDROP}-01", "-t", "_green", "-y")
    assert stack.wait_for_task(INGEST_DAG_ID, run_id, "process_green", {"failed"}, timeout=300) == "failed"
    log = task_log(stack, INGEST_DAG_ID, run_id, "process_green")
    assert "the new drop is refused: cannot read" in log
    assert f"the last good raw copy (raw/green/{REDROP}/: green_tripdata_{REDROP}.parquet)" in log
    assert "are kept as they were" in log
    after = files()
    staged = raw / "_staged.json"  # names the refused copy now: a raw version no summary names
    assert {p: data for p, data in after.items() if p in before and p != staged} == {
        p: data for p, data in before.items() if p != staged}
    refused = [p for p in after if p not in before]
    assert [p.relative_to(raw).parts[1:] for p in refused] == [(f"green_tripdata_{REDROP}.parquet",)]
    assert refused[0].read_bytes() == SECRET.encode() * 50
    assert SECRET not in all_logs(stack)
    for month in WAITING:
        assert state(stack, INGEST_DAG_ID, runs[month]) == "running"


# --- report requests at every door ----------------------------------------------------------------

GOOD = {"borough": "Manhattan", "start_date": f"{READY}-01", "end_date": f"{READY}-15"}
# conf, the param named, what the CLI and /api/v2 say, what /api/v1 says, what the error file says.
REFUSED_BY_SCHEMA = {
    "no_borough": ({"start_date": "2021-03-01", "end_date": "2021-03-15"}, "borough",
                   "No value passed", "no value given and the param has no default", "borough: is required"),
    "no_end_date": ({"borough": "Queens", "start_date": "2021-03-01"}, "end_date",
                    "No value passed", "no value given and the param has no default", "end_date: is required"),
    "before_2009": ({**GOOD, "start_date": "2008-12-01"}, "start_date", "'2008-12-01' does not match",
                    "'2008-12-01' does not match", "'2008-12-01' does not match"),
}
FAILED_AT_ONCE = {
    "after_this_month": ({**GOOD, "start_date": "2099-01-01", "end_date": "2099-02-01"},
                         "start_date: '2099-01-01' is after the current month"),
    "range_too_long": ({**GOOD, "start_date": "2015-01-01", "end_date": "2019-01-01"},
                       "the range 2015-01-01 .. 2019-01-01 is 1461 days, more than the maximum of 1096"),
}


@pytest.mark.parametrize("case", list(REFUSED_BY_SCHEMA))
def test_required_fields_and_first_month_are_refused_at_every_door(drills, case):
    stack = drills["stack"]
    conf, field, message, v1_message, file_message = REFUSED_BY_SCHEMA[case]
    before = report_runs(stack)

    cli = cli_trigger(stack, conf, f"drill_cli_{case}")
    assert cli.returncode == 1 and f"Invalid input for param {field}" in cli.stdout + cli.stderr
    assert message in cli.stdout + cli.stderr
    status, body = v2_trigger(stack, conf)
    assert status == 400 and f"Invalid input for param {field}" in body["detail"] and message in body["detail"]
    v1 = v1_trigger(stack, conf)
    assert v1.status_code == 400 and f"Invalid input for param {field}" in v1.json()["detail"]
    assert v1_message in v1.json()["detail"]
    error = request_file_error(stack, f"drill-{case.replace('_', '-')}", conf)
    assert error["field"] == field and file_message in error["error"]
    assert report_runs(stack) == before  # no door created a run


@pytest.mark.parametrize("case", list(FAILED_AT_ONCE))
def test_limits_fail_the_first_task_or_are_refused_at_the_door(drills, case):
    stack = drills["stack"]
    conf, message = FAILED_AT_ONCE[case]
    cli = cli_trigger(stack, conf, f"drill_cli_{case}")
    assert cli.returncode == 0, cli.stderr
    status, body = v2_trigger(stack, conf, f"drill_v2_{case}")
    assert status == 200, body
    for run_id in (f"drill_cli_{case}", f"drill_v2_{case}"):
        assert stack.wait_for_run(REPORT_DAG_ID, run_id, timeout=180)["state"] == "failed"
        assert stack.task_states(REPORT_DAG_ID, run_id)["validate_request"] == "failed"
        assert message in task_log(stack, REPORT_DAG_ID, run_id, "validate_request")
    v1 = v1_trigger(stack, conf, f"drill_v1_{case}")
    assert v1.status_code == 400 and message in v1.json()["detail"]
    assert f"drill_v1_{case}" not in report_runs(stack)
    error = request_file_error(stack, f"drill-{case.replace('_', '-')}", conf)
    assert message in error["error"]


# --- no blocking, uncovered months, outputs -------------------------------------------------------


def test_ten_waiting_reports_do_not_delay_a_ready_one(drills):
    stack, runs = drills["stack"], drills["runs"]
    assert stack.wait_for_run(INGEST_DAG_ID, runs[READY], timeout=420)["state"] == "success"
    waiting = []
    for i in range(10):
        month = WAITING[i % len(WAITING)]
        status, body = v2_trigger(stack, {"borough": "Bronx", "start_date": f"{month}-01",
                                          "end_date": f"{month}-10"}, f"drill_waiting_{i}")
        assert status == 200, body
        waiting.append(f"drill_waiting_{i}")
    for run_id in waiting:
        stack.wait_for_task(REPORT_DAG_ID, run_id, "wait_for_ingest", {"up_for_reschedule"}, timeout=240)

    status, body = v2_trigger(stack, GOOD, "drill_ready")
    assert status == 200, body
    assert stack.wait_for_run(REPORT_DAG_ID, "drill_ready", timeout=240)["state"] == "success"
    assert {state(stack, REPORT_DAG_ID, run_id) for run_id in waiting} == {"running"}
    log = task_log(stack, REPORT_DAG_ID, waiting[0], "wait_for_ingest")
    assert "Still waiting for the ingest of: yellow 2020-01 (not started)" in log


def test_a_report_on_a_month_no_ingest_covers_says_so_and_gives_up_sooner(drills):
    stack = drills["stack"]
    status, body = v2_trigger(stack, {"borough": "Queens", "start_date": "2015-06-01", "end_date": "2015-06-08"},
                              "drill_uncovered")
    assert status == 200, body
    run = stack.wait_for_run(REPORT_DAG_ID, "drill_uncovered", timeout=240)
    assert run["state"] == "failed"
    log = task_log(stack, REPORT_DAG_ID, "drill_uncovered", "wait_for_ingest")
    assert "No ingest_taxi_trips run covers 2015-06: no run with that logical date exists" in log
    assert "the limit for months no run covers is 20 s" in log
    assert "airflow dags trigger ingest_taxi_trips -l 2015-06-01T00:00:00+00:00" in log


def test_outputs_are_one_folder_per_report_and_clashes_are_refused(drills):
    stack, runs = drills["stack"], drills["runs"]
    assert stack.wait_for_run(INGEST_DAG_ID, runs[READY], timeout=420)["state"] == "success"
    outputs = stack.data_dir / "outputs"
    # Default names carry the sources: green-only and all-sources never share a file.
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda args: v2_trigger(stack, *args), [
            ({**GOOD, "sources": ["green"]}, "drill_default_green"), (GOOD, "drill_default_all"),
        ]))
    for run_id in ("drill_default_green", "drill_default_all"):
        assert stack.wait_for_run(REPORT_DAG_ID, run_id, timeout=240)["state"] == "success"
    green = json.loads((outputs / "manhattan_2021-03-01_2021-03-15_green" / "manifest.json").read_text())
    both = json.loads((outputs / "manhattan_2021-03-01_2021-03-15_yellow-green" / "manifest.json").read_text())
    assert (green["run_id"], both["run_id"]) == ("drill_default_green", "drill_default_all")
    assert 0 < green["total_trips"] < both["total_trips"]

    # An explicit name taken by another request: refused, the first report stays as it was.
    assert v2_trigger(stack, {**GOOD, "name": "drill-board"}, "drill_name_first")[0] == 200
    assert stack.wait_for_run(REPORT_DAG_ID, "drill_name_first", timeout=240)["state"] == "success"
    folder = outputs / "drill-board"
    before = {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    assert v2_trigger(stack, {**GOOD, "sources": ["yellow"], "name": "drill-board"}, "drill_name_clash")[0] == 200
    assert stack.wait_for_run(REPORT_DAG_ID, "drill_name_clash", timeout=240)["state"] == "failed"
    log = task_log(stack, REPORT_DAG_ID, "drill_name_clash", "render_report")
    assert "outputs/drill-board/ already holds the report for a different request" in log
    assert {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()} == before
    version = json.loads(before["manifest.json"])["version"]  # one version, and nothing of the refused publish
    assert sorted(before) == ["manifest.json", f"{version}/drill-board.csv", f"{version}/drill-board.png"]
