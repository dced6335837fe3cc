"""The pipeline on live Airflow processes with the data in a real S3 server (SeaweedFS on loopback).

Every Airflow process gets ``TAXIFLOW_DATA_DIR=s3://...`` and the ``taxiflow_storage`` connection,
and the local data folder it is also given stays empty: nothing reaches the shared disk. Files are
dropped into the bucket (data first, ``_SUCCESS`` last), a month is ingested by the CLI, a report is
asked for with ``airflow dags trigger --conf``, and its CSV (read through the manifest) equals an
independent pandas count. Then the request-file door on the same stack: a request file uploaded to
the bucket's ``requests/`` starts its report through the AssetWatcher (the safety-net poll is an hour
away), and a bad one gets an error document naming the field. Run under the heavy lock.
"""

from __future__ import annotations

import io
import json
import tempfile
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from taxiflow.config import (
    DATA_DIR_ENV,
    INGEST_DAG_ID,
    REPORT_DAG_ID,
    SUCCESS_MARKER,
    DataPaths,
    Partition,
)
from tests.e2e.test_pipeline import expected_counts, wait_for_run_at
from tests.e2e.test_request_files import request_runs, wait_until
from tests.support.live import FAST_WAITS, live_deployment

pytestmark = [pytest.mark.e2e, pytest.mark.s3]


@pytest.fixture(scope="module")
def s3_stack(seaweedfs, tmp_path_factory):
    env = seaweedfs.env(prefix="e2e")
    local_data = tmp_path_factory.mktemp("unused-local-data")
    with live_deployment("e2e-s3", data_dir=local_data, extra_env={**FAST_WAITS, **env}) as stack:
        yield stack, env, local_data


def test_a_month_in_a_bucket_is_ingested_and_reported_with_the_right_numbers(s3_stack, tlc_dir, monkeypatch):
    from taxiflow.data import ingest, storage, warehouse
    from taxiflow.demo.trips import generate_month
    from taxiflow.reports.outputs import read_report

    stack, env, local_data = s3_stack
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    root = DataPaths(storage.root())
    assert env[DATA_DIR_ENV].startswith("s3://")

    staging = Path(tempfile.mkdtemp(prefix="taxiflow-e2e-s3-staging-"))
    files = {
        "yellow": generate_month("yellow", "2024-01", trips=4000, seed=11, paths=DataPaths(staging)),
        "green": tlc_dir / "green" / "green_tripdata_2024-01.parquet",
    }
    for source, file in files.items():  # data first, _SUCCESS last, as an upstream system uploads
        folder = root.landing_dir(Partition(source, "2024-01"))
        storage.upload(file, folder / file.name)
        storage.write_bytes(folder / SUCCESS_MARKER, b"")

    stack.airflow("dags", "trigger", INGEST_DAG_ID, "-l", "2024-01-01T00:00:00+00:00", "-r", "ingest_s3")
    run = wait_for_run_at(stack, INGEST_DAG_ID, "2024-01-01")
    assert run["state"] == "success", stack.task_states(INGEST_DAG_ID, "ingest_s3")

    conf = {"borough": "Manhattan", "start_date": "2024-01-08", "end_date": "2024-01-22", "name": "s3_report"}
    stack.airflow("dags", "trigger", REPORT_DAG_ID, "--conf", json.dumps(conf), "-r", "report_s3")
    run = stack.wait_for_run(REPORT_DAG_ID, "report_s3", timeout=240)
    assert run["state"] == "success", stack.task_states(REPORT_DAG_ID, "report_s3")

    report = read_report("s3_report")  # through the manifest, from the bucket
    assert report is not None and report.manifest["run_id"] == "report_s3"
    with Image.open(io.BytesIO(report.png)) as image:
        image.verify()
        assert image.format == "PNG"
    numbers = pd.read_csv(io.BytesIO(report.csv))
    ingested = [(source, "2024-01", file) for source, file in files.items()]
    expected = expected_counts(ingested, warehouse.PACKAGED_ZONE_TABLE, "Manhattan", "2024-01-08", "2024-01-22")
    merged = expected.merge(numbers, on=["hour_of_day", "day_of_week"], suffixes=("_expected", "_report"))
    assert len(merged) == 168 and numbers["num_trips"].sum() > 1000
    assert (merged["num_trips_expected"] == merged["num_trips_report"]).all()
    expected_files = []
    for source in ("green", "yellow"):  # one version per partition, the one its _summary.json names
        version = ingest.read_summary(Partition(source, "2024-01"))["version"]
        names = ("_summary.json", f"{version}/trips.parquet")
        expected_files += [f"source={source}/month=2024-01/{name}" for name in names]
    assert storage.files_below(root.warehouse / "trips") == expected_files
    assert list(local_data.rglob("*")) == []  # nothing was written to the local disk's data folder


def test_a_request_file_in_the_bucket_starts_its_report_and_a_bad_one_is_told_why(s3_stack, monkeypatch):
    """The request-file door on S3: the watcher lists the bucket's requests/, the scan claims, the report publishes."""
    import hashlib

    from taxiflow.data import documents, storage
    from taxiflow.reports.outputs import read_report

    stack, env, local_data = s3_stack
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    root = DataPaths(storage.root())
    request = {"borough": "Manhattan", "start_date": "2024-01-08", "end_date": "2024-01-22"}
    good, bad = json.dumps(request).encode(), json.dumps({**request, "borough": "Narnia"}).encode()
    storage.write_bytes(root.requests / "s3-request.json", good)
    storage.write_bytes(root.requests / "s3-narnia.json", bad)
    run_id = f"request__s3-request__{hashlib.sha256(good).hexdigest()[:16]}"

    runs = wait_until(lambda: request_runs(stack, "s3-request"), 120, "the request file's report run", stack)
    assert [run["dag_run_id"] for run in runs] == [run_id]
    assert stack.wait_for_run(REPORT_DAG_ID, run_id, timeout=240)["state"] == "success", \
        stack.task_states(REPORT_DAG_ID, run_id)
    report = read_report("s3-request")  # through its manifest, from the bucket
    by_cli = read_report("s3_report")  # the same request, asked for by the CLI above
    assert report is not None and by_cli is not None and report.manifest["run_id"] == run_id
    assert report.manifest["owner"] == "requests/s3-request.json"
    assert report.csv == by_cli.csv and report.png.startswith(b"\x89PNG")

    def error_document():
        try:
            return json.loads(documents.read_bytes(root.outputs / "s3-narnia.error.json"))
        except FileNotFoundError:
            return None

    error = wait_until(error_document, 60, "the error document of the bad request file", stack)
    assert error["field"] == "borough" and "'Narnia' is not one of" in error["error"]
    assert error["sha256"] == hashlib.sha256(bad).hexdigest() and request_runs(stack, "s3-narnia") == []
    assert documents.read_bytes(root.requests / "s3-request.json") == good  # request files are only read
    assert list(local_data.rglob("*")) == []
