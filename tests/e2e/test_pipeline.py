"""The whole pipeline on live Airflow processes, driven the way an operator drives it.

Files are dropped in the landing folder, ingest runs are started by backfill and by the CLI,
``create_metrics`` is triggered by the ingest DAG, and a report is asked for with
``airflow dags trigger --conf``. Expected numbers are computed here, independently, with pandas
straight on the dropped files and the zone table.
"""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from taxiflow.config import DAY_NAMES, INGEST_DAG_ID, METRICS_DAG_ID, REPORT_DAG_ID, DataPaths
from taxiflow.reports.outputs import read_report

pytestmark = pytest.mark.e2e

PICKUP_COLUMNS = {"yellow": "tpep_pickup_datetime", "green": "lpep_pickup_datetime"}
# The columns of TLC's files that identify a trip (what the warehouse keeps of it).
TRIP_COLUMNS = {
    "VendorID", "tpep_pickup_datetime", "tpep_dropoff_datetime", "lpep_pickup_datetime", "lpep_dropoff_datetime",
    "PULocationID", "DOLocationID", "passenger_count", "trip_distance", "fare_amount", "tip_amount",
    "total_amount", "payment_type",
}
ADJACENT = {"2023-11": ["2023-10", "2023-12"], "2023-12": ["2023-11", "2024-01"], "2024-01": ["2023-12", "2024-02"],
            "2024-02": ["2024-01", "2024-03"]}


def drop(landing: Path, source: str, month: str, files: list[Path], success: bool = True) -> None:
    """What an upstream system does: data files first, the _SUCCESS marker last."""
    target = landing / source / month
    target.mkdir(parents=True, exist_ok=True)
    for file in files:
        shutil.copy(file, target / file.name)
    if success:
        (target / "_SUCCESS").touch()


def expected_counts(
    files: list[tuple[str, str, Path]], zone_table: Path, borough: str, start: str, end: str
) -> pd.DataFrame:
    """Trips per hour and day, by pandas. A trip counts in the month it started: each file's own
    month, plus the rows it lists of an adjacent month that was ingested too, unless that month's
    own file lists the same trip (every column equal), each once."""
    zones = pd.read_csv(zone_table, keep_default_na=False)
    own, strays = [], []
    for source, month, path in files:
        trips = pd.read_parquet(path)
        trips = trips[[column for column in trips.columns if column in TRIP_COLUMNS]].rename(
            columns={PICKUP_COLUMNS[source]: "pickup_at", "PULocationID": "zone"})
        trips = trips.assign(source=source, pickup_month=trips["pickup_at"].dt.strftime("%Y-%m"))
        adjacent = [m for m in ADJACENT[month] if (source, m) in {(s, m) for s, m, _ in files}]
        own.append(trips[trips["pickup_month"] == month])
        strays.append(trips[trips["pickup_month"].isin(adjacent)])
    own_trips = pd.concat(own)
    stray_trips = pd.concat(strays).drop_duplicates()
    listed = stray_trips.merge(own_trips.drop_duplicates(), how="left", indicator=True)
    trips = pd.concat([own_trips, listed[listed["_merge"] == "left_only"].drop(columns="_merge")])
    trips = trips.merge(zones, left_on="zone", right_on="LocationID", how="left")
    trips = trips[(trips["Borough"] == borough) & (trips["pickup_at"] >= start) & (trips["pickup_at"] < end)]
    counts = (
        trips.assign(hour_of_day=trips["pickup_at"].dt.hour, day_of_week=trips["pickup_at"].dt.day_name())
        .groupby(["hour_of_day", "day_of_week"]).size().rename("num_trips").reset_index()
    )
    grid = pd.MultiIndex.from_product([range(24), DAY_NAMES], names=["hour_of_day", "day_of_week"])
    grid = grid.to_frame(index=False)
    return grid.merge(counts, how="left").fillna({"num_trips": 0}).astype({"num_trips": int})


def task_log(stack, dag_id: str, run_id: str, task_id: str) -> str:
    logs = stack.home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task_id}"
    return "\n".join(p.read_text(errors="replace") for p in sorted(logs.rglob("*.log")))


