"""The lineage facts of one month's tasks on both backends (``any_root``: a local folder and a real
SeaweedFS on loopback), against an independent sha256 of each object's bytes as the store serves them.

The trips and metrics files' facts are taken from the task's local file before upload, and the raw
copy's from the bytes ``copy_to_raw`` copied, never read back from the store; these tests prove they
are still the bytes and sha256 of what was stored. The
``s3`` runs start SeaweedFS: run them under the heavy lock
(``flock /tmp/taxiflow-heavy.lock .venv/bin/python -m pytest tests/unit/components/test_lineage_backends.py``).
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime

import pytest

from taxiflow.components import lineage
from taxiflow.config import SUCCESS_MARKER, Partition
from taxiflow.data import ingest, metrics, storage, warehouse
from taxiflow.data.raw import STAGED_FILE, copy_to_raw
from tests.support import trip_files
from tests.support.trip_files import minutes

JANUARY = Partition("green", "2024-01")


def stored(path) -> dict:
    """Name, size and sha256 of what the store serves for ``path`` (a plain GET, not taxiflow's code)."""
    data = path.read_bytes()
    return {"name": path.name, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def test_every_event_names_the_bytes_and_sha256_of_the_stored_objects(any_root):
    dropped = trip_files.green_parquet(minutes(datetime(2024, 1, 2, 7, 0), 500), (236, 161, 132, 7, 265))
    landing = any_root.landing_dir(JANUARY)
    storage.write_bytes(landing / "green_tripdata_2024-01.parquet", dropped)
    storage.write_bytes(landing / SUCCESS_MARKER, b"")

    seen = lineage.drop_facts(JANUARY, any_root)
    drop = lineage.drop_event(JANUARY, seen)
    copied = copy_to_raw(JANUARY, any_root, seen)  # as the DAG's copy task, with the sensor's facts
    raw = lineage.raw_event(JANUARY, copied, any_root)
    summary = ingest.process_partition(JANUARY, any_root)
    trips = lineage.partition_event(summary)
    result = metrics.refresh_metrics(JANUARY, any_root)
    built = lineage.metrics_event(result)

    expected_drop = {"name": "green_tripdata_2024-01.parquet", "bytes": len(dropped),
                     "sha256": hashlib.sha256(dropped).hexdigest()}
    assert drop["files"] == [expected_drop]
    published_raw = any_root.raw_dir(JANUARY) / summary["raw_version"]  # the version the partition names
    assert raw["staged_in"] == storage.url(published_raw)
    assert raw["files"] == [stored(published_raw / "green_tripdata_2024-01.parquet")] == [expected_drop]
    trips_file = stored(warehouse.trips_file(JANUARY, any_root))
    assert (trips["file"], trips["bytes"], trips["sha256"]) == (
        trips_file["name"], trips_file["bytes"], trips_file["sha256"])
    assert trips["rows_written"] == 500
    on_store = json.loads((any_root.trips_dir(JANUARY) / warehouse.SUMMARY_FILE).read_text())
    assert on_store["trips_file"] == trips_file  # the partition's own _summary.json says the same
    assert built["files"] == [
        {**stored(warehouse.metrics_file(table, JANUARY, any_root)), "name": f"{table}/{warehouse.METRICS_FILE}"}
        for table in (warehouse.HOURLY_ZONE, warehouse.HOURLY_BOROUGH)
    ]
    assert built["bytes"] == sum(f["bytes"] for f in built["files"])
    json.dumps([drop, raw, trips, built])  # what the execution API stores must be JSON


def test_a_re_ingest_names_the_new_trips_file_not_the_old(any_root):
    landing = any_root.landing_dir(JANUARY)
    for rows in (300, 450):  # a re-drop: another file, another partition version
        data = trip_files.green_parquet(minutes(datetime(2024, 1, 9, 6, 0), rows), (236, 161))
        storage.write_bytes(landing / "green_tripdata_2024-01.parquet", data)
        storage.write_bytes(landing / SUCCESS_MARKER, b"")
        copy_to_raw(JANUARY, any_root)
        summary = ingest.process_partition(JANUARY, any_root)
        trips = lineage.partition_event(summary)
        assert trips["rows_written"] == rows
        assert trips["sha256"] == stored(warehouse.trips_file(JANUARY, any_root))["sha256"]


def test_a_drop_replaced_after_the_sensor_hashed_it_is_staged_with_its_own_facts(any_root):
    """The sensor's facts are reused only for the object it hashed: a drop replaced between the
    sensor and the copy (another ETag on S3) is hashed again, from the bytes copied."""
    landing = any_root.landing_dir(JANUARY)
    dropped = landing / "green_tripdata_2024-01.parquet"
    storage.write_bytes(dropped, trip_files.green_parquet(minutes(datetime(2024, 1, 2, 7, 0), 50), (236,)))
    storage.write_bytes(landing / SUCCESS_MARKER, b"")
    seen = lineage.drop_facts(JANUARY, any_root)
    storage.write_bytes(dropped, trip_files.green_parquet(minutes(datetime(2024, 1, 3, 7, 0), 80), (161,)))

    copied = copy_to_raw(JANUARY, any_root, seen)

    raw = lineage.raw_event(JANUARY, copied, any_root)
    assert raw["files"] == [stored(copied[0])] == [stored(dropped)] != [
        {key: seen[0][key] for key in ("name", "bytes", "sha256")}]
    assert ingest.process_partition(JANUARY, any_root)["rows_written"] == 80


@pytest.mark.s3
@pytest.mark.parametrize("with_sensor_facts", [False, True])
def test_a_drop_replaced_after_it_was_listed_is_not_copied(seaweedfs, monkeypatch, with_sensor_facts):
    """On S3 the copy and the hash of its bytes hold only for the object as listed (its ETag): a drop
    another host replaced meanwhile fails the copy, and nothing is staged with the wrong facts, even
    with the sensor's facts of the object as listed."""
    for name, value in seaweedfs.env(prefix="replaced-after-listing").items():
        monkeypatch.setenv(name, value)
    paths = storage.data_paths()
    landing = paths.landing_dir(JANUARY)
    dropped = landing / "green_tripdata_2024-01.parquet"
    storage.write_bytes(dropped, trip_files.green_parquet(minutes(datetime(2024, 1, 2, 7, 0), 50), (236,)))
    storage.write_bytes(landing / SUCCESS_MARKER, b"")
    seen = lineage.drop_facts(JANUARY, paths) if with_sensor_facts else None
    listed = storage.list_dir(landing)  # what copy_to_raw's listing finds, cached with each ETag
    fs = dropped.fs
    bucket, _, key = dropped.path.partition("/")
    fs.call_s3("put_object", Bucket=bucket, Key=key, Body=b"another host's bytes")  # leaves the listing cached
    monkeypatch.setattr(storage, "list_dir", lambda folder: listed if folder == landing else [])

    with pytest.raises(OSError):
        copy_to_raw(JANUARY, paths, seen)

    assert storage.files_below(paths.raw_dir(JANUARY)) == []
    assert not (paths.raw_dir(JANUARY) / STAGED_FILE).exists()
