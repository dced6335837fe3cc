"""The pipeline on live Airflow processes with the data in a real S3 server (SeaweedFS on loopback).

Every Airflow process gets ``TAXIFLOW_DATA_DIR=s3://...`` and the ``taxiflow_storage`` connection,
and the local data folder it is also given stays empty: nothing reaches the shared disk. Files are
dropped into the bucket (data first, ``_SUCCESS`` last), a month is ingested by the CLI, a report is
asked for with ``airflow dags trigger --conf``, and its CSV (read through the manifest) equals an
independent pandas count. Run under the heavy lock.
"""

from __future__ import annotations

import io
import json
import tempfile
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from taxiflow.config import DATA_DIR_ENV, INGEST_DAG_ID, REPORT_DAG_ID, SUCCESS_MARKER, DataPaths, Partition
from tests.e2e.test_pipeline import expected_counts, wait_for_run_at
from tests.support.live import FAST_WAITS, live_deployment

pytestmark = [pytest.mark.e2e, pytest.mark.s3]


@pytest.fixture(scope="module")
def s3_stack(seaweedfs, tmp_path_factory):
    env = seaweedfs.env(prefix="e2e")
    local_data = tmp_path_factory.mktemp("unused-local-data")
    with live_deployment("e2e-s3", data_dir=local_data, extra_env={**FAST_WAITS, **env}) as stack:
        yield stack, env, local_data


def test_a_month_in_a_bucket_is_ingested_and_reported_with_the_right_numbers(s3_stack, tlc_dir, monkeypatch):
    from taxiflow.data import storage, warehouse
    from taxiflow.local.demo import generate_month
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
    assert storage.files_below(root.warehouse / "trips") == [
        f"source={s}/month=2024-01/{f}" for s in ("green", "yellow") for f in ("_summary.json", "trips.parquet")
    ]
    assert list(local_data.rglob("*")) == []  # nothing was written to the local disk's data folder
