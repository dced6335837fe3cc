"""Trips partitions are published as versions: a re-ingest never shows old and new mixed.

Each test runs on both backends (``any_root``: a local folder, and a real S3 server, SeaweedFS on
loopback, marked ``s3``: run those under the heavy lock, ``flock /tmp/taxiflow-heavy.lock
.venv/bin/python -m pytest tests/unit/data/test_versioned_partitions.py``).
"""

from __future__ import annotations

import io
import json
import tempfile
from datetime import datetime, timedelta

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from taxiflow.config import SUCCESS_MARKER, DataPaths, Partition
from taxiflow.data import ingest, metrics, storage, versions, warehouse
from taxiflow.data.raw import copy_to_raw
from tests.support import trip_files
from tests.support.trip_files import minutes

JANUARY, DECEMBER = Partition("green", "2024-01"), Partition("green", "2023-12")


def green_parquet(pickups: list[datetime], zone: int = 236) -> bytes:
    """A green file, one nine-minute trip from ``zone`` per pickup time."""
    return trip_files.green_parquet(pickups, (zone,), trip_time=timedelta(minutes=9))


def ingest_drop(paths: DataPaths, partition: Partition, data: bytes) -> dict:
    """A new drop of the month (data first, ``_SUCCESS`` last), staged and processed."""
    folder = paths.landing_dir(partition)
    storage.remove_tree(folder)
    storage.write_bytes(folder / f"green_tripdata_{partition.month}.parquet", data)
    storage.write_bytes(folder / SUCCESS_MARKER, b"")
    copy_to_raw(partition)
    return ingest.process_partition(partition)


def trips_by_month() -> dict[str, int]:
    """What a reader of the warehouse sees: trips per month in the ``trips`` view."""
    con = warehouse.connect()
    try:
        if "trips" not in {name for (name,) in con.execute("SHOW TABLES").fetchall()}:
            return {}
        return dict(con.execute("SELECT month, count(*)::INTEGER FROM trips GROUP BY ALL").fetchall())
    finally:
        con.close()


def test_a_reingest_publishes_one_new_version_and_removes_the_old(any_root):
    first = ingest_drop(any_root, JANUARY, green_parquet(minutes(datetime(2024, 1, 5), 30)))
    second = ingest_drop(any_root, JANUARY, green_parquet(minutes(datetime(2024, 1, 9), 20)))

    assert versions.is_version(first["version"]) and second["version"] > first["version"]
    assert storage.files_below(any_root.trips_dir(JANUARY)) == [
        "_summary.json", f"{second['version']}/trips.parquet",
    ]
    assert ingest.read_summary(JANUARY) == second
    assert trips_by_month() == {"2024-01": 20}


def test_readers_see_the_old_version_whole_until_the_summary_names_the_new(any_root):
    """The state a reader meets mid re-ingest: the new version's data written, its summary not yet."""
    ingest_drop(any_root, JANUARY, green_parquet(minutes(datetime(2024, 1, 5), 30)))
    metrics.build_metrics(JANUARY)
    folder = any_root.trips_dir(JANUARY)
    before = versions.read_marker(folder, warehouse.SUMMARY_FILE)
    assert before is not None

    staged = versions.new_version()  # what process_partition writes first
    storage.write_bytes(folder / staged / warehouse.TRIPS_FILE, _trips_parquet(any_root, 7))
    assert trips_by_month() == {"2024-01": 30}
    assert metrics.build_metrics(JANUARY)["trips"] == 30
    assert warehouse.published_trips(JANUARY).version == before.version  # type: ignore[union-attr]

    removed = versions.publish(folder, warehouse.SUMMARY_FILE, {**before.document, "version": staged}, replaces=before)
    assert trips_by_month() == {"2024-01": 7}
    assert removed == [before.version]
    assert storage.files_below(folder) == ["_summary.json", f"{staged}/trips.parquet"]


def test_a_publish_based_on_a_superseded_summary_loses_and_leaves_nothing(any_root):
    """Two writers of one partition (e.g. a process task on another host): the second to publish loses."""
    ingest_drop(any_root, JANUARY, green_parquet(minutes(datetime(2024, 1, 5), 30)))
    folder = any_root.trips_dir(JANUARY)
    read_by_the_slow_writer = versions.read_marker(folder, warehouse.SUMMARY_FILE)
    winner = ingest_drop(any_root, JANUARY, green_parquet(minutes(datetime(2024, 1, 9), 20)))

    late = versions.new_version()
    storage.write_bytes(folder / late / warehouse.TRIPS_FILE, _trips_parquet(any_root, 5))
    with pytest.raises(versions.PreconditionFailed):
        versions.publish(folder, warehouse.SUMMARY_FILE, {"version": late}, replaces=read_by_the_slow_writer)
    with pytest.raises(versions.PreconditionFailed):  # a partition that appeared since: "create" loses too
        versions.publish(folder, warehouse.SUMMARY_FILE, {"version": late}, replaces=None)
    versions.remove_version(folder, late)
    assert ingest.read_summary(JANUARY) == winner
    assert storage.files_below(folder) == ["_summary.json", f"{winner['version']}/trips.parquet"]