@pytest.fixture(scope="module")
def pipeline(airflow_stack, tmp_path_factory, tlc_dir):
    """Drop three months, ingest them (backfill + CLI), and wait for every ingest run to finish."""
    from taxiflow.config import DataPaths
    from taxiflow.demo.trips import generate_month

    stack = airflow_stack
    landing = stack.data_dir / "landing"
    staging = DataPaths(tmp_path_factory.mktemp("staging"))
    shutil.copytree(stack.data_dir / "reference", staging.reference)

    yellow = {
        m: generate_month("yellow", m, trips=6000, seed=7, paths=staging) for m in ("2023-12", "2024-01", "2024-02")
    }
    green = {m: tlc_dir / "green" / f"green_tripdata_{m}.parquet" for m in ("2023-12", "2024-01")}
    for month, path in yellow.items():
        drop(landing, "yellow", month, [path])
    for month, path in green.items():
        drop(landing, "green", month, [path])
    # February's green files arrive without their _SUCCESS marker: that must not be ingested.
    drop(landing, "green", "2024-02", [green["2024-01"]], success=False)

    # February first: its green branch waits the whole TAXIFLOW_DROP_TIMEOUT, the longest of the three.
    stack.airflow("dags", "trigger", INGEST_DAG_ID, "-l", "2024-02-01T00:00:00+00:00", "-r", "ingest_feb")
    stack.backfill(INGEST_DAG_ID, "2023-12-01", "2024-01-01")  # once any earlier backfill has completed

    runs = {}
    for logical in ("2023-12-01", "2024-01-01", "2024-02-01"):
        runs[logical] = wait_for_run_at(stack, INGEST_DAG_ID, logical)
    return {"stack": stack, "runs": runs, "yellow": yellow, "green": green}


def wait_for_run_at(stack, dag_id: str, logical: str, timeout: float = 420) -> dict:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        at = f"{logical}T00:00:00Z"
        status, body = stack.api("GET", f"/api/v2/dags/{dag_id}/dagRuns?logical_date_gte={at}&logical_date_lte={at}")
        if status == 200 and body["dag_runs"]:
            run_id = body["dag_runs"][0]["dag_run_id"]
            return stack.wait_for_run(dag_id, run_id, timeout=max(deadline - time.monotonic(), 1))
        time.sleep(1)
    raise TimeoutError(f"no {dag_id} run at {logical}")


def test_complete_months_are_ingested_and_metrics_triggered(pipeline):
    stack, runs = pipeline["stack"], pipeline["runs"]
    for logical in ("2023-12-01", "2024-01-01"):
        assert runs[logical]["state"] == "success", stack.task_states(INGEST_DAG_ID, runs[logical]["dag_run_id"])
    _status, body = stack.api("GET", f"/api/v2/dags/{METRICS_DAG_ID}/dagRuns?limit=50")
    confs = {(r["conf"]["source"], r["conf"]["month"]): r["state"] for r in body["dag_runs"]}
    for source in ("yellow", "green"):
        for month in ("2023-12", "2024-01"):
            assert confs[source, month] == "success"
    summary = json.loads((stack.data_dir / "warehouse/trips/source=green/month=2023-12/_summary.json").read_text())
    assert summary["rows_written"] + summary["rows_rejected"] + summary["rows_outside_month"] == 64215
    assert summary["rows_outside_month_by_month"] == {"2023-11": 4}  # TLC's stray rows of November:
    assert summary["strays_kept_by_month"] == {"2023-11": 4}  # kept to count in November once it is ingested
    assert (stack.data_dir / "outputs" / "trips_by_week_green.csv").exists()


def test_a_drop_without_success_marker_is_not_ingested(pipeline):
    stack, run = pipeline["stack"], pipeline["runs"]["2024-02-01"]
    states = stack.task_states(INGEST_DAG_ID, run["dag_run_id"])
    assert states["trigger_create_metrics_yellow"] == "success"  # the other source carries on
    assert states["wait_for_green"] == "failed"  # timed out waiting for _SUCCESS
    assert states["process_green"] == "upstream_failed"
    assert not (stack.data_dir / "warehouse/trips/source=green/month=2024-02").exists()
    assert not (stack.data_dir / "raw/green/2024-02").exists()
    assert (stack.data_dir / "landing/green/2024-02" / "green_tripdata_2024-01.parquet").exists()  # nothing lost


