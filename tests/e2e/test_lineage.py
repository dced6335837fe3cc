"""Lineage on live Airflow: a month's drop, partition, metrics and a report as asset events.

May 2022 (a month no other e2e module uses) is dropped for yellow and green, ingested by a
backfill, and a report is asked for over it. What is checked is what the Assets page and
``/api/v2/assets`` show: each asset's event for the month, whose figures equal the partition's
``_summary.json`` and the files on disk; the report's event names the partitions it counted; and
the asset graph of the report (the data view the Assets page draws) leads back through metrics,
trips and raw to the drop.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import time
import urllib.parse

import pytest

from taxiflow.config import INGEST_DAG_ID, METRICS_DAG_ID, REPORT_DAG_ID, DataPaths, Partition
from taxiflow.data.warehouse import METRICS_FILE, SUMMARY_FILE, TRIPS_FILE

pytestmark = pytest.mark.e2e

MONTH, REPORT_RUN = "2022-05", "lineage_report"
REPORT = {"borough": "Bronx", "start_date": "2022-05-01", "end_date": "2022-05-15", "name": "lineage_bronx_may"}


def wait_for_run_at(stack, dag_id: str, day: str, timeout: float = 300) -> dict:
    """The run of ``dag_id`` whose logical date is ``day``, once it has finished."""
    deadline = time.monotonic() + timeout
    at = f"{day}T00:00:00Z"
    while time.monotonic() < deadline:
        status, body = stack.api("GET", f"/api/v2/dags/{dag_id}/dagRuns?logical_date_gte={at}&logical_date_lte={at}")
        if status == 200 and body["dag_runs"]:
            return stack.wait_for_run(dag_id, body["dag_runs"][0]["dag_run_id"], timeout=deadline - time.monotonic())
        time.sleep(1)
    raise TimeoutError(f"no {dag_id} run at {day}")


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def lineage_run(airflow_stack):
    from taxiflow.demo.trips import generate_month

    stack = airflow_stack
    paths = DataPaths(stack.data_dir)
    generate_month("yellow", MONTH, trips=3000, seed=11, paths=paths)
    generate_month("green", MONTH, trips=700, seed=11, paths=paths)
    stack.backfill(INGEST_DAG_ID, f"{MONTH}-01", f"{MONTH}-01")
    ingest_run = wait_for_run_at(stack, INGEST_DAG_ID, f"{MONTH}-01")
    assert ingest_run["state"] == "success", stack.task_states(INGEST_DAG_ID, ingest_run["dag_run_id"])
    stack.airflow("dags", "trigger", REPORT_DAG_ID, "--conf", json.dumps(REPORT), "-r", REPORT_RUN)
    report_run = stack.wait_for_run(REPORT_DAG_ID, REPORT_RUN, timeout=240)
    assert report_run["state"] == "success", stack.task_states(REPORT_DAG_ID, REPORT_RUN)
    status, body = stack.api("GET", "/api/v2/assets?limit=100")
    assert status == 200, body
    return stack, paths, {asset["name"]: asset for asset in body["assets"]}, ingest_run


def events(stack, **filters) -> dict[str, dict]:
    """The latest asset event matching ``filters``, by asset name.

    A run records one event per asset each time its task succeeds; a task run again in the same run
    (the trigger task retried on a loaded machine resets its ``create_metrics`` run, and the build
    runs again) records another. Each event is a whole statement of the partition, so the latest counts.
    """
    query = urllib.parse.urlencode(filters)  # a backfill's run id holds "+" and ":"
    status, body = stack.api("GET", f"/api/v2/assets/events?limit=100&{query}")
    assert status == 200, body
    found: dict[str, dict] = {}
    for event in sorted(body["asset_events"], key=lambda event: event["id"]):
        found[event["name"]] = event
    return found


def test_the_backfill_run_names_the_month_it_ingests(lineage_run):
    """Airflow names it after the moment May ended; its note (run header, grid, API) says May.

    The note is written by the run's own ``name_run`` task through ``PATCH /api/v2/.../dagRuns``
    (connection ``taxiflow_api``), and read back here from the run list the UI's grid reads.
    """
    stack, *_, run = lineage_run
    assert run["dag_run_id"].startswith("backfill__2022-06-01")
    assert stack.task_states(INGEST_DAG_ID, run["dag_run_id"])["name_run"] == "success"
    at = f"{MONTH}-01T00:00:00Z"
    status, body = stack.api("GET", f"/api/v2/dags/{INGEST_DAG_ID}/dagRuns?run_type=backfill"
                                    f"&logical_date_gte={at}&logical_date_lte={at}")
    assert status == 200, body
    assert [(r["dag_run_id"], r["note"]) for r in body["dag_runs"]] == [
        (run["dag_run_id"], f"Ingests {MONTH} (May 2022): yellow, green")]


def test_the_ingest_run_records_drop_raw_and_trips_per_source(lineage_run):
    stack, paths, assets, run = lineage_run
    ingest_events = events(stack, source_run_id=run["dag_run_id"])
    assert set(ingest_events) == {f"{source}_{stage}" for source in ("yellow", "green")
                                  for stage in ("drop", "raw", "trips")}
    for source in ("yellow", "green"):
        partition = Partition(source, MONTH)
        summary = json.loads((paths.trips_dir(partition) / SUMMARY_FILE).read_text())
        trips = ingest_events[f"{source}_trips"]
        assert trips["partition_key"] == MONTH and trips["source_task_id"] == f"process_{source}"
        assert trips["uri"] == assets[f"{source}_trips"]["uri"] == f"file://{paths.warehouse}/trips/source={source}"
        for key in ("rows_read", "rows_written", "rows_rejected", "rows_outside_month", "rows_unknown_zone",
                    "written_at"):
            assert trips["extra"][key] == summary[key], (source, key)
        trips_file = paths.trips_dir(partition) / summary["version"] / TRIPS_FILE  # the version it names
        assert (trips["extra"]["bytes"], trips["extra"]["sha256"]) == (trips_file.stat().st_size, sha256(trips_file))

        dropped = paths.landing_dir(partition) / f"{source}_tripdata_{MONTH}.parquet"
        raw_copy = paths.raw_dir(partition) / summary["raw_version"] / dropped.name  # the version the summary names
        expected_files = [{"name": dropped.name, "bytes": dropped.stat().st_size, "sha256": sha256(dropped)}]
        assert ingest_events[f"{source}_drop"]["extra"]["files"] == expected_files
        assert ingest_events[f"{source}_drop"]["source_task_id"] == f"wait_for_{source}"
        assert ingest_events[f"{source}_raw"]["extra"]["files"] == expected_files
        assert ingest_events[f"{source}_raw"]["source_task_id"] == f"copy_to_raw_{source}"
        assert ingest_events[f"{source}_raw"]["extra"]["staged_in"] == str(raw_copy.parent)
        assert trips["extra"]["raw_files"] == [dropped.name]
        assert sha256(raw_copy) == expected_files[0]["sha256"]
        assert summary["raw_files"] == [{"name": dropped.name, "bytes": dropped.stat().st_size}]


def test_create_metrics_records_the_month_s_metrics(lineage_run):
    stack, paths, *_ = lineage_run
    for source in ("yellow", "green"):
        partition = Partition(source, MONTH)
        found = events(stack, source_dag_id=METRICS_DAG_ID, source_run_id=partition.metrics_run_id)
        assert list(found) == [f"{source}_metrics"]
        metrics = found[f"{source}_metrics"]
        summary = json.loads((paths.trips_dir(partition) / SUMMARY_FILE).read_text())
        assert metrics["partition_key"] == MONTH
        assert metrics["extra"]["trips"] == summary["rows_written"]
        borough_file = paths.metrics_dir("hourly_borough", partition) / METRICS_FILE
        assert {f["name"]: f["sha256"] for f in metrics["extra"]["files"]}[f"hourly_borough/{METRICS_FILE}"] == (
            sha256(borough_file))


def test_the_report_event_names_the_partitions_it_counted(lineage_run):
    stack, paths, *_ = lineage_run
    report = events(stack, source_run_id=REPORT_RUN)["borough_reports"]
    assert report["partition_key"] == REPORT["name"]
    manifest = json.loads((paths.outputs / REPORT["name"] / "manifest.json").read_text())
    assert report["extra"]["total_trips"] == manifest["total_trips"] > 0
    assert sorted(f["sha256"] for f in report["extra"]["files"]) == sorted(
        entry["sha256"] for entry in manifest["files"].values())
    used = {(p["source"], p["month"]): p for p in report["extra"]["partitions"]}
    assert set(used) == {("yellow", MONTH), ("green", MONTH)}
    for source in ("yellow", "green"):
        summary = json.loads((paths.trips_dir(Partition(source, MONTH)) / SUMMARY_FILE).read_text())
        assert used[source, MONTH]["rows_written"] == summary["rows_written"]
        assert used[source, MONTH]["written_at"] == summary["written_at"]


def test_the_report_s_asset_graph_leads_back_to_the_drop(lineage_run):
    """What the Assets page draws for ``borough_reports`` (its data view: tasks with inlets and outlets)."""
    stack, _, assets, _ = lineage_run
    asset_id = assets["borough_reports"]["id"]
    status, graph = stack.api("GET", f"/ui/dependencies?node_id=asset:{asset_id}&dependency_type=data")
    assert status == 200, graph
    label = {node["id"]: node["label"] for node in graph["nodes"]}
    edges = {(label[edge["source_id"]], label[edge["target_id"]]) for edge in graph["edges"]}
    for source in ("yellow", "green"):
        chain = [f"{source}_drop", f"{INGEST_DAG_ID}.copy_to_raw_{source}", f"{source}_raw",
                 f"{INGEST_DAG_ID}.process_{source}", f"{source}_trips",
                 f"{METRICS_DAG_ID}.build_metrics_{source}", f"{source}_metrics",
                 f"{REPORT_DAG_ID}.render_report", "borough_reports"]
        for step in itertools.pairwise(chain):
            assert step in edges, (step, sorted(edges))
