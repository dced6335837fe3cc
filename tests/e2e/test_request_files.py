"""Request files on live Airflow: drop JSON files in ``requests/``, get exactly one report run each.

The folder is watched by the ``AssetWatcher`` alone: conftest sets the safety-net poll to an hour.
No trips are ingested here, so each report run waits in its ingest gate: the test checks the runs
Airflow created and their conf, not the reports themselves (test_report_views.py renders one from
a request file).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import pytest

from taxiflow.config import REPORT_DAG_ID, REQUESTS_DAG_ID

pytestmark = pytest.mark.e2e

STEM = "e2e-bronx-march"
REQUEST = {"borough": "Bronx", "start_date": "2015-03-01", "end_date": "2015-04-01", "sources": ["yellow"]}
CHANGED = {**REQUEST, "end_date": "2015-03-15"}
BAD = {"borough": "Narnia", "start_date": "2015-03-01", "end_date": "2015-04-01"}


def expected_run_id(path: Path) -> str:
    return f"request__{path.stem}__{hashlib.sha256(path.read_bytes()).hexdigest()[:16]}"


def request_runs(stack, stem: str) -> list[dict]:
    status, body = stack.api("GET", f"/api/v2/dags/{REPORT_DAG_ID}/dagRuns?limit=100&order_by=run_after")
    assert status == 200, body
    return [run for run in body["dag_runs"] if run["dag_run_id"].startswith(f"request__{stem}__")]


def scan_now(stack, run_id: str) -> None:
    """``airflow dags trigger report_requests`` (the README's "scan now"), until that scan is done."""
    stack.airflow("dags", "trigger", REQUESTS_DAG_ID, "-r", run_id)
    assert stack.wait_for_run(REQUESTS_DAG_ID, run_id, timeout=120)["state"] == "success"


def trigger_tasks(stack, stem: str = STEM) -> dict[str, str]:
    """``rendered_map_index`` (the run id it asked for) -> state, over every scan's trigger_report for ``stem``."""
    # Every page: a long session scans many times, more than one page of 100 holds.
    found: list[dict] = []
    while True:
        path = (f"/api/v2/dags/{REQUESTS_DAG_ID}/dagRuns/~/taskInstances?task_id=trigger_report"
                f"&limit=100&offset={len(found)}")
        status, body = stack.api("GET", path)
        assert status == 200, body
        found += body["task_instances"]
        if not body["task_instances"] or len(found) >= body["total_entries"]:
            break
    # A poll with nothing new expands to no task at all (one skipped placeholder, map_index -1).
    return {ti["rendered_map_index"]: ti["state"] for ti in found
            if ti["map_index"] >= 0 and ti["rendered_map_index"].startswith(f"request__{stem}__")}


def wait_until(condition, timeout: float, what: str, stack, interval: float = 1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"{what} not within {timeout}s\n{stack.tail_logs('scheduler', lines=30)}")


def fingerprint(path: Path) -> tuple[bytes, int]:
    return path.read_bytes(), os.stat(path).st_mtime_ns


def test_request_files_trigger_one_report_run_per_content(airflow_stack):
    stack = airflow_stack
    requests_dir = stack.data_dir / "requests"
    outputs = stack.data_dir / "outputs"
    requests_dir.mkdir(exist_ok=True)
    good = requests_dir / f"{STEM}.json"
    bad = requests_dir / "e2e-narnia.json"
    good.write_text(json.dumps(REQUEST, indent=2))
    bad.write_text(json.dumps(BAD))
    before = {good: fingerprint(good), bad: fingerprint(bad)}
    first_id = expected_run_id(good)
    stack.wait_until_healthy([REQUESTS_DAG_ID])

    # Picked up by the watcher (no poll runs in this deployment), however long parsing takes first.
    runs = wait_until(lambda: request_runs(stack, STEM), 90, "a borough_report run for the request", stack)
    assert [run["dag_run_id"] for run in runs] == [first_id]
    assert runs[0]["conf"]["name"] == STEM
    assert runs[0]["conf"]["borough"] == "Bronx" and runs[0]["conf"]["sources"] == ["yellow"]
    assert runs[0]["logical_date"] is None

    error_file = outputs / "e2e-narnia.error.json"
    wait_until(error_file.exists, 30, "the error file of the bad request", stack)
    error = json.loads(error_file.read_text())
    assert error["field"] == "borough" and "'Narnia' is not one of" in error["error"]
    assert error["sha256"] == hashlib.sha256(bad.read_bytes()).hexdigest()
    assert request_runs(stack, "e2e-narnia") == []

    # Two more scans see the same bytes: still exactly one run.
    scan_now(stack, "rescan-1")
    scan_now(stack, "rescan-2")
    assert [run["dag_run_id"] for run in request_runs(stack, STEM)] == [first_id]
    assert trigger_tasks(stack) == {first_id: "success"}  # later scans did not even try again
    assert {path: fingerprint(path) for path in before} == before

    # New content: exactly one more run, with a new id.
    good.write_text(json.dumps(CHANGED, indent=2))
    changed = fingerprint(good)
    second_id = expected_run_id(good)
    assert second_id != first_id
    runs = wait_until(lambda: len(request_runs(stack, STEM)) >= 2 and request_runs(stack, STEM), 60,
                      "a second run for the changed request", stack)
    assert sorted(run["dag_run_id"] for run in runs) == sorted([first_id, second_id])
    second = next(run for run in runs if run["dag_run_id"] == second_id)
    assert second["conf"]["end_date"] == "2015-03-15" and second["conf"]["name"] == STEM

    assert trigger_tasks(stack) == {first_id: "success", second_id: "success"}

    assert fingerprint(good) == changed
    assert fingerprint(bad) == before[bad]


def test_ten_request_files_at_once_give_ten_runs(airflow_stack):
    stack = airflow_stack
    requests_dir = stack.data_dir / "requests"
    requests_dir.mkdir(exist_ok=True)
    files = []
    for day in range(1, 11):
        path = requests_dir / f"e2e-burst-{day:02d}.json"
        path.write_text(json.dumps({**REQUEST, "start_date": f"2015-03-{day:02d}", "end_date": "2015-03-20"}))
        files.append(path)
    before = {path: fingerprint(path) for path in files}
    wanted = {expected_run_id(path) for path in files}

    def created() -> set[str]:
        _, body = stack.api("GET", f"/api/v2/dags/{REPORT_DAG_ID}/dagRuns?limit=200")
        return {run["dag_run_id"] for run in body["dag_runs"]} & wanted

    wait_until(lambda: created() == wanted, 120, "ten borough_report runs for ten files", stack)
    assert {path: fingerprint(path) for path in files} == before  # never moved, changed or deleted


def test_a_pre_claimed_request_run_id_is_refused_and_reported(airflow_stack):
    stack = airflow_stack
    requests_dir = stack.data_dir / "requests"
    requests_dir.mkdir(exist_ok=True)
    content = json.dumps({"borough": "Queens", "start_date": "2015-04-01", "end_date": "2015-04-08"})
    path = requests_dir / "e2e-claimed.json"
    run_id = f"request__e2e-claimed__{hashlib.sha256(content.encode()).hexdigest()[:16]}"
    # Someone who can trigger runs takes the id first, asking for something else under the file's name.
    other = {"borough": "Manhattan", "start_date": "2015-04-01", "end_date": "2015-05-01", "name": "e2e-claimed"}
    body = {"logical_date": None, "dag_run_id": run_id, "conf": other}
    retried = False
    for _ in range(3):  # SQLite under load can lose a write race (500, rolled back): ask again
        status, answer = stack.api("POST", f"/api/v2/dags/{REPORT_DAG_ID}/dagRuns", body)
        if status != 500:
            break
        retried = True
        time.sleep(2)
    assert status == 200 or (retried and status == 409), answer
    path.write_text(content)

    error_file = stack.data_dir / "outputs" / "e2e-claimed.error.json"
    wait_until(error_file.exists, 60, "the clash's error file", stack)
    error = json.loads(error_file.read_text())
    assert error["field"] == "run_id" and error["value"] == run_id
    assert "this request file did not start it" in error["error"] and "Edit the file" in error["error"]
    assert error["sha256"] == hashlib.sha256(content.encode()).hexdigest()

    # The pre-claimed run renders nothing: it fails at once, saying why.
    run = stack.wait_for_run(REPORT_DAG_ID, run_id, timeout=120)
    assert run["state"] == "failed"
    assert stack.task_states(REPORT_DAG_ID, run_id)["validate_request"] == "failed"
    assert not (stack.data_dir / "outputs" / "e2e-claimed").exists()
    assert path.read_text() == content

    # Editing the file gives a new run id, which the file's door claims and starts.
    path.write_text(content + "\n")
    new_id = expected_run_id(path)
    wait_until(lambda: [r for r in request_runs(stack, "e2e-claimed") if r["dag_run_id"] == new_id], 60,
               "a run for the edited file", stack)
    wait_until(lambda: not error_file.exists(), 30, "the stale clash error file removed", stack)
