"""Request files on live Airflow: drop JSON files in ``requests/``, get exactly one report run each.

The stack polls every 10 s (``TAXIFLOW_REQUESTS_POLL_SECONDS`` in conftest). No trips are ingested
here, so each report run waits in its ingest gate: the test checks the runs Airflow created and their
conf, not the reports themselves (tests/e2e/test_pipeline.py renders reports).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import urllib.parse
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


def polls_after(stack, run_after: str) -> int:
    """Finished ``report_requests`` runs scheduled after ``run_after`` (an ISO timestamp)."""
    query = urllib.parse.urlencode({"state": "success", "run_after_gt": run_after, "limit": 1})
    status, body = stack.api("GET", f"/api/v2/dags/{REQUESTS_DAG_ID}/dagRuns?{query}")
    assert status == 200, body
    return body["total_entries"]


def trigger_tasks(stack) -> dict[str, str]:
    """``rendered_map_index`` (the run id it asked for) -> state, over every poll's trigger_report."""
    # Every page: a long session polls hundreds of times, more than one page of 100 holds.
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
    return {ti["rendered_map_index"]: ti["state"] for ti in found if ti["map_index"] >= 0}


def wait_until(condition, timeout: float, what: str, stack, interval: float = 2):
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
    stack.wait_for_dags([REQUESTS_DAG_ID])

    # Picked up within a poll or two (10 s each), however long the DAG takes to be parsed first.
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

    # Two more polls, scheduled after the run was created, see the same bytes: still exactly one run.
    wait_until(lambda: polls_after(stack, runs[0]["run_after"]) >= 2, 60, "two more polls", stack)
    assert [run["dag_run_id"] for run in request_runs(stack, STEM)] == [first_id]
    assert trigger_tasks(stack) == {first_id: "success"}  # later polls did not even try again
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