def test_report_by_cli_matches_an_independent_count(pipeline):
    stack = pipeline["stack"]
    conf = {"borough": "Manhattan", "start_date": "2023-12-18", "end_date": "2024-01-08"}
    stack.airflow("dags", "trigger", REPORT_DAG_ID, "--conf", json.dumps(conf), "-r", "report_cli")
    run = stack.wait_for_run(REPORT_DAG_ID, "report_cli", timeout=240)
    assert run["state"] == "success", stack.task_states(REPORT_DAG_ID, "report_cli")

    published = read_report("manhattan_2023-12-18_2024-01-08_yellow-green", DataPaths(stack.data_dir))
    assert published is not None and published.manifest["run_id"] == "report_cli"  # read through its manifest
    with Image.open(io.BytesIO(published.png)) as image:
        image.verify()
        assert image.format == "PNG" and image.size[0] >= 800
    report = pd.read_csv(io.BytesIO(published.csv))
    assert list(report.columns) == ["hour_of_day", "day_of_week", "num_trips"]
    assert len(report) == 24 * 7

    ingested = [("yellow", m, p) for m, p in pipeline["yellow"].items()]
    ingested += [("green", m, p) for m, p in pipeline["green"].items()]
    zones = stack.data_dir / "reference/taxi_zone_lookup.csv"
    expected = expected_counts(ingested, zones, "Manhattan", "2023-12-18", "2024-01-08")
    merged = expected.merge(report, on=["hour_of_day", "day_of_week"], suffixes=("_expected", "_report"))
    assert len(merged) == 168
    assert (merged["num_trips_expected"] == merged["num_trips_report"]).all()
    assert report["num_trips"].sum() > 1000
    # January's green file lists a Manhattan trip of Sunday 2023-12-31 23:38:54 that December's does
    # not: it counts in December's metrics (whichever month the backfill ingested first), once.
    green = pd.read_parquet(stack.data_dir / "warehouse/metrics/hourly_borough/source=green")
    green = green[(green["borough"] == "Manhattan") & (green["pickup_hour"] == 23)]
    sundays = pd.to_datetime(green["pickup_date"]).dt.day_name() == "Sunday"
    in_range = (green["pickup_date"] >= pd.Timestamp("2023-12-18").date()) & (
        green["pickup_date"] < pd.Timestamp("2024-01-08").date())
    assert green[sundays & in_range]["trips"].sum() == 52
    log = task_log(stack, REPORT_DAG_ID, "report_cli", "render_report")
    version = published.manifest["version"]  # the log names the manifest and the version it published
    assert str(stack.data_dir / "outputs" / published.manifest["name"] / "manifest.json") in log and version in log
    gate_log = task_log(stack, REPORT_DAG_ID, "report_cli", "wait_for_ingest")  # ExternalTaskSensor's poke
    assert "Poking for tasks" in gate_log and "2023-12-01T00:00:00+00:00,2024-01-01T00:00:00+00:00" in gate_log

    # The gate's button in the UI opens the ingest DAG's runs, not a run with the report's run id.
    status, links = stack.api("GET", f"/api/v2/dags/{REPORT_DAG_ID}/dagRuns/report_cli/taskInstances/"
                                     "wait_for_ingest/links")
    assert status == 200, links
    assert links["extra_links"] == {"Ingest runs": f"{stack.base_url}/dags/ingest_taxi_trips/runs"}, links


def test_report_on_a_failed_ingest_fails_naming_month_and_source(pipeline):
    stack = pipeline["stack"]
    conf = {"borough": "Queens", "start_date": "2024-02-01", "end_date": "2024-02-15", "name": "queens_feb"}
    stack.airflow("dags", "trigger", REPORT_DAG_ID, "--conf", json.dumps(conf), "-r", "report_failed_month")
    run = stack.wait_for_run(REPORT_DAG_ID, "report_failed_month", timeout=180)
    assert run["state"] == "failed"
    assert stack.task_states(REPORT_DAG_ID, "report_failed_month")["wait_for_ingest"] == "failed"
    assert "green 2024-02" in task_log(stack, REPORT_DAG_ID, "report_failed_month", "wait_for_ingest")
    assert not (stack.data_dir / "outputs" / "queens_feb").exists()


