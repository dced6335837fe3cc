"""The data layer on both backends: a local folder and a real S3 server (SeaweedFS on loopback).

Each test runs twice (``any_root``: ``local`` and ``s3``); the ``s3`` runs start SeaweedFS once per
session, so run them under the heavy lock: ``flock /tmp/taxiflow-heavy.lock .venv/bin/python -m
pytest tests/unit/data/test_storage_backends.py``.
"""

from __future__ import annotations

import io
import json
import threading
from datetime import datetime

import pandas as pd
import pytest

from taxiflow.config import DATA_DIR_ENV, STORAGE_CONN_ENV, SUCCESS_MARKER, DataPaths, Partition
from taxiflow.data import check_storage, conditional, ingest, landing, metrics, storage, warehouse
from taxiflow.data.raw import copy_to_raw, raw_files
from tests.support import trip_files
from tests.support.trip_files import minutes

JANUARY = Partition("green", "2024-01")


def green_parquet(rows: int, first: datetime, zones=(236, 161, 132, 7, 265)) -> bytes:
    """A green file: ``rows`` pickups a minute apart from ``first``, their zones cycling through ``zones``."""
    return trip_files.green_parquet(minutes(first, rows), zones)


def drop(paths: DataPaths, partition: Partition, files: dict[str, bytes], marker: bool = True) -> None:
    """What an upstream system does: data files first, ``_SUCCESS`` last."""
    folder = paths.landing_dir(partition)
    for name, content in files.items():
        storage.write_bytes(folder / name, content)
    if marker:
        storage.write_bytes(folder / SUCCESS_MARKER, b"")


def test_a_month_goes_from_drop_to_queryable_metrics(any_root):
    data = green_parquet(300, datetime(2024, 1, 3, 8, 0))
    drop(any_root, JANUARY, {"green_tripdata_2024-01.parquet": data})
    assert landing.drop_is_ready(JANUARY)
    copy_to_raw(JANUARY)
    summary = ingest.process_partition(JANUARY)
    result = metrics.build_metrics(JANUARY)
    weekly = metrics.write_weekly_summary("green")

    expected = pd.read_parquet(io.BytesIO(data))
    zones = pd.read_csv(warehouse.PACKAGED_ZONE_TABLE)
    expected_by_borough = (
        expected.merge(zones, left_on="PULocationID", right_on="LocationID")
        .groupby("Borough").size().to_dict()
    )
    assert summary["rows_written"] == len(expected) == result["trips"]
    assert result["boroughs"] == expected_by_borough
    con = warehouse.connect()
    try:
        by_borough = dict(con.execute(
            "SELECT borough, sum(trips)::BIGINT FROM hourly_borough WHERE source = 'green' GROUP BY ALL"
        ).fetchall())
        assert con.execute("SELECT count(*) FROM trips WHERE month = '2024-01'").fetchone() == (len(expected),)
    finally:
        con.close()
    assert by_borough == expected_by_borough
    assert weekly.read_text().splitlines()[1].startswith("2024-01-01,300,300,")
    assert ingest.read_summary(JANUARY)["raw_files"][0]["bytes"] == len(data)

    from taxiflow.reports import outputs, render  # the report reads the same metrics, twice (cached connection)
    from taxiflow.reports.request import ReportRequest

    january = {"borough": "Manhattan", "start_date": "2024-01-01", "end_date": "2024-02-01", "sources": ["green"]}
    for name in ("manhattan_jan", "manhattan_jan_again"):
        published = render.render_report(ReportRequest.from_conf({**january, "name": name}))
        assert published.total_trips == expected_by_borough["Manhattan"]
        report = outputs.read_report(name)
        assert report is not None and pd.read_csv(io.BytesIO(report.csv))["num_trips"].sum() == published.total_trips