def test_a_refused_redrop_and_an_interrupted_one_leave_the_published_version_alone(any_root):
    good = ingest_drop(any_root, JANUARY, green_parquet(minutes(datetime(2024, 1, 5), 30)))
    folder = any_root.trips_dir(JANUARY)
    with pytest.raises(ingest.DropRefused, match="have pickups outside 2024-01"):
        ingest_drop(any_root, JANUARY, green_parquet(minutes(datetime(2024, 3, 5), 30)))
    assert storage.files_below(folder) == ["_summary.json", f"{good['version']}/trips.parquet"]

    # A worker killed after staging its version, before the summary: an orphan readers never see,
    # removed by the next publish.
    orphan = versions.new_version()
    storage.write_bytes(folder / orphan / warehouse.TRIPS_FILE, b"half")
    assert trips_by_month() == {"2024-01": 30}
    after = ingest_drop(any_root, JANUARY, green_parquet(minutes(datetime(2024, 1, 9), 20)))
    assert storage.files_below(folder) == ["_summary.json", f"{after['version']}/trips.parquet"]


def test_a_partition_written_before_versions_is_read_and_then_replaced(any_root):
    """Warehouses written by earlier releases: trips.parquet beside a summary that names no version."""
    folder = any_root.trips_dir(JANUARY)
    storage.write_bytes(folder / warehouse.TRIPS_FILE, _trips_parquet(any_root, 12))
    storage.write_bytes(folder / warehouse.SUMMARY_FILE, json.dumps({"source": "green", "month": "2024-01"}).encode())
    assert trips_by_month() == {"2024-01": 12}
    assert metrics.build_metrics(JANUARY)["trips"] == 12

    summary = ingest_drop(any_root, JANUARY, green_parquet(minutes(datetime(2024, 1, 9), 20)))
    assert storage.files_below(folder) == ["_summary.json", f"{summary['version']}/trips.parquet"]
    assert trips_by_month() == {"2024-01": 20}


def test_strays_count_once_on_both_backends(any_root):
    """A December trip in January's file counts in December's metrics once; a re-drop does not add it again."""
    stray = datetime(2023, 12, 31, 23, 38, 54)
    january = green_parquet([*minutes(datetime(2024, 1, 5), 200), stray])
    ingest_drop(any_root, DECEMBER, green_parquet(minutes(datetime(2023, 12, 31, 23, 0), 10)))
    metrics.refresh_metrics(DECEMBER)
    for _ in range(2):
        ingest_drop(any_root, JANUARY, january)
        assert metrics.refresh_metrics(JANUARY)["neighbours_rebuilt"] == ["2023-12"]
        assert metrics.build_metrics(DECEMBER)["trips"] == 11
    assert trips_by_month() == {"2023-12": 11, "2024-01": 200}


def test_an_ingest_and_its_metrics_leave_no_local_copy_behind(any_root, tmp_path, monkeypatch):
    """On S3 the drop, the new trips file and the trips metrics read are local copies: all gone afterwards."""
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    ingest_drop(any_root, JANUARY, green_parquet(minutes(datetime(2024, 1, 5), 30)))
    assert metrics.build_metrics(JANUARY)["trips"] == 30
    with pytest.raises(ingest.DropRefused):  # refused after its download: nothing uploaded, nothing left
        ingest_drop(any_root, JANUARY, green_parquet(minutes(datetime(2024, 3, 5), 30)))
    assert trips_by_month() == {"2024-01": 30}
    assert list(scratch.iterdir()) == []


def _trips_parquet(paths: DataPaths, rows: int) -> bytes:
    """``rows`` trips in the warehouse's own trip schema, as an earlier release stored them."""
    con = warehouse.duckdb_connection(paths)
    try:
        table = con.execute(
            "SELECT TIMESTAMP '2024-01-04 10:00:00' + to_minutes(range::BIGINT) AS pickup_at, "
            "TIMESTAMP '2024-01-04 10:09:00' + to_minutes(range::BIGINT) AS dropoff_at, "
            "236 AS pickup_zone_id, 236 AS dropoff_zone_id, 1 AS passenger_count, 2.0 AS trip_distance, "
            "10.0 AS fare_amount, 1.0 AS tip_amount, 12.0 AS total_amount, 2 AS vendor_id, 1 AS payment_type "
            "FROM range(?)", [rows],
        ).df()
    finally:
        con.close()
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(table, preserve_index=False), buffer)
    return buffer.getvalue()


def test_every_reingest_costs_the_same_requests_however_many_came_before(any_root, s3_requests):
    """SeaweedFS keeps listing a version folder whose objects were deleted: a re-ingest must not walk
    those (a listing and a HEAD each, more every time); on both backends only the current versions stay."""
    sent_by_ingest = []
    for day in range(1, 6):
        before = s3_requests.copy()
        summary = ingest_drop(any_root, JANUARY, green_parquet(minutes(datetime(2024, 1, day), 10)))
        sent_by_ingest.append(s3_requests - before)

    assert sent_by_ingest[1] == sent_by_ingest[-1]  # the first has nothing to supersede
    raw_dir = any_root.raw_dir(JANUARY)
    assert [name for name in storage.names_in(raw_dir) if versions.is_version(name)] == [summary["raw_version"]]
    assert [name for name in storage.names_in(any_root.trips_dir(JANUARY)) if versions.is_version(name)] == [
        summary["version"]]
