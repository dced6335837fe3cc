"""From a drop in landing to a normalised trips partition: copy, read, map, count, replace."""

from __future__ import annotations

import gzip
import json
from datetime import datetime

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from taxiflow.config import SUCCESS_MARKER, TRIP_SCHEMA, Partition
from taxiflow.data import ingest, strays, warehouse
from taxiflow.data.raw import STAGED_FILE, copy_to_raw, raw_files

YELLOW_CSV_HEADER = (
    "vendor_id,pickup_datetime,dropoff_datetime,passenger_count,trip_distance,"
    "pickup_location_id,dropoff_location_id,payment_type,fare_amount,tip_amount,total_amount"
)


def yellow_parquet(path, pickups, zones, passengers=None):
    """A small file in TLC's own yellow parquet schema (as downloaded)."""
    n = len(pickups)
    table = pa.table({
        "VendorID": pa.array([2] * n, pa.int32()),
        "tpep_pickup_datetime": pa.array(pickups, pa.timestamp("us")),
        "tpep_dropoff_datetime": pa.array(pickups, pa.timestamp("us")),
        "passenger_count": pa.array(passengers or [1] * n, pa.int64()),
        "trip_distance": pa.array([1.5] * n, pa.float64()),
        "RatecodeID": pa.array([1] * n, pa.int64()),
        "PULocationID": pa.array(zones, pa.int32()),
        "DOLocationID": pa.array([236] * n, pa.int32()),
        "payment_type": pa.array([1] * n, pa.int64()),
        "fare_amount": pa.array([10.0] * n, pa.float64()),
        "tip_amount": pa.array([2.0] * n, pa.float64()),
        "total_amount": pa.array([14.5] * n, pa.float64()),
    })
    pq.write_table(table, path)
    return path


def land(data_root, source, month, files, marker=True):
    """Put files (name -> bytes, or name -> writer(path)) into landing, then the marker."""
    folder = data_root.landing_dir(Partition(source, month))
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        if callable(content):
            content(folder / name)
        else:
            (folder / name).write_bytes(content)
    if marker:
        (folder / SUCCESS_MARKER).touch()
    return folder


def ingest_month(data_root, source, month):
    copy_to_raw(Partition(source, month))
    return ingest.process_partition(Partition(source, month))


def written_trips(data_root, source, month):
    """The month's own trips as its published partition stores them (its strays of other months left out)."""
    start, end = strays.month_bounds(month)
    con = warehouse.duckdb_connection()
    try:
        return con.execute(
            "SELECT * FROM read_parquet(?, hive_partitioning = false) WHERE pickup_at >= ? AND pickup_at < ? "
            "ORDER BY pickup_at",
            [str(warehouse.trips_file(Partition(source, month), data_root)), start, end],
        ).df()
    finally:
        con.close()


# --- copy_to_raw -----------------------------------------------------------------------------------


def test_copy_to_raw_stages_data_files_only_and_leaves_landing_alone(data_root):
    folder = land(data_root, "green", "2024-01", {"a.csv": b"1", "b.parquet": b"2", "notes.txt": b"3"})
    before = sorted((p.name, p.read_bytes()) for p in folder.iterdir())

    copied = copy_to_raw(Partition("green", "2024-01"))

    raw_dir = data_root.raw_dir(Partition("green", "2024-01"))
    version = json.loads((raw_dir / STAGED_FILE).read_text())["version"]  # named once the copy is complete
    staged = raw_dir / version
    assert copied == [staged / "a.csv", staged / "b.parquet"]
    assert sorted(p.name for p in staged.iterdir()) == ["a.csv", "b.parquet"]
    assert sorted(p.name for p in raw_dir.iterdir()) == [STAGED_FILE, version]
    assert raw_files(Partition("green", "2024-01"), data_root) == []  # the month's raw changes only once validated
    assert sorted((p.name, p.read_bytes()) for p in folder.iterdir()) == before