def test_a_second_drop_replaces_the_partition(any_root):
    drop(any_root, JANUARY, {"a.parquet": green_parquet(50, datetime(2024, 1, 5))})
    copy_to_raw(JANUARY)
    ingest.process_partition(JANUARY)
    folder = any_root.landing_dir(JANUARY)
    storage.remove(folder / "a.parquet")
    storage.remove(folder / SUCCESS_MARKER)
    drop(any_root, JANUARY, {"b.parquet": green_parquet(20, datetime(2024, 1, 9))})
    copy_to_raw(JANUARY)
    summary = ingest.process_partition(JANUARY)
    assert summary["rows_written"] == 20
    assert [f.name for f in raw_files(JANUARY)] == ["b.parquet"]
    # one copy of the drop, in the raw version the partition names; the superseded one is gone
    expected = sorted([f"{summary['raw_version']}/b.parquet", "_staged.json"])
    assert storage.files_below(any_root.raw_dir(JANUARY)) == expected
    con = warehouse.connect()
    try:
        assert con.execute("SELECT count(*) FROM trips").fetchone() == (20,)
    finally:
        con.close()


def test_a_trips_partition_without_its_summary_is_invisible(any_root):
    """``_summary.json`` is written last: until it is there, readers do not see the partition."""
    drop(any_root, JANUARY, {"a.parquet": green_parquet(30, datetime(2024, 1, 5))})
    copy_to_raw(JANUARY)
    ingest.process_partition(JANUARY)
    summary = any_root.trips_dir(JANUARY) / warehouse.SUMMARY_FILE
    document = summary.read_bytes()
    storage.remove(summary)  # as between the partition's upload and its summary's
    con = warehouse.connect()
    try:
        assert "trips" not in {name for (name,) in con.execute("SHOW TABLES").fetchall()}
    finally:
        con.close()
    storage.write_bytes(summary, document)
    con = warehouse.connect()
    try:
        assert con.execute("SELECT count(*) FROM trips").fetchone() == (30,)
    finally:
        con.close()


def test_a_drop_without_marker_is_not_ready(any_root):
    drop(any_root, JANUARY, {"a.parquet": green_parquet(5, datetime(2024, 1, 5))}, marker=False)
    assert not landing.drop_is_ready(JANUARY)
    assert f"waiting for {SUCCESS_MARKER}" in landing.describe_drop(JANUARY)


def test_the_zone_table_ships_with_the_package(any_root):
    """An empty data root (a bare bucket) is enough: the zone table comes with taxiflow."""
    zones = warehouse.load_zones()
    assert len(zones) >= 263 and set(zones["borough"]) >= {"Manhattan", "Brooklyn", "Unknown"}


