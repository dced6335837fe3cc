"""Drills on the distributed engine: a worker killed mid-ingest, scheduler and Postgres restarted
mid-run, `down` + `up`. Each ends with every run finished and numbers equal to a clean run's.

A killed worker's task is failed after ``[scheduler] task_instance_heartbeat_timeout`` (30 s in
docker-compose.yaml) and retried on the other worker; Celery's late acks keep the message of the
dead worker from being lost meanwhile (see the compose file's comments).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
from datetime import UTC, datetime

import pandas as pd
import pytest

from taxiflow.config import INGEST_DAG_ID, METRICS_DAG_ID, REPORT_DAG_ID, DataPaths, Partition
from taxiflow.data.ingest import read_summary
from tests.compose.fixtures import WORKERS
from tests.compose.test_deployment import PICKUP, assert_report

pytestmark = [pytest.mark.compose, pytest.mark.e2e, pytest.mark.drills]

BIG_MONTH = "2023-11"  # big enough that process_yellow is still running when the worker is killed
BIG_TRIPS = 1_500_000
TARGET_TASK = "process_yellow"


def drop_month(deployment, source: str, month: str, trips: int) -> None:
    from taxiflow.local.demo import generate_month

    generate_month(source, month, trips=trips, seed=29, paths=DataPaths(deployment.data_dir))
    deployment.chown_for_airflow(deployment.data_dir / "landing" / source)


def trigger_ingest(deployment, month: str, run_id: str) -> None:
    deployment.airflow("dags", "trigger", INGEST_DAG_ID, "-l", f"{month}-01T00:00:00+00:00", "-r", run_id)


def assert_month_equals_its_files(deployment, source: str, month: str) -> None:
    """The partition holds exactly the landing file's rows of its own month (what a clean run writes)."""
    landing = pd.read_parquet(deployment.data_dir / f"landing/{source}/{month}")
    summary = read_summary(Partition(source, month), DataPaths(deployment.data_dir))
    assert summary["rows_read"] == len(landing)
    pickups = landing[PICKUP[source]]
    first = pd.Timestamp(f"{month}-01")
    in_month = int(((pickups >= first) & (pickups < first + pd.offsets.MonthBegin(1))).sum())
    assert summary["rows_written"] == in_month - summary["rows_rejected"]
    written = pd.read_parquet(deployment.data_dir / f"warehouse/trips/source={source}/month={month}")
    assert len(written) == summary["rows_written"]


def test_killed_worker_task_runs_again_on_the_other_worker(deployment, figures):
    drop_month(deployment, "yellow", BIG_MONTH, BIG_TRIPS)
    drop_month(deployment, "green", BIG_MONTH, 2000)
    workers = deployment.hostnames("airflow-worker")
    assert len(workers) == WORKERS
    trigger_ingest(deployment, BIG_MONTH, "drill_kill")

    def running_target():
        ti = {t["task_id"]: t for t in deployment.task_instances(INGEST_DAG_ID, "drill_kill")}.get(TARGET_TASK)
        assert not ti or ti["state"] != "success", "the task ended before the drill could kill its worker"
        return ti if ti and ti["state"] == "running" and ti["hostname"] in workers else None

    ti = deployment.wait_for(running_target, f"{TARGET_TASK} running on a worker", timeout=300, interval=0.3)
    victim = workers[ti["hostname"]]
    subprocess.run(["docker", "kill", victim], check=True, capture_output=True)
    killed_at, killed_wall = time.monotonic(), datetime.now(UTC)

    run = deployment.wait_for_run(INGEST_DAG_ID, "drill_kill", timeout=600)
    figures["kill_to_finish"] = time.monotonic() - killed_at
    assert run["state"] == "success", deployment.task_instances(INGEST_DAG_ID, "drill_kill")
    tries = deployment.tries(INGEST_DAG_ID, "drill_kill", TARGET_TASK)
    assert len(tries) >= 2 and tries[0]["hostname"] == ti["hostname"]
    assert tries[-1]["state"] == "success" and tries[-1]["hostname"] in workers
    assert tries[-1]["hostname"] != ti["hostname"]

    def when(ti: dict, field: str) -> datetime:
        return datetime.fromisoformat(ti[field].replace("Z", "+00:00"))

    # kill -> the scheduler fails the silent try (heartbeat timeout) -> retry delay -> queued -> started
    figures["kill_to_retry_start"] = (when(tries[-1], "start_date") - killed_wall).total_seconds()
    figures["kill_to_try_failed"] = (when(tries[0], "end_date") - killed_wall).total_seconds()
    failed, queued = when(tries[0], "end_date"), when(tries[-1], "queued_when")
    figures["try_failed_to_retry_queued"] = (queued - failed).total_seconds()
    figures["retry_queued_to_start"] = (when(tries[-1], "start_date") - queued).total_seconds()
    assert_month_equals_its_files(deployment, "yellow", BIG_MONTH)

    conf = {"borough": "Manhattan", "start_date": "2023-11-01", "end_date": "2023-12-01", "name": "drill_kill"}
    deployment.airflow("dags", "trigger", REPORT_DAG_ID, "--conf", json.dumps(conf), "-r", "drill_kill")
    assert_report(deployment, "drill_kill", "drill_kill", "Manhattan", "2023-11-01", "2023-12-01", months=(BIG_MONTH,))
    subprocess.run(["docker", "start", victim], check=True, capture_output=True)  # the operator restarts it