def test_second_drop_replaces_raw_without_leftovers(data_root):
    old = b"lpep_pickup_datetime,PULocationID\n2024-01-02 10:00:00,4\n"
    land(data_root, "green", "2024-01", {"old-1.csv": old, "old-2.csv": old})
    ingest_month(data_root, "green", "2024-01")
    for path in data_root.landing_dir(Partition("green", "2024-01")).glob("old-*"):
        path.unlink()
    land(data_root, "green", "2024-01", {"new.csv": old})

    ingest_month(data_root, "green", "2024-01")

    summary = json.loads((data_root.trips_dir(Partition("green", "2024-01")) / "_summary.json").read_text())
    raw = data_root.raw_dir(Partition("green", "2024-01"))
    assert [p.name for p in raw_files(Partition("green", "2024-01"))] == ["new.csv"]
    assert sorted(p.name for p in raw.iterdir()) == [STAGED_FILE, summary["raw_version"]]  # the old copy is gone
    assert [p.name for p in (raw / summary["raw_version"]).iterdir()] == ["new.csv"]
    assert [p.name for p in raw.parent.iterdir()] == ["2024-01"]  # no staged, temp or retired folders


def test_copy_to_raw_without_data_files_names_the_folder(data_root):
    land(data_root, "yellow", "2024-02", {})
    with pytest.raises(FileNotFoundError, match=r"landing/yellow/2024-02"):
        copy_to_raw(Partition("yellow", "2024-02"))


# --- process_partition -----------------------------------------------------------------------------


def test_parquet_month_is_normalised_with_counts_in_summary(data_root):
    pickups = [
        datetime(2024, 1, 5, 8, 30), datetime(2024, 1, 31, 23, 59, 59),
        datetime(2023, 12, 31, 23, 50),  # filed in January, started in December: kept for December
        None,  # no pickup time: rejected
        datetime(2024, 1, 10, 12, 0),
    ] + [datetime(2024, 1, 20, 9, 0)] * 196  # so the stray row is under 1 % of the file, as in TLC's
    zones = [236, 132, 161, 236, 999] + [4] * 196  # 999 is in no zone table: kept, counted
    land(data_root, "yellow", "2024-01", {
        "yellow_tripdata_2024-01.parquet": lambda path: yellow_parquet(path, pickups, zones),
    })

    summary = ingest_month(data_root, "yellow", "2024-01")

    trips = written_trips(data_root, "yellow", "2024-01")
    assert list(trips.columns) == list(TRIP_SCHEMA)
    assert len(trips) == 199
    assert trips["pickup_at"].min() == datetime(2024, 1, 5, 8, 30)  # only January is stored
    assert sorted(set(trips["pickup_zone_id"])) == [4, 132, 236, 999]
    assert summary["rows_read"] == 201
    assert summary["rows_written"] == 199
    assert summary["rows_rejected"] == 1
    assert summary["rows_rejected_by_reason"] == {"pickup_at_missing": 1, "pickup_at_unparseable": 0}
    assert summary["rows_outside_month"] == 1
    assert summary["rows_outside_month_by_month"] == {"2023-12": 1}
    assert summary["strays_kept_by_month"] == {"2023-12": 1}
    assert (summary["rows_strays_kept"], summary["rows_strays_dropped"]) == (1, 0)
    assert summary["rows_read"] == summary["rows_written"] + summary["rows_rejected"] + summary["rows_outside_month"]
    assert summary["rows_unknown_zone"] == 1
    assert summary["pickup_min"] == "2023-12-31 23:50:00"
    assert summary["pickup_max"] == "2024-01-31 23:59:59"
    assert summary["files"] == [
        {"name": "yellow_tripdata_2024-01.parquet", "rows_read": 201, "rows_rejected": 1, "rows_outside_month": 1,
         "era": "yellow-2016-07"},
    ]
    assert summary["raw_files"] == [
        {"name": "yellow_tripdata_2024-01.parquet",
         "bytes": raw_files(Partition("yellow", "2024-01"))[0].stat().st_size},
    ]
    on_disk = json.loads((data_root.trips_dir(Partition("yellow", "2024-01")) / "_summary.json").read_text())
    assert on_disk == summary


