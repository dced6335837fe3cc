"""The whole pipeline on CeleryExecutor + PostgreSQL + Redis + FAB, the processes compose runs.

Ingest → create_metrics → reports by CLI, REST v2 (FAB token) and REST /api/v1 (basic auth), with
every task executed by a Celery worker.
"""

from __future__ import annotations

import io
import json

import pandas as pd
import pytest
import requests

from taxiflow.config import INGEST_DAG_ID, METRICS_DAG_ID, REPORT_DAG_ID

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def ingested(celery_stack):
    from taxiflow.config import DataPaths
    from taxiflow.demo.trips import generate_month

    paths = DataPaths(celery_stack.data_dir)
    for source, trips in (("yellow", 5000), ("green", 1500)):
        generate_month(source, "2024-01", trips=trips, seed=11, paths=paths)
    celery_stack.airflow("dags", "trigger", INGEST_DAG_ID, "-l", "2024-01-01T00:00:00+00:00", "-r", "prod_ingest")
    run = celery_stack.wait_for_run(INGEST_DAG_ID, "prod_ingest", timeout=420)
    assert run["state"] == "success", celery_stack.task_states(INGEST_DAG_ID, "prod_ingest")
    return celery_stack


def expected_total(stack, borough: str, start: str, end: str) -> int:
    zones = pd.read_csv(stack.data_dir / "reference/taxi_zone_lookup.csv", keep_default_na=False)
    total = 0
    for source, column in (("yellow", "tpep_pickup_datetime"), ("green", "lpep_pickup_datetime")):
        trips = pd.read_parquet(stack.data_dir / f"landing/{source}/2024-01").merge(
            zones, left_on="PULocationID", right_on="LocationID")
        total += int(((trips["Borough"] == borough) & (trips[column] >= start) & (trips[column] < end)).sum())
    return total


def assert_report(stack, run_id: str, name: str, borough: str, start: str, end: str) -> None:
    run = stack.wait_for_run(REPORT_DAG_ID, run_id, timeout=240)
    assert run["state"] == "success", stack.task_states(REPORT_DAG_ID, run_id)
    from taxiflow.config import DataPaths
    from taxiflow.reports.outputs import read_report

    published = read_report(name, DataPaths(stack.data_dir))  # through its manifest: PNG, CSV, one version
    assert published is not None and published.manifest["run_id"] == run_id
    report = pd.read_csv(io.BytesIO(published.csv))
    assert len(report) == 168
    assert report["num_trips"].sum() == expected_total(stack, borough, start, end) > 0
    assert len(published.png) > 10_000


def test_tasks_ran_on_celery_workers(ingested):
    """Every task instance that succeeded was executed by the Celery worker, as its own log says."""
    status, body = ingested.api("GET", f"/api/v2/dags/{INGEST_DAG_ID}/dagRuns/prod_ingest/taskInstances")
    assert status == 200
    succeeded = [ti for ti in body["task_instances"] if ti["state"] == "success"]
    assert succeeded
    # The worker logs "[celery task id] Executing workload in Celery: ExecuteTask(ti=TaskInstance(id=...".
    worker_log = (ingested.logs_dir / "celery-worker.log").read_text(errors="replace")
    executed = [line for line in worker_log.splitlines() if "Executing workload in Celery" in line]
    not_on_celery = [ti["task_id"] for ti in succeeded if not any(ti["id"] in line for line in executed)]
    assert not not_on_celery, f"not executed by the Celery worker: {not_on_celery}\n{worker_log[-3000:]}"
    assert all(ti["hostname"] for ti in succeeded)
    status, runs = ingested.api("GET", f"/api/v2/dags/{METRICS_DAG_ID}/dagRuns")
    assert sorted(r["state"] for r in runs["dag_runs"]) == ["success", "success"]


def test_report_by_cli(ingested):
    conf = {"borough": "Manhattan", "start_date": "2024-01-01", "end_date": "2024-02-01", "name": "prod_cli"}
    ingested.airflow("dags", "trigger", REPORT_DAG_ID, "--conf", json.dumps(conf), "-r", "prod_cli")
    assert_report(ingested, "prod_cli", "prod_cli", "Manhattan", "2024-01-01", "2024-02-01")


def test_report_by_rest_v2_with_a_fab_token(ingested):
    conf = {"borough": "Brooklyn", "start_date": "2024-01-08", "end_date": "2024-01-22", "name": "prod_v2"}
    status, run = ingested.api("POST", f"/api/v2/dags/{REPORT_DAG_ID}/dagRuns",
                               {"dag_run_id": "prod_v2", "logical_date": None, "conf": conf})
    assert status == 200, run
    assert_report(ingested, "prod_v2", "prod_v2", "Brooklyn", "2024-01-08", "2024-01-22")


def test_report_by_rest_v1_with_basic_auth(ingested):
    conf = {"borough": "Queens", "start_date": "2024-01-01", "end_date": "2024-01-15", "name": "prod_v1"}
    url = f"{ingested.base_url}/api/v1/dags/{REPORT_DAG_ID}/dagRuns"
    response = requests.post(url, auth=("admin", "admin"), json={"dag_run_id": "prod_v1", "conf": conf}, timeout=60)
    assert response.status_code == 200, response.text
    assert response.json()["conf"] == conf
    assert requests.post(url, auth=("admin", "wrong"), json={"conf": conf}, timeout=60).status_code == 401
    assert requests.post(url, auth=("viewer", "viewer"), json={"conf": conf}, timeout=60).status_code == 403
    assert_report(ingested, "prod_v1", "prod_v1", "Queens", "2024-01-01", "2024-01-15")


def run_healthcheck(stack, *args: str):
    """docker/healthcheck.py as docker-compose.yaml runs it, with the deployment's settings."""
    import subprocess
    import sys

    return subprocess.run([sys.executable, str(stack.project_dir / "docker" / "healthcheck.py"), *args],
                          env=stack.env(), capture_output=True, text=True, timeout=60, check=False)


def test_compose_healthchecks_see_the_live_components_without_airflow(celery_stack):
    """The compose file's checks for the triggerer, dag-processor and worker, against the real ones."""
    for args in (("job", "TriggererJob"), ("job", "DagProcessorJob"), ("worker",)):
        result = run_healthcheck(celery_stack, *args)
        assert result.returncode == 0, (args, result.stderr)
    # and they can say no: a heartbeat younger than 0 s does not exist
    stale = run_healthcheck(celery_stack, "job", "TriggererJob", "--max-age", "0")
    assert stale.returncode == 1 and "no running TriggererJob" in stale.stderr, stale.stderr
