"""``TlcDownloadOperator`` lands a month in the data root on both backends: a local folder and a bucket.

TLC is the loopback look-alike of ``tests/support/tlc_server.py`` serving real TLC files; the bucket is a real
SeaweedFS (``s3`` cases: run them under the heavy lock). A month lands as
``landing/<source>/<YYYY-MM>/<file>`` then ``_SUCCESS`` (size and sha256 of the file), which the
drop sensor's rules accept and the ingest reads.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from taxiflow.components.operators import TlcDownloadOperator
from taxiflow.config import SUCCESS_MARKER, Partition
from taxiflow.data import documents, ingest, landing, storage
from taxiflow.data.raw import copy_to_raw
from tests.support.tlc_server import TlcServer, tlc_layout

SAMPLES = Path(__file__).resolve().parents[2] / "data" / "tlc"  # shipped with the repository
GREEN_DEC = SAMPLES / "green" / "green_tripdata_2023-12.parquet"
DECEMBER = Partition("green", "2023-12")

pytestmark = pytest.mark.skipif(not GREEN_DEC.is_file(), reason=f"TLC samples not found at {SAMPLES}")


@pytest.fixture
def tlc(monkeypatch):
    with TlcServer(tlc_layout(SAMPLES)) as server:
        monkeypatch.setenv("AIRFLOW_CONN_NYC_TLC", server.base_url)
        yield server


def test_a_downloaded_month_lands_in_the_data_root_marker_last_and_ingests(tlc, any_root):
    landed = TlcDownloadOperator(task_id="download", source="green", month="2023-12").execute({})

    folder = any_root.landing_dir(DECEMBER)
    data_file = folder / GREEN_DEC.name
    assert landed == storage.url(data_file)
    content = documents.read_bytes(data_file)
    assert content == GREEN_DEC.read_bytes()
    marker = json.loads(documents.read_bytes(folder / SUCCESS_MARKER))
    assert marker == {"file": GREEN_DEC.name, "bytes": len(content), "sha256": hashlib.sha256(content).hexdigest()}
    assert storage.info(folder / SUCCESS_MARKER)["modified"] >= storage.info(data_file)["modified"]
    assert [entry.name for entry in documents.list_files(folder)[0]] == [SUCCESS_MARKER, GREEN_DEC.name]  # no .part
    assert documents.read_bytes(any_root.zone_table) == (SAMPLES / "taxi_zone_lookup.csv").read_bytes()

    assert landing.drop_is_ready(DECEMBER)  # the drop sensor's rules accept it
    copy_to_raw(DECEMBER)
    import pandas as pd

    assert ingest.process_partition(DECEMBER)["rows_read"] == len(pd.read_parquet(GREEN_DEC))


def test_a_failed_download_leaves_no_object_and_no_marker(tlc, any_root):
    tlc.status_for["/trip-data/green_tripdata_2023-12.parquet"] = 500
    operator = TlcDownloadOperator(task_id="download", source="green", month="2023-12",
                                   max_attempts=2, retry_wait_seconds=0.01)
    with pytest.raises(Exception, match="500"):
        operator.execute({})
    assert documents.list_files(any_root.landing_dir(DECEMBER))[0] == []


def test_the_drop_event_takes_the_facts_of_the_download_without_reading_the_file_again(
        tlc, any_root, s3_requests, monkeypatch):
    from airflow.sdk.execution_time.context import OutletEventAccessors

    from taxiflow.components import lineage

    def read_again(path):
        raise AssertionError(f"{path} was read again for its facts")

    monkeypatch.setattr(storage, "sha256", read_again)
    events = OutletEventAccessors()  # what a running task's context holds
    TlcDownloadOperator(task_id="download", source="green", month="2023-12").execute({"outlet_events": events})
    requests = dict(s3_requests)

    content = documents.read_bytes(any_root.landing_dir(DECEMBER) / GREEN_DEC.name)
    drop = events[lineage.drop_asset("green", any_root)]
    assert drop.partition_keys == {"2023-12"}
    assert drop.extra["files"] == [{"name": GREEN_DEC.name, "bytes": len(content),
                                    "sha256": hashlib.sha256(content).hexdigest()}]
    assert "get_object" not in requests  # on S3: the upload was its only transfer (nothing on local disk)