def test_of_two_claimers_exactly_one_wins(any_root):
    target = any_root.requests / ".claims" / "report.json"
    results: list[bool] = []
    barrier = threading.Barrier(4)

    def claim(n: int) -> None:
        barrier.wait()
        results.append(conditional.create_exclusive(target, json.dumps({"by": n}).encode()))

    threads = [threading.Thread(target=claim, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False, False, False, True]
    winner = json.loads(target.read_text())["by"]
    assert results.count(True) == 1 and 0 <= winner < 4


def test_a_replace_with_a_stale_version_loses(any_root):
    manifest = any_root.outputs / "report" / "manifest.json"
    conditional.replace_if_match(manifest, b'{"version": 1}', None)
    with pytest.raises(conditional.PreconditionFailed):
        conditional.replace_if_match(manifest, b'{"version": 0}', None)  # a second "new" manifest loses
    first = conditional.etag(manifest)
    conditional.replace_if_match(manifest, b'{"version": 2}', first)
    with pytest.raises(conditional.PreconditionFailed):
        conditional.replace_if_match(manifest, b'{"version": 3}', first)  # read before version 2: stale
    assert json.loads(manifest.read_text()) == {"version": 2}


@pytest.mark.parametrize("any_root", [pytest.param("s3", marks=pytest.mark.s3)], indirect=True)  # object stores only
def test_a_zero_byte_object_in_a_drop_is_refused(any_root):
    drop(any_root, JANUARY, {"a.parquet": green_parquet(5, datetime(2024, 1, 5)), "b.parquet": b""})
    with pytest.raises(landing.UnsafeDropError, match=r"b\.parquet: it is empty \(0 bytes\)"):
        landing.drop_is_ready(JANUARY)


@pytest.mark.parametrize("any_root", [pytest.param("s3", marks=pytest.mark.s3)], indirect=True)  # object stores only
def test_a_marker_older_than_a_data_file_does_not_count(any_root):
    folder = any_root.landing_dir(JANUARY)
    storage.write_bytes(folder / SUCCESS_MARKER, b"")
    import time

    time.sleep(1.1)  # S3 LastModified has one-second resolution
    storage.write_bytes(folder / "a.parquet", green_parquet(5, datetime(2024, 1, 5)))
    assert not landing.drop_is_ready(JANUARY)
    assert "_SUCCESS is older than a.parquet" in landing.describe_drop(JANUARY)
    storage.write_bytes(folder / SUCCESS_MARKER, b"")  # written again, last: now it counts
    assert landing.drop_is_ready(JANUARY)


@pytest.mark.s3
@pytest.mark.parametrize(
    ("case", "words"),
    [
        ("wrong keys", ["access denied", "key and secret"]),
        ("missing bucket", ["bucket", "does not exist"]),
        ("unreachable", ["unreachable"]),
    ],
)
def test_a_bad_s3_root_is_named_with_its_connection(seaweedfs, monkeypatch, case, words):
    import uuid

    from tests.support.seaweedfs import free_ports

    conn_id = f"taxiflow_check_{uuid.uuid4().hex[:8]}"  # a connection of its own: no cached filesystem
    connection = seaweedfs.connection()
    bucket = seaweedfs.bucket
    if case == "wrong keys":
        connection["password"] = "not-the-secret"
    elif case == "missing bucket":
        bucket = "no-such-bucket"
    else:
        connection["extra"] = {**connection["extra"], "endpoint_url": f"http://127.0.0.1:{free_ports(1)[0]}"}
        connection["extra"]["config_kwargs"] = {"connect_timeout": 1, "retries": {"max_attempts": 1}}
    monkeypatch.setenv(DATA_DIR_ENV, f"s3://{bucket}/data")
    monkeypatch.setenv(STORAGE_CONN_ENV, conn_id)
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(connection))
    with pytest.raises(storage.StorageError) as raised:
        check_storage.check_root()
    message = str(raised.value)
    assert f"s3://{bucket}/data" in message and repr(conn_id) in message
    for word in words:
        assert word in message


def test_a_data_root_that_is_no_s3_url_is_refused(monkeypatch):
    monkeypatch.setenv(DATA_DIR_ENV, "gs://bucket/data")
    with pytest.raises(ValueError, match=r"TAXIFLOW_DATA_DIR must be a local folder or s3://<bucket>/<prefix>"):
        storage.root()


def test_the_metrics_partitions_are_found_by_one_listing_and_fetched_together(any_root):
    """Only ``month=YYYY-MM/part.parquet`` counts, oldest month first; the copies hold each file's bytes, in order."""
    table_dir = any_root.metrics_source_dir(warehouse.HOURLY_BOROUGH, "green")
    for name in ("month=2024-02/part.parquet", "month=2023-12/part.parquet", "month=latest/part.parquet",
                 "month=2024-01/other.parquet", "month=2024-03/nested/part.parquet"):
        storage.write_bytes(table_dir / name, name.encode())
    found = warehouse.metrics_partitions(warehouse.HOURLY_BOROUGH, "green", any_root)
    assert [file.parent.name for file in found] == ["month=2023-12", "month=2024-02"]
    with storage.local_copies(found) as copies:
        assert [copy.read_bytes() for copy in copies] == [b"month=2023-12/part.parquet", b"month=2024-02/part.parquet"]
    if storage.is_remote(found[0]):  # the copies were temporary: gone after the block
        assert not any(copy.exists() for copy in copies)
    assert warehouse.metrics_partitions(warehouse.HOURLY_BOROUGH, "yellow", any_root) == []  # nothing there