def test_trips_file_is_parquet_v2_with_zstd_and_other_readers_read_it(data_root):
    """The warehouse's files are Parquet V2 pages (delta-encoded timestamps) compressed with zstd:
    smaller to store and move; pyarrow, pandas' reader, reads what DuckDB reads."""
    pickups = [datetime(2024, 1, 1) + (datetime(2024, 1, 2) - datetime(2024, 1, 1)) * i / 500 for i in range(500)]
    land(data_root, "yellow", "2024-01", {
        "yellow_tripdata_2024-01.parquet": lambda path: yellow_parquet(path, pickups, [236] * 500),
    })
    ingest_month(data_root, "yellow", "2024-01")

    path = warehouse.trips_file(Partition("yellow", "2024-01"), data_root)
    column = pq.ParquetFile(path).metadata.row_group(0).column(list(TRIP_SCHEMA).index("pickup_at"))
    assert column.compression == "ZSTD"
    assert "DELTA_BINARY_PACKED" in column.encodings
    from_pyarrow = pq.read_table(path).to_pandas().sort_values("pickup_at", ignore_index=True)
    from_duckdb = written_trips(data_root, "yellow", "2024-01")
    assert list(from_pyarrow.columns) == list(TRIP_SCHEMA)
    assert from_pyarrow["pickup_at"].tolist() == from_duckdb["pickup_at"].tolist()
    assert from_pyarrow["pickup_zone_id"].tolist() == from_duckdb["pickup_zone_id"].tolist()


def test_csv_with_mixed_line_endings_bad_values_and_renamed_columns(data_root):
    lines = [
        YELLOW_CSV_HEADER,
        "1,2019-01-15 03:36:12,2019-01-15 03:42:19,1,1.0,230,48,1,6.5,1.95,9.75",
        "2,2019-01-16 10:00:00,2019-01-16 10:20:00,,2.5,161,236,2,abc,0,13.3",  # bad fare: NULL
        "1,not a time,2019-01-16 10:20:00,1,2.5,161,236,2,10,0,13.3",  # unparseable: rejected
        "1,,2019-01-16 10:20:00,1,2.5,161,236,2,10,0,13.3",  # missing: rejected
        "2,01/20/2019 07:05:00 PM,01/20/2019 07:25:00 PM,2,3.0,264,1,1,12,2,16",  # TLC's US format
        "2,2019-01-31 23:59:00,2019-02-01 00:10:00,1,1.0,7,7,1,5,1,7",
    ]
    # CRLF on some lines, LF on others, as in TLC's 2019-01 and 2019-02 yellow samples.
    text = "".join(line + ("\r\n" if i % 2 else "\n") for i, line in enumerate(lines))
    land(data_root, "yellow", "2019-01", {"sample.csv": text.encode()})

    summary = ingest_month(data_root, "yellow", "2019-01")

    trips = written_trips(data_root, "yellow", "2019-01")
    assert summary["rows_read"] == 6
    assert summary["rows_written"] == len(trips) == 4
    assert summary["rows_rejected_by_reason"] == {"pickup_at_missing": 1, "pickup_at_unparseable": 1}
    assert list(trips["pickup_zone_id"]) == [230, 161, 264, 7]
    assert trips["pickup_at"].iloc[2] == datetime(2019, 1, 20, 19, 5)
    assert trips["fare_amount"].isna().tolist() == [False, True, False, False]
    assert trips["passenger_count"].isna().tolist() == [False, True, False, False]
    assert trips["trip_distance"].tolist() == [1.0, 2.5, 3.0, 1.0]


def test_several_files_of_one_month_are_read_together(data_root):
    csv_text = "LPEP_PICKUP_DATETIME,PULocationID\n2024-01-02 10:00:00,4\n2024-01-03 11:00:00,5\n"
    land(data_root, "green", "2024-01", {
        "part-1.csv.gz": gzip.compress(csv_text.encode()),
        "part-2.parquet": lambda p: pq.write_table(pa.table({
            "lpep_pickup_datetime": pa.array([datetime(2024, 1, 9, 9)], pa.timestamp("us")),
            "PULocationID": pa.array([74], pa.int64()),
        }), p),
    })

    summary = ingest_month(data_root, "green", "2024-01")

    assert summary["files"] == [
        {"name": "part-1.csv.gz", "rows_read": 2, "rows_rejected": 0, "rows_outside_month": 0,
         "era": "green-2016-07"},
        {"name": "part-2.parquet", "rows_read": 1, "rows_rejected": 0, "rows_outside_month": 0,
         "era": "green-2016-07"},
    ]
    trips = written_trips(data_root, "green", "2024-01")
    assert trips["pickup_zone_id"].tolist() == [4, 5, 74]
    assert trips["total_amount"].isna().all()  # columns the files lack are NULL