def test_a_second_drop_replaces_the_partition(pipeline):
    stack = pipeline["stack"]
    landing = stack.data_dir / "landing/green/2024-01"
    first_rows = pd.read_parquet(pipeline["green"]["2024-01"]).head(1000)
    (landing / "_SUCCESS").unlink()
    (landing / "green_tripdata_2024-01.parquet").rename(landing.parent / "superseded-2024-01.parquet")
    first_rows.to_parquet(landing / "green_tripdata_2024-01_v2.parquet")
    (landing / "_SUCCESS").touch()

    stack.airflow("tasks", "clear", INGEST_DAG_ID, "-s", "2024-01-01", "-e", "2024-01-01", "-y")
    import time

    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        summary_path = stack.data_dir / "warehouse/trips/source=green/month=2024-01/_summary.json"
        run = wait_for_run_at(stack, INGEST_DAG_ID, "2024-01-01")
        if run["state"] in ("success", "failed") and json.loads(summary_path.read_text())["rows_read"] == 1000:
            break
        time.sleep(3)
    assert run["state"] == "success"
    summary = json.loads(summary_path.read_text())
    assert summary["rows_written"] + summary["rows_rejected"] + summary["rows_outside_month"] == 1000
    raw = stack.data_dir / "raw/green/2024-01"  # one raw version, the one the summary names: the old copy is gone
    assert sorted(p.name for p in raw.iterdir()) == ["_staged.json", summary["raw_version"]]
    assert sorted(p.name for p in (raw / summary["raw_version"]).iterdir()) == ["green_tripdata_2024-01_v2.parquet"]
    folder = stack.data_dir / "warehouse/trips/source=green/month=2024-01"
    assert sorted(p.name for p in folder.iterdir()) == ["_summary.json", summary["version"]]  # the old one is gone
    trips = pd.read_parquet(folder / summary["version"] / "trips.parquet")
    assert len(trips) == summary["rows_written"] + summary["rows_strays_kept"]
    metrics = pd.read_parquet(stack.data_dir / "warehouse/metrics/hourly_borough/source=green/month=2024-01")
    assert metrics["trips"].sum() == summary["rows_written"]
    # December counts the strays of January's new file, not those of the file it replaced.
    december = json.loads((stack.data_dir / "warehouse/trips/source=green/month=2023-12/_summary.json").read_text())
    metrics = pd.read_parquet(stack.data_dir / "warehouse/metrics/hourly_borough/source=green/month=2023-12")
    assert metrics["trips"].sum() == december["rows_written"] + summary["strays_kept_by_month"].get("2023-12", 0)


def test_files_landing_while_the_sensor_waits_are_picked_up(pipeline):
    """The run starts first and waits (rescheduled, holding no slot); the drop lands later."""
    import time

    from taxiflow.config import DataPaths
    from taxiflow.demo.trips import generate_month

    stack = pipeline["stack"]
    stack.airflow("dags", "trigger", INGEST_DAG_ID, "-l", "2023-11-01T00:00:00+00:00", "-r", "ingest_nov")
    deadline = time.monotonic() + 120
    states = {}
    while time.monotonic() < deadline:
        states = stack.task_states(INGEST_DAG_ID, "ingest_nov")
        if states.get("wait_for_yellow") == "up_for_reschedule" and states.get("wait_for_green") == "up_for_reschedule":
            break
        time.sleep(1)
    assert states.get("wait_for_yellow") == "up_for_reschedule", states
    assert "waiting for data files and _SUCCESS" in task_log(stack, INGEST_DAG_ID, "ingest_nov", "wait_for_yellow")

    paths = DataPaths(stack.data_dir)
    generate_month("yellow", "2023-11", trips=3000, seed=3, paths=paths)  # writes _SUCCESS last
    generate_month("green", "2023-11", trips=800, seed=3, paths=paths)
    run = stack.wait_for_run(INGEST_DAG_ID, "ingest_nov", timeout=240)
    assert run["state"] == "success", stack.task_states(INGEST_DAG_ID, "ingest_nov")
    for source, trips in (("yellow", 3000), ("green", 800)):
        summary_file = stack.data_dir / f"warehouse/trips/source={source}/month=2023-11/_summary.json"
        summary = json.loads(summary_file.read_text())
        assert summary["rows_written"] == trips