def test_scheduler_restart_mid_run_recovers_without_a_hand(deployment, figures):
    drop_month(deployment, "yellow", "2023-10", 200_000)
    drop_month(deployment, "green", "2023-10", 2000)
    trigger_ingest(deployment, "2023-10", "drill_scheduler")
    deployment.wait_for(lambda: (deployment.run(INGEST_DAG_ID, "drill_scheduler") or {}).get("state") == "running",
                        "ingest of 2023-10 running", timeout=120, interval=0.5)
    start = time.monotonic()
    deployment.compose("restart", "airflow-scheduler")
    run = deployment.wait_for_run(INGEST_DAG_ID, "drill_scheduler", timeout=420)
    figures["scheduler_restart_to_finish"] = time.monotonic() - start
    assert run["state"] == "success", deployment.task_instances(INGEST_DAG_ID, "drill_scheduler")
    assert_month_equals_its_files(deployment, "yellow", "2023-10")


def test_postgres_restart_mid_run_recovers_without_a_hand(deployment, figures):
    conf = {"borough": "Brooklyn", "start_date": "2023-10-01", "end_date": "2023-12-01", "name": "drill_postgres"}
    status, run = deployment.api("POST", f"/api/v2/dags/{REPORT_DAG_ID}/dagRuns",
                                 {"dag_run_id": "drill_postgres", "logical_date": None, "conf": conf})
    assert status == 200, run
    start = time.monotonic()
    deployment.compose("restart", "postgres")
    assert_report(deployment, "drill_postgres", "drill_postgres", "Brooklyn", "2023-10-01", "2023-12-01",
                  months=("2023-10", BIG_MONTH))
    figures["postgres_restart_to_finish"] = time.monotonic() - start


def test_down_then_up_keeps_runs_and_outputs(deployment, figures):
    before = {dag_id: {r["dag_run_id"]: r["state"] for r in deployment.runs(dag_id)}
              for dag_id in (INGEST_DAG_ID, METRICS_DAG_ID, REPORT_DAG_ID)}
    outputs = {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
               for p in (deployment.data_dir / "outputs").glob("*/v-*/*.csv")}
    assert before[REPORT_DAG_ID] and outputs
    deployment.compose("down", "--timeout", "20")
    assert deployment.compose("ps", "-q").stdout.split() == []
    start = time.monotonic()
    deployment.compose("up", "-d", "--wait", "--scale", f"airflow-worker={WORKERS}")
    figures["up_again_to_healthy"] = time.monotonic() - start
    for dag_id, runs in before.items():
        after = {r["dag_run_id"]: r["state"] for r in deployment.runs(dag_id)}
        for run_id, state in runs.items():
            if state in ("success", "failed"):
                assert after.get(run_id) == state, (dag_id, run_id)
    assert {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in (deployment.data_dir / "outputs").glob("*/v-*/*.csv")} == outputs