def test_files_of_two_eras_in_one_drop_are_refused_naming_both(data_root):
    land(data_root, "green", "2024-01", {
        "a.csv": b"pickup_datetime,pickup_location_id\n2024-01-02 10:00:00,4\n",
        "b.csv": b"lpep_pickup_datetime,PULocationID\n2024-01-02 10:00:00,4\n",
    })
    copy_to_raw(Partition("green", "2024-01"))
    with pytest.raises(ingest.DropRefused) as raised:
        ingest.process_partition(Partition("green", "2024-01"))
    message = str(raised.value)
    for word in ("a.csv: era green-snake-case", "b.csv: era green-2016-07", "2 column eras"):
        assert word in message
    assert not data_root.trips_dir(Partition("green", "2024-01")).exists()


def test_rerun_replaces_the_partition(data_root):
    three = [datetime(2024, 1, 1, 1)] * 3
    land(data_root, "yellow", "2024-01", {"a.parquet": lambda path: yellow_parquet(path, three, [4] * 3)})
    ingest_month(data_root, "yellow", "2024-01")
    ingest_month(data_root, "yellow", "2024-01")
    assert len(written_trips(data_root, "yellow", "2024-01")) == 3

    (data_root.landing_dir(Partition("yellow", "2024-01")) / "a.parquet").unlink()
    two = [datetime(2024, 1, 2, 1)] * 2
    land(data_root, "yellow", "2024-01", {"b.parquet": lambda path: yellow_parquet(path, two, [5] * 2)})
    summary = ingest_month(data_root, "yellow", "2024-01")

    assert summary["rows_written"] == 2
    assert written_trips(data_root, "yellow", "2024-01")["pickup_zone_id"].tolist() == [5, 5]
    # One version stays: the one _summary.json names; the superseded ones are gone.
    assert sorted(p.name for p in data_root.trips_dir(Partition("yellow", "2024-01")).iterdir()) == [
        "_summary.json", summary["version"],
    ]


def test_missing_pickup_column_names_file_column_and_candidates(data_root):
    csv_text = "when,pickup_location_id\n2024-01-02 10:00:00,4\n"
    land(data_root, "yellow", "2024-01", {"odd.csv": csv_text.encode()})
    copy_to_raw(Partition("yellow", "2024-01"))
    with pytest.raises(ValueError) as raised:
        ingest.process_partition(Partition("yellow", "2024-01"))
    message = str(raised.value)
    for word in ("odd.csv", "'pickup_at'", "tpep_pickup_datetime", "pickup_datetime", "when"):
        assert word in message
    assert not data_root.trips_dir(Partition("yellow", "2024-01")).exists()


def test_missing_pickup_zone_column_is_refused(data_root):
    csv_text = b"lpep_pickup_datetime,fare_amount\n2024-01-02 10:00:00,4\n"
    land(data_root, "green", "2024-01", {"nozone.csv": csv_text})
    copy_to_raw(Partition("green", "2024-01"))
    expected = r"nozone\.csv.*'pickup_zone_id'.*PULocationID, pickup_location_id"
    with pytest.raises(ValueError, match=expected):
        ingest.process_partition(Partition("green", "2024-01"))


def test_failed_rerun_keeps_the_previous_partition(data_root):
    good = b"lpep_pickup_datetime,PULocationID\n2024-01-02 10:00:00,4\n"
    land(data_root, "green", "2024-01", {"good.csv": good})
    ingest_month(data_root, "green", "2024-01")
    (data_root.landing_dir(Partition("green", "2024-01")) / "good.csv").unlink()
    land(data_root, "green", "2024-01", {"bad.csv": b"fare_amount\n4\n"})
    copy_to_raw(Partition("green", "2024-01"))

    with pytest.raises(ValueError):
        ingest.process_partition(Partition("green", "2024-01"))

    assert len(written_trips(data_root, "green", "2024-01")) == 1


def test_process_before_copy_says_what_to_run(data_root):
    with pytest.raises(FileNotFoundError, match="copy_to_raw"):
        ingest.process_partition(Partition("green", "2024-01"))


@pytest.mark.parametrize(
    "source, month, field", [("blue", "2024-01", "source"), ("green", "January", "month")]
)
def test_bad_source_or_month_is_refused_before_any_io(data_root, source, month, field):
    with pytest.raises(ValueError, match=field):
        ingest.process_partition(Partition(source, month))
    with pytest.raises(ValueError, match=field):
        copy_to_raw(Partition(source, month))
    assert not data_root.raw.exists()
