"""`docker compose up` as a new operator runs it: the README's production steps, every door.

Driven only through the published ports on 127.0.0.1 (REST, S3) and `docker compose exec`. The
deployment shares no folder between services: real TLC months are uploaded to the bucket's
``landing/green/<YYYY-MM>/`` (``_SUCCESS`` last), ingested by `airflow backfill create` (exec), and
reported through each door (REST v2, /api/v1, `airflow dags trigger` via exec, a request file in
the bucket); each CSV, read from the bucket through its manifest, equals the count pandas computes
here from the real files, cell by cell. Every task ran on one of the two Celery workers, and its
log is read from the bucket.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

from taxiflow.config import (
    DAY_NAMES,
    DOWNLOAD_DAG_ID,
    INGEST_DAG_ID,
    METRICS_DAG_ID,
    REPORT_DAG_ID,
    SUCCESS_MARKER,
    DataPaths,
    Partition,
)
from taxiflow.data.tlc import trip_file_name as tlc_file_name
from tests.compose.deployment import PROJECT_DIR
from tests.compose.fixtures import FLOWER_AUTH, OPT_IN_MONTH, WORKERS

pytestmark = [pytest.mark.compose, pytest.mark.e2e]

TLC_DIR = PROJECT_DIR / "tests" / "data" / "tlc"
ZONE_TABLE = TLC_DIR / "taxi_zone_lookup.csv"  # TLC's own table (the same bytes as the packaged one)
REAL_MONTHS = ("2023-12", "2024-01")  # real green TLC months, ingested by one backfill
PICKUP = {"yellow": "tpep_pickup_datetime", "green": "lpep_pickup_datetime"}
# The columns of TLC's files that identify a trip (what the warehouse keeps of it).
TRIP_COLUMNS = {source: ["VendorID", pickup, pickup.replace("pickup", "dropoff"), "PULocationID", "DOLocationID",
                         "passenger_count", "trip_distance", "fare_amount", "tip_amount", "total_amount",
                         "payment_type"] for source, pickup in PICKUP.items()}
AIRFLOW_SERVICES = ("airflow-init", "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor",
                    "airflow-triggerer", "airflow-worker", "airflow-cli", "flower")


def real_file(month: str) -> Path:
    return TLC_DIR / "green" / f"green_tripdata_{month}.parquet"


INGESTED = {month: real_file(month) for month in REAL_MONTHS}  # what the `ingested` fixture ingests


def drop(bucket: DataPaths, source: str, month: str, file: Path) -> None:
    """What an upstream system does: the data file first, then ``_SUCCESS``, into the bucket."""
    from taxiflow.data import storage

    folder = bucket.landing_dir(Partition(source, month))
    storage.upload(file, folder / file.name)
    storage.write_bytes(folder / SUCCESS_MARKER, b"")


def adjacent(month: str, other: str) -> bool:
    first = pd.Timestamp(f"{month}-01")
    return other in {(first + pd.DateOffset(months=step)).strftime("%Y-%m") for step in (-1, 1)}


def expected_counts(files: dict[str, Path], borough: str, start: str, end: str, source: str = "green") -> pd.DataFrame:
    """Trips per (hour, day) starting in ``borough`` in ``[start, end)``, by pandas on the files
    themselves (month -> file: every month ingested). A trip counts in the month it started: each
    file's own month, plus the rows an adjacent month's file lists for it (TLC's strays), unless
    the month's own file lists the same trip (every column equal), each once."""
    zones = pd.read_csv(ZONE_TABLE, keep_default_na=False)
    read = {month: pd.read_parquet(path, columns=TRIP_COLUMNS[source]).rename(columns={PICKUP[source]: "pickup_at"})
            for month, path in files.items()}
    frames = []
    for month, trips in read.items():
        own = trips[trips["pickup_at"].dt.strftime("%Y-%m") == month]
        strays = pd.concat([other[other["pickup_at"].dt.strftime("%Y-%m") == month]
                            for other_month, other in read.items() if adjacent(month, other_month)]
                           or [own.iloc[:0]]).drop_duplicates()
        listed = strays.merge(own.drop_duplicates(), how="left", indicator=True)
        frames += [own, listed[listed["_merge"] == "left_only"].drop(columns="_merge")]
    trips = pd.concat(frames).rename(columns={"PULocationID": "zone"})
    trips = trips.merge(zones, left_on="zone", right_on="LocationID", how="left")
    trips = trips[(trips["Borough"] == borough) & (trips["pickup_at"] >= start) & (trips["pickup_at"] < end)]
    counts = (trips.assign(hour_of_day=trips["pickup_at"].dt.hour, day_of_week=trips["pickup_at"].dt.day_name())
              .groupby(["hour_of_day", "day_of_week"]).size().rename("num_trips").reset_index())
    grid = pd.MultiIndex.from_product([range(24), DAY_NAMES], names=["hour_of_day", "day_of_week"])
    grid = grid.to_frame(index=False)
    return grid.merge(counts, how="left").fillna({"num_trips": 0}).astype({"num_trips": int})


def assert_report(deployment, bucket: DataPaths, run_id: str, name: str, files: dict[str, Path],
                  borough: str, start: str, end: str) -> None:
    """The run succeeded; its report, read from the bucket through its manifest, holds every cell,
    each equal to the independent count; the PNG is a real image of the same version."""
    from PIL import Image

    from taxiflow.reports.outputs import read_report

    run = deployment.wait_for_run(REPORT_DAG_ID, run_id, timeout=300)
    assert run["state"] == "success", deployment.task_instances(REPORT_DAG_ID, run_id)
    report = read_report(name, bucket)
    assert report is not None and report.manifest["run_id"] == run_id
    numbers = pd.read_csv(io.BytesIO(report.csv))
    expected = expected_counts(files, borough, start, end)
    merged = expected.merge(numbers, on=["hour_of_day", "day_of_week"], suffixes=("_expected", "_report"))
    assert len(numbers) == len(merged) == 24 * 7
    assert (merged["num_trips_expected"] == merged["num_trips_report"]).all(), merged[
        merged["num_trips_expected"] != merged["num_trips_report"]]
    assert numbers["num_trips"].sum() > 0
    with Image.open(io.BytesIO(report.png)) as image:
        image.verify()
        assert image.format == "PNG"


def report_conf(name: str, borough: str, start: str, end: str) -> dict:
    return {"borough": borough, "start_date": start, "end_date": end, "name": name, "sources": ["green"]}


@pytest.fixture(scope="module")
def ingested(deployment, bucket, figures):
    """Two real months dropped into the bucket and ingested the README's way: `airflow backfill
    create` through `docker compose exec`; then create_metrics for each."""
    import time

    for month in REAL_MONTHS:
        drop(bucket, "green", month, real_file(month))
    start = time.monotonic()
    deployment.airflow("backfill", "create", "--dag-id", INGEST_DAG_ID,
                       "--from-date", f"{REAL_MONTHS[0]}-01", "--to-date", f"{REAL_MONTHS[-1]}-01")

    def backfill_runs():
        runs = [r for r in deployment.runs(INGEST_DAG_ID) if r["run_type"] == "backfill"]
        done = len(runs) == len(REAL_MONTHS) and all(r["state"] in ("success", "failed") for r in runs)
        return runs if done else None

    runs = deployment.wait_for(backfill_runs, f"ingest backfill of {', '.join(REAL_MONTHS)}", timeout=600)
    for run in runs:
        assert run["state"] == "success", deployment.task_instances(INGEST_DAG_ID, run["dag_run_id"])

    def metrics_runs():
        done = [r for r in deployment.runs(METRICS_DAG_ID) if r["state"] in ("success", "failed")]
        return done if len(done) >= len(REAL_MONTHS) else None

    metrics = deployment.wait_for(metrics_runs, "create_metrics of both months", timeout=300)
    assert [r["state"] for r in metrics] == ["success"] * len(REAL_MONTHS)
    figures["ingest_two_real_months"] = time.monotonic() - start
    return {run["logical_date"][:7]: run for run in runs}


def test_every_published_port_names_loopback(deployment):
    published = deployment.published()
    assert {p["service"] for p in published} == {"airflow-apiserver", "flower", "object-store"}
    assert {p["URL"] for p in published} == {"127.0.0.1"}, published
    assert {p["PublishedPort"] for p in published} == {
        int(deployment.env["AIRFLOW_API_PORT"]), int(deployment.env["AIRFLOW_FLOWER_PORT"]),
        int(deployment.env["TAXIFLOW_S3_PORT"])}


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
    assert [name for name, s in services.items() if "build" in s] == ["airflow-init", "object-store"]
    assert {services[name]["image"] for name in AIRFLOW_SERVICES if name in services} == {
        f"taxiflow-airflow:{deployment.env['TAXIFLOW_VERSION']}"}
    running = subprocess.run(["docker", "ps", "--filter", f"label=com.docker.compose.project={deployment.project}",
                              "--format", "{{.Image}}"], check=True, capture_output=True, text=True).stdout.split()
    others = {deployment.env["POSTGRES_IMAGE"], deployment.env["REDIS_IMAGE"],
              f"taxiflow-object-store:{deployment.env['TAXIFLOW_VERSION']}"}
    assert len(set(running) - others) == 1


def test_no_service_shares_a_folder_or_volume_with_another(deployment):
    """Every Airflow container (both workers included) mounts nothing; the only volumes are the
    object store's and the databases', each used by one service; no host folder anywhere."""
    mounts = deployment.mounts()
    services = [service for service, _ in mounts.values()]
    assert services.count("airflow-worker") == WORKERS
    owners: dict[str, set[str]] = {}
    for container, (service, found) in mounts.items():
        if service.startswith("airflow-") or service == "flower":
            assert found == [], (service, container, found)
        for mount in found:
            assert mount["Type"] == "volume", (service, mount)  # never a bind mount of a host folder
            owners.setdefault(mount["Name"], set()).add(service)
    assert all(len(users) == 1 for users in owners.values()), owners
    assert any(users == {"object-store"} for users in owners.values()), owners


def test_init_checked_the_bucket_before_anything_started(deployment):
    out = deployment.compose("logs", "--no-color", "airflow-init").stdout
    conn = "(Airflow connection 'taxiflow_storage', endpoint http://object-store:8333)"
    assert f"taxiflow: data root: s3://taxiflow/data {conn}: readable and writable" in out
    assert f"taxiflow: task logs: s3://taxiflow/logs {conn}: readable and writable" in out


@pytest.mark.parametrize(("case", "override", "reason"), [
    ("wrong secret key", {"password": "not-the-secret"},
     "access denied: check the key and secret (login/password) of the connection"),
    ("missing bucket", {"TAXIFLOW_DATA_DIR": "s3://no-such-bucket/data"},
     "the bucket 'no-such-bucket' does not exist; create it first"),
    ("unreachable endpoint", {"endpoint_url": "http://object-store:9"}, "the endpoint is unreachable"),
])
def test_init_refuses_unusable_storage_with_one_line(deployment, case, override, reason):
    """airflow-init as `up` runs it, with one setting wrong: exit 1 and one line naming the
    connection and the URL, before the database is touched; no stack trace."""
    conn = deployment.host_connection()
    conn["extra"]["endpoint_url"] = "http://object-store:8333"
    data_url = override.pop("TAXIFLOW_DATA_DIR", "s3://taxiflow/data")
    conn.update({k: v for k, v in override.items() if k != "endpoint_url"})
    if "endpoint_url" in override:
        conn["extra"]["endpoint_url"] = override["endpoint_url"]
    result = deployment.compose("run", "--rm", "--no-deps", "-T",
                                "-e", f"AIRFLOW_CONN_TAXIFLOW_STORAGE={json.dumps(conn)}",
                                "-e", f"TAXIFLOW_DATA_DIR={data_url}", "airflow-init", check=False, timeout=600)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    bucket = data_url.removeprefix("s3://").split("/")[0]
    assert f"taxiflow: data root: cannot use s3://{bucket}/data (Airflow connection 'taxiflow_storage', " \
           f"endpoint {conn['extra']['endpoint_url']})" in output, output
    assert reason in output, output
    assert "Traceback" not in output and "Airflow version" not in output, output


def test_download_dag_stays_paused_until_the_operator_opts_in(deployment, tlc):
    status, dag = deployment.api("GET", f"/api/v2/dags/{DOWNLOAD_DAG_ID}")
    assert status == 200 and dag["is_paused"] is True
    assert deployment.runs(DOWNLOAD_DAG_ID) == [] and tlc.requests == []  # nobody was called
    for dag_id in (INGEST_DAG_ID, METRICS_DAG_ID, REPORT_DAG_ID):
        assert deployment.api("GET", f"/api/v2/dags/{dag_id}")[1]["is_paused"] is False


def test_opted_in_download_lands_in_the_bucket(deployment, bucket, tlc):
    from taxiflow.data import storage

    # The operator opts in (README): unpause, then one month is downloaded from the mirror.
    deployment.airflow("dags", "unpause", DOWNLOAD_DAG_ID)
    status, run = deployment.api("POST", f"/api/v2/dags/{DOWNLOAD_DAG_ID}/dagRuns",
                                 {"dag_run_id": "opt_in", "logical_date": None, "conf": {"month": OPT_IN_MONTH}})
    assert status == 200, run
    run = deployment.wait_for_run(DOWNLOAD_DAG_ID, "opt_in", timeout=300)
    assert run["state"] == "success", deployment.task_instances(DOWNLOAD_DAG_ID, "opt_in")
    name = tlc_file_name("green", OPT_IN_MONTH)
    landed = bucket.landing_dir(Partition("green", OPT_IN_MONTH))
    served = tlc.files[f"/trip-data/{name}"].read_bytes()
    assert (landed / name).read_bytes() == served
    # _SUCCESS, written after the data object, vouches for exactly the bytes served
    marker = json.loads((landed / SUCCESS_MARKER).read_text())
    assert marker == {"file": name, "bytes": len(served), "sha256": hashlib.sha256(served).hexdigest()}
    data_written, marker_written = (storage.info(landed / key)["modified"] for key in (name, SUCCESS_MARKER))
    assert data_written <= marker_written
    assert tlc.count("GET", f"/trip-data/{name}") == 1


def test_each_backfill_run_names_the_month_it_ingests(ingested, deployment):
    """Airflow names each backfill run after the moment its month ended; its note (run header, grid,
    API) says the month. ``name_run`` wrote it on a worker through ``PATCH /api/v2/.../dagRuns``,
    as the run-notes user airflow-init created from connection ``taxiflow_api``; read back here from
    the run list the UI's grid reads."""
    for run in ingested.values():
        states = {ti["task_id"]: ti["state"] for ti in deployment.task_instances(INGEST_DAG_ID, run["dag_run_id"])}
        assert states["name_run"] == "success", states
    status, body = deployment.api("GET", f"/api/v2/dags/{INGEST_DAG_ID}/dagRuns?run_type=backfill"
                                         f"&order_by=logical_date")
    assert status == 200, body
    assert [(r["dag_run_id"], r["note"]) for r in body["dag_runs"]] == [
        (ingested["2023-12"]["dag_run_id"], "Ingests 2023-12 (December 2023): green"),
        (ingested["2024-01"]["dag_run_id"], "Ingests 2024-01 (January 2024): green")]
    assert ingested["2023-12"]["dag_run_id"].startswith("backfill__2024-01-01")


def test_the_run_notes_user_may_edit_ingest_runs_only(ingested, deployment):
    """The password of ``.env`` logs the run-notes user in; it reads the ingest DAG's runs and
    nothing else, and cannot start or delete a run (least privilege: FAB's edit on a run, which a
    note needs, also covers its state and clearing it; nothing finer exists)."""
    status, body = deployment.request("POST", "/auth/token", {
        "username": "taxiflow-run-notes", "password": deployment.env["TAXIFLOW_RUN_NOTES_PASSWORD"]})
    assert status in (200, 201), body
    as_notes_user = {"Authorization": f"Bearer {body['access_token']}"}
    run_path = f"/api/v2/dags/{INGEST_DAG_ID}/dagRuns/{urllib.parse.quote(ingested['2024-01']['dag_run_id'], safe='')}"
    status, run = deployment.request("GET", run_path, headers=as_notes_user)
    assert status == 200 and run["note"] == "Ingests 2024-01 (January 2024): green", run
    refused = [
        ("GET", f"/api/v2/dags/{REPORT_DAG_ID}/dagRuns", None),
        ("GET", "/api/v2/connections", None),
        ("POST", f"/api/v2/dags/{INGEST_DAG_ID}/dagRuns", {"logical_date": None}),
        ("DELETE", run_path, None),
    ]
    for method, path, payload in refused:
        assert deployment.request(method, path, payload, headers=as_notes_user)[0] == 403, (method, path)
    assert deployment.run(INGEST_DAG_ID, ingested["2024-01"]["dag_run_id"])["state"] == "success"


def test_report_by_rest_v2(ingested, deployment, bucket):
    conf = report_conf("compose_v2", "Brooklyn", "2024-01-08", "2024-01-22")
    status, run = deployment.api("POST", f"/api/v2/dags/{REPORT_DAG_ID}/dagRuns",
                                 {"dag_run_id": "compose_v2", "logical_date": None, "conf": conf})
    assert status == 200, run
    assert_report(deployment, bucket, "compose_v2", "compose_v2", INGESTED,
                  "Brooklyn", "2024-01-08", "2024-01-22")


def test_report_by_rest_v1_with_basic_auth(ingested, deployment, bucket):
    conf = report_conf("compose_v1", "Queens", "2023-12-01", "2024-01-15")  # across both months
    body = {"dag_run_id": "compose_v1", "conf": conf}
    status, run = deployment.api_v1("POST", f"/dags/{REPORT_DAG_ID}/dagRuns", body)
    assert status == 200, run
    assert deployment.api_v1("POST", f"/dags/{REPORT_DAG_ID}/dagRuns", {"conf": conf},
                             auth=(deployment.admin[0], "wrong"))[0] == 401
    assert_report(deployment, bucket, "compose_v1", "compose_v1", INGESTED,
                  "Queens", "2023-12-01", "2024-01-15")


def test_report_by_cli_through_compose_exec(ingested, deployment, bucket):
    conf = report_conf("compose_cli", "Manhattan", "2023-12-01", "2024-02-01")
    deployment.airflow("dags", "trigger", REPORT_DAG_ID, "--conf", json.dumps(conf), "-r", "compose_cli")
    assert_report(deployment, bucket, "compose_cli", "compose_cli", INGESTED,
                  "Manhattan", "2023-12-01", "2024-02-01")


def test_report_by_request_file_in_the_bucket(ingested, deployment, bucket):
    """A request file uploaded to the bucket's requests/ gives one run, started by the triggerer's
    watcher (the safety-net poll is an hour away), and its report under the file's stem."""
    from taxiflow.data import storage
    from taxiflow.doors.request_files import request_run_id

    content = json.dumps({"borough": "Bronx", "start_date": "2024-01-15", "end_date": "2024-02-01",
                          "sources": ["green"]}).encode()
    storage.write_bytes(bucket.requests / "compose-bronx.json", content)
    run_id = request_run_id("compose-bronx", hashlib.sha256(content).hexdigest())
    deployment.wait_for(lambda: deployment.run(REPORT_DAG_ID, run_id), "run for compose-bronx.json", timeout=240)
    assert_report(deployment, bucket, run_id, "compose-bronx", INGESTED,
                  "Bronx", "2024-01-15", "2024-02-01")


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
    assert checked >= 10
    figures["memory_mb_after_pipeline"] = deployment.memory_mb()


def process_log_is_in_the_bucket(deployment, run: dict) -> str:
    """The log of ``process_green`` of an ingest run, as the API serves it: every source it names is
    an object of the bucket's logs/ (no worker disk, no worker log server); returns the log's text."""
    last = deployment.tries(INGEST_DAG_ID, run["dag_run_id"], "process_green")[-1]
    assert last["state"] == "success", last
    body = deployment.task_log(INGEST_DAG_ID, run["dag_run_id"], "process_green", last["try_number"])
    records = body["content"]
    group = [r.get("event", "") for r in records]
    sources = group[group.index("::group::Log message source details") + 1:group.index("::endgroup::")]
    assert sources and all(s.startswith("s3://taxiflow/logs/dag_id=ingest_taxi_trips/") for s in sources), sources
    stored = deployment.objects("logs/dag_id=ingest_taxi_trips/")
    assert all(s.removeprefix("s3://taxiflow/") in stored for s in sources), (sources, sorted(stored)[:5])
    return json.dumps(records)


def test_task_logs_are_read_from_the_bucket(ingested, deployment):
    """What the task logged on a worker is shown by the api-server, from the bucket."""
    rows = len(pd.read_parquet(real_file("2024-01"), columns=["PULocationID"]))
    text = process_log_is_in_the_bucket(deployment, ingested["2024-01"])
    assert f"{rows} rows read" in text
