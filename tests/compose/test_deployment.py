"""`docker compose up` as a new operator runs it: the README's production steps, every door.

Driven only through the published ports on 127.0.0.1 and `docker compose exec`: ingest by
`airflow backfill create` (exec), then one report per door (REST v2, /api/v1, `airflow dags
trigger` via exec, a request file), each CSV checked against counts computed here from the same
landing files, every task run by one of the two Celery workers.
"""

from __future__ import annotations

import base64
import io
import json
import subprocess
import urllib.error
import urllib.request

import pandas as pd
import pytest

from taxiflow.config import DOWNLOAD_DAG_ID, INGEST_DAG_ID, METRICS_DAG_ID, REPORT_DAG_ID
from taxiflow.data.tlc import trip_file_name as tlc_file_name
from taxiflow.reports.request_files import request_run_id
from tests.compose.fixtures import FLOWER_AUTH, OPT_IN_MONTH, WORKERS

pytestmark = [pytest.mark.compose, pytest.mark.e2e]

PICKUP = {"yellow": "tpep_pickup_datetime", "green": "lpep_pickup_datetime"}
AIRFLOW_SERVICES = ("airflow-init", "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor",
                    "airflow-triggerer", "airflow-worker", "airflow-cli", "flower")


def expected_trips(data_dir, borough: str, start: str, end: str, months: tuple[str, ...] = ("2024-01",)) -> int:
    """Trips starting in ``borough`` in ``[start, end)``, counted with pandas from the landing files."""
    zones = pd.read_csv(data_dir / "reference/taxi_zone_lookup.csv", keep_default_na=False)
    total = 0
    for source, column in PICKUP.items():
        for month in months:
            folder = data_dir / f"landing/{source}/{month}"
            if not folder.is_dir():
                continue
            trips = pd.read_parquet(folder).merge(zones, left_on="PULocationID", right_on="LocationID")
            first = pd.Timestamp(f"{month}-01")  # a month's file counts only its own month's pickups
            trips = trips[(trips[column] >= first) & (trips[column] < first + pd.offsets.MonthBegin(1))]
            total += int(((trips["Borough"] == borough) & (trips[column] >= start) & (trips[column] < end)).sum())
    return total


def assert_report(deployment, run_id: str, name: str, borough: str, start: str, end: str, **kw) -> None:
    """The run succeeded and its CSV holds every cell, summing to the independent count."""
    run = deployment.wait_for_run(REPORT_DAG_ID, run_id, timeout=300)
    assert run["state"] == "success", deployment.task_instances(REPORT_DAG_ID, run_id)
    from taxiflow.config import DataPaths
    from taxiflow.reports.outputs import read_report

    published = read_report(name, DataPaths(deployment.data_dir))  # through its manifest: PNG, CSV, one version
    assert published is not None and published.manifest["run_id"] == run_id
    report = pd.read_csv(io.BytesIO(published.csv))
    assert len(report) == 24 * 7
    assert int(report["num_trips"].sum()) == expected_trips(deployment.data_dir, borough, start, end, **kw) > 0
    assert len(published.png) > 10_000


@pytest.fixture(scope="module")
def ingested(deployment, figures):
    """January ingested the README's way: `airflow backfill create` through `docker compose exec`."""
    import time

    start = time.monotonic()
    deployment.airflow("backfill", "create", "--dag-id", INGEST_DAG_ID,
                       "--from-date", "2024-01-01", "--to-date", "2024-01-01")

    def backfill_run():
        runs = [r for r in deployment.runs(INGEST_DAG_ID) if r["run_type"] == "backfill"]
        return runs[0] if runs and runs[0]["state"] in ("success", "failed") else None

    run = deployment.wait_for(backfill_run, "ingest backfill of 2024-01", timeout=420)
    assert run["state"] == "success", deployment.task_instances(INGEST_DAG_ID, run["dag_run_id"])

    def metrics_runs():
        done = [r for r in deployment.runs(METRICS_DAG_ID) if r["state"] in ("success", "failed")]
        return done if len(done) >= 2 else None

    metrics = deployment.wait_for(metrics_runs, "create_metrics for yellow and green", timeout=300)
    assert [r["state"] for r in metrics] == ["success", "success"]
    figures["ingest_month"] = time.monotonic() - start
    return run


def test_every_published_port_names_loopback(deployment):
    published = deployment.published()
    assert {p["service"] for p in published} == {"airflow-apiserver", "flower"}
    assert {p["URL"] for p in published} == {"127.0.0.1"}, published
    assert {p["PublishedPort"] for p in published} == {
        int(deployment.env["AIRFLOW_API_PORT"]), int(deployment.env["AIRFLOW_FLOWER_PORT"])}


def test_flower_runs_and_answers_only_with_basic_auth(deployment):
    url = f"http://127.0.0.1:{deployment.env['AIRFLOW_FLOWER_PORT']}/workers?json=1"
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(url, timeout=30)
    assert refused.value.code == 401
    basic = base64.b64encode(":".join(FLOWER_AUTH).encode()).decode()
    request = urllib.request.Request(url, headers={"Authorization": f"Basic {basic}"})
    with urllib.request.urlopen(request, timeout=30) as resp:
        assert resp.status == 200


def test_one_image_built_once_for_every_airflow_service(deployment):
    config = json.loads(deployment.compose("config", "--format", "json").stdout)
    services = config["services"]
    assert [name for name, s in services.items() if "build" in s] == ["airflow-init"]
    assert {services[name]["image"] for name in AIRFLOW_SERVICES if name in services} == {
        f"taxiflow-airflow:{deployment.env['TAXIFLOW_VERSION']}"}
    running = subprocess.run(["docker", "ps", "--filter", f"label=com.docker.compose.project={deployment.project}",
                              "--format", "{{.Image}}"], check=True, capture_output=True, text=True).stdout.split()
    assert len(set(running) - {deployment.env["POSTGRES_IMAGE"], deployment.env["REDIS_IMAGE"]}) == 1


