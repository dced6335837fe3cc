"""Drills on the distributed engine with its data in the bucket: a worker killed mid-ingest,
scheduler and Postgres restarted mid-run, `down` + `up`. Each ends with every run finished and
numbers equal to the files'.

A killed worker's task is failed after ``[scheduler] task_instance_heartbeat_timeout`` (30 s in
docker-compose.yaml) and retried on the other worker; Celery's late acks keep the message of the
dead worker from being lost meanwhile (see the compose file's comments). The workers share no disk,
so the retry finds everything it needs in the bucket; a reader polling the bucket all along
(:class:`BucketWatch`) never sees a partial partition or a manifest naming a missing object.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from taxiflow.config import INGEST_DAG_ID, METRICS_DAG_ID, REPORT_DAG_ID, DataPaths, Partition
from tests.compose.bucket_watch import BucketWatch
from tests.compose.deployment import BUCKET_CONN_ID
from tests.compose.fixtures import WORKERS
from tests.compose.test_deployment import (
    PICKUP,
    assert_report,
    drop,
    process_log_is_in_the_bucket,
    real_file,
    report_conf,
)

pytestmark = [pytest.mark.compose, pytest.mark.e2e, pytest.mark.drills]

# generated: big enough that process_green is still running when its worker is killed; no month
# next to it is ingested, so no other file lists strays for it and its numbers are its file's alone
BIG_MONTH = "2023-06"
BIG_TRIPS = 1_500_000
TARGET_TASK = "process_green"
RESTART_MONTH = "2025-02"  # a real green month (TLC's 2025 schema)


@pytest.fixture(scope="module")
def big_month(tmp_path_factory) -> Path:
    from taxiflow.demo.trips import generate_month

    staging = DataPaths(tmp_path_factory.mktemp("drill-staging"))
    return generate_month("green", BIG_MONTH, trips=BIG_TRIPS, seed=29, paths=staging)


def trigger_ingest(deployment, month: str, run_id: str) -> None:
    deployment.airflow("dags", "trigger", INGEST_DAG_ID, "-l", f"{month}-01T00:00:00+00:00", "-r", run_id)


def assert_month_equals_its_file(bucket: DataPaths, month: str, file: Path) -> None:
    """The partition in the bucket holds exactly the file's rows of its own month, and the strays it
    keeps for the months next to it (what a clean run writes)."""
    from taxiflow.data import storage, warehouse
    from taxiflow.data.ingest import read_summary

    partition = Partition("green", month)
    storage.refresh(bucket.trips_dir(partition))  # this process listed the bucket before the month was written
    landing = pd.read_parquet(file, columns=[PICKUP["green"]])
    summary = read_summary(partition, bucket)
    assert summary["rows_read"] == len(landing)
    pickups = landing[PICKUP["green"]]
    first = pd.Timestamp(f"{month}-01")
    in_month = int(((pickups >= first) & (pickups < first + pd.offsets.MonthBegin(1))).sum())
    assert summary["rows_written"] == in_month - summary["rows_rejected"]
    next_to_it = {(first + pd.DateOffset(months=step)).strftime("%Y-%m") for step in (-1, 1)}
    strays = int(pickups.dt.strftime("%Y-%m").isin(next_to_it).sum())
    assert summary["rows_strays_kept"] == strays
    with warehouse.trips_file(partition, bucket).open("rb") as handle:
        assert len(pd.read_parquet(handle)) == summary["rows_written"] + summary["rows_strays_kept"]


def test_killed_worker_task_runs_again_on_the_other_worker(deployment, bucket, big_month, figures):
    drop(bucket, "green", BIG_MONTH, big_month)
    workers = deployment.hostnames("airflow-worker")
    assert len(workers) == WORKERS
    # the watching reader has a filesystem object (and listing cache) of its own, as on another host
    reader = deployment.bucket_paths(f"{BUCKET_CONN_ID}_watch")
    watch = BucketWatch(deployment, reader, Partition("green", BIG_MONTH)).start()
    try:
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
        assert_month_equals_its_file(bucket, BIG_MONTH, big_month)

        conf = report_conf("drill_kill", "Manhattan", "2023-06-01", "2023-07-01")
        deployment.airflow("dags", "trigger", REPORT_DAG_ID, "--conf", json.dumps(conf), "-r", "drill_kill")
        assert_report(deployment, bucket, "drill_kill", "drill_kill", {BIG_MONTH: big_month},
                      "Manhattan", "2023-06-01", "2023-07-01")
    finally:
        watch.stop()
    # A reader polling the bucket all along never saw a partial partition or a dangling manifest,
    # and it did see the month go from invisible to complete.
    assert watch.problems == []
    complete = read_rows_written(bucket, BIG_MONTH)
    assert set(watch.visible_rows) == {0, complete}, sorted(set(watch.visible_rows))
    assert watch.visible_rows[0] == 0 and watch.visible_rows[-1] == complete
    figures["bucket_polls_during_kill_drill"] = watch.polls
    subprocess.run(["docker", "start", victim], check=True, capture_output=True)  # the operator restarts it


def read_rows_written(bucket: DataPaths, month: str) -> int:
    from taxiflow.data import storage
    from taxiflow.data.ingest import read_summary

    storage.refresh(bucket.trips_dir(Partition("green", month)))
    return int(read_summary(Partition("green", month), bucket)["rows_written"])


def test_scheduler_restart_mid_run_recovers_without_a_hand(deployment, bucket, figures):
    drop(bucket, "green", RESTART_MONTH, real_file(RESTART_MONTH))
    trigger_ingest(deployment, RESTART_MONTH, "drill_scheduler")
    deployment.wait_for(lambda: (deployment.run(INGEST_DAG_ID, "drill_scheduler") or {}).get("state") == "running",
                        f"ingest of {RESTART_MONTH} running", timeout=120, interval=0.5)
    start = time.monotonic()
    deployment.compose("restart", "airflow-scheduler")
    run = deployment.wait_for_run(INGEST_DAG_ID, "drill_scheduler", timeout=420)
    figures["scheduler_restart_to_finish"] = time.monotonic() - start
    assert run["state"] == "success", deployment.task_instances(INGEST_DAG_ID, "drill_scheduler")
    assert_month_equals_its_file(bucket, RESTART_MONTH, real_file(RESTART_MONTH))


def test_postgres_restart_mid_run_recovers_without_a_hand(deployment, bucket, figures):
    conf = report_conf("drill_postgres", "Brooklyn", "2025-02-01", "2025-03-01")
    status, run = deployment.api("POST", f"/api/v2/dags/{REPORT_DAG_ID}/dagRuns",
                                 {"dag_run_id": "drill_postgres", "logical_date": None, "conf": conf})
    assert status == 200, run
    start = time.monotonic()
    deployment.compose("restart", "postgres")
    assert_report(deployment, bucket, "drill_postgres", "drill_postgres", {RESTART_MONTH: real_file(RESTART_MONTH)},
                  "Brooklyn", "2025-02-01", "2025-03-01")
    figures["postgres_restart_to_finish"] = time.monotonic() - start


def published_csvs(bucket: DataPaths) -> dict[str, str]:
    """Report name -> sha256 of its CSV, read through each manifest in the bucket."""
    from taxiflow.data import storage
    from taxiflow.reports.outputs import read_report

    digests = {}
    for folder in storage.list_dir(bucket.outputs):
        report = read_report(folder.name, bucket)
        if report is not None:
            digests[folder.name] = hashlib.sha256(report.csv).hexdigest()
    return digests


def test_down_then_up_keeps_runs_outputs_and_task_logs(deployment, bucket, figures):
    """`down` removes every container (and whatever a container kept on its own disk); the runs
    stay in Postgres's volume, the outputs and the task logs in the object store's."""
    before = {dag_id: {r["dag_run_id"]: r["state"] for r in deployment.runs(dag_id)}
              for dag_id in (INGEST_DAG_ID, METRICS_DAG_ID, REPORT_DAG_ID)}
    outputs = published_csvs(bucket)
    assert before[REPORT_DAG_ID] and outputs
    deployment.compose("down", "--timeout", "20")
    assert deployment.compose("ps", "-a", "-q").stdout.split() == []
    start = time.monotonic()
    deployment.compose("up", "-d", "--wait", "--scale", f"airflow-worker={WORKERS}", timeout=1200)
    figures["up_again_to_healthy"] = time.monotonic() - start
    for dag_id, runs in before.items():
        after = {r["dag_run_id"]: r["state"] for r in deployment.runs(dag_id)}
        for run_id, state in runs.items():
            if state in ("success", "failed"):
                assert after.get(run_id) == state, (dag_id, run_id)
    assert published_csvs(bucket) == outputs
    # every worker container is new: the log below can only come from the bucket
    text = process_log_is_in_the_bucket(deployment, deployment.run(INGEST_DAG_ID, "drill_scheduler"))
    rows = len(pd.read_parquet(real_file(RESTART_MONTH), columns=["PULocationID"]))
    assert f"{rows} rows read" in text