def test_download_dag_stays_paused_until_the_operator_opts_in(deployment, tlc):
    status, dag = deployment.api("GET", f"/api/v2/dags/{DOWNLOAD_DAG_ID}")
    assert status == 200 and dag["is_paused"] is True
    assert deployment.runs(DOWNLOAD_DAG_ID) == [] and tlc.requests == []  # nobody was called
    for dag_id in (INGEST_DAG_ID, METRICS_DAG_ID, REPORT_DAG_ID):
        assert deployment.api("GET", f"/api/v2/dags/{dag_id}")[1]["is_paused"] is False

    # The operator opts in (README): unpause, then one month is downloaded from the mirror.
    deployment.airflow("dags", "unpause", DOWNLOAD_DAG_ID)
    status, run = deployment.api("POST", f"/api/v2/dags/{DOWNLOAD_DAG_ID}/dagRuns",
                                 {"dag_run_id": "opt_in", "logical_date": None, "conf": {"month": OPT_IN_MONTH}})
    assert status == 200, run
    run = deployment.wait_for_run(DOWNLOAD_DAG_ID, "opt_in", timeout=300)
    assert run["state"] == "success", deployment.task_instances(DOWNLOAD_DAG_ID, "opt_in")
    for source in ("yellow", "green"):
        name = tlc_file_name(source, OPT_IN_MONTH)
        landed = deployment.data_dir / "landing" / source / OPT_IN_MONTH
        assert (landed / name).read_bytes() == tlc.files[f"/trip-data/{name}"].read_bytes()
        assert (landed / "_SUCCESS").exists()
        assert tlc.count("GET", f"/trip-data/{name}") == 1


def test_report_by_rest_v2(ingested, deployment):
    conf = {"borough": "Brooklyn", "start_date": "2024-01-08", "end_date": "2024-01-22", "name": "compose_v2"}
    status, run = deployment.api("POST", f"/api/v2/dags/{REPORT_DAG_ID}/dagRuns",
                                 {"dag_run_id": "compose_v2", "logical_date": None, "conf": conf})
    assert status == 200, run
    assert_report(deployment, "compose_v2", "compose_v2", "Brooklyn", "2024-01-08", "2024-01-22")


def test_report_by_rest_v1_with_basic_auth(ingested, deployment):
    conf = {"borough": "Queens", "start_date": "2024-01-01", "end_date": "2024-01-15", "name": "compose_v1"}
    body = {"dag_run_id": "compose_v1", "conf": conf}
    status, run = deployment.api_v1("POST", f"/dags/{REPORT_DAG_ID}/dagRuns", body)
    assert status == 200, run
    assert deployment.api_v1("POST", f"/dags/{REPORT_DAG_ID}/dagRuns", {"conf": conf},
                             auth=(deployment.admin[0], "wrong"))[0] == 401
    assert_report(deployment, "compose_v1", "compose_v1", "Queens", "2024-01-01", "2024-01-15")


def test_report_by_cli_through_compose_exec(ingested, deployment):
    conf = {"borough": "Manhattan", "start_date": "2024-01-01", "end_date": "2024-02-01", "name": "compose_cli"}
    deployment.airflow("dags", "trigger", REPORT_DAG_ID, "--conf", json.dumps(conf), "-r", "compose_cli")
    assert_report(deployment, "compose_cli", "compose_cli", "Manhattan", "2024-01-01", "2024-02-01")


def test_report_by_request_file(ingested, deployment):
    """The shipped request file plus one dropped now: each gives one run and its outputs."""
    import hashlib

    requests_dir = deployment.data_dir / "requests"
    dropped = requests_dir / "compose-bronx.json"
    dropped.write_text(json.dumps({"borough": "Bronx", "start_date": "2024-01-15", "end_date": "2024-02-01"}))
    deployment.chown_for_airflow(dropped)
    for path, borough, start in ((requests_dir / "january-staten-island.json", "Staten Island", "2024-01-01"),
                                 (dropped, "Bronx", "2024-01-15")):
        run_id = request_run_id(path.stem, hashlib.sha256(path.read_bytes()).hexdigest())
        deployment.wait_for(lambda run_id=run_id: deployment.run(REPORT_DAG_ID, run_id), f"run for {path.name}",
                            timeout=240)
        assert_report(deployment, run_id, path.stem, borough, start, "2024-02-01")


def test_every_run_succeeded_on_a_celery_worker(ingested, deployment, figures):
    workers = deployment.hostnames("airflow-worker")
    assert len(workers) == WORKERS
    checked = 0
    for dag_id in (INGEST_DAG_ID, METRICS_DAG_ID, REPORT_DAG_ID):
        for run in deployment.runs(dag_id):
            if dag_id == INGEST_DAG_ID and run["run_type"] == "scheduled":
                continue  # the latest month's scheduled run waits for a drop that never comes
            assert run["state"] == "success", (dag_id, run["dag_run_id"], run["state"])
            for ti in deployment.task_instances(dag_id, run["dag_run_id"]):
                assert ti["state"] in ("success", "skipped"), (dag_id, ti["task_id"], ti["state"])
                if ti["state"] == "success":
                    assert ti["executor"] in (None, "CeleryExecutor"), ti
                    assert ti["hostname"] in workers, (ti["task_id"], ti["hostname"], sorted(workers))
                    checked += 1
    assert checked >= 15
    figures["memory_mb_after_pipeline"] = deployment.memory_mb()
