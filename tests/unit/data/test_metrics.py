"""Hourly metrics, the weekly summary CSV, and the warehouse views users query."""

from __future__ import annotations

import csv
import multiprocessing
from datetime import date, datetime

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from taxiflow.config import SUCCESS_MARKER, Partition
from taxiflow.data import ingest, metrics, warehouse
from taxiflow.data.raw import copy_to_raw

HOURLY_ZONE_TYPES = [
    ("pickup_date", "DATE"), ("pickup_hour", "TINYINT"), ("pickup_zone_id", "INTEGER"),
    ("borough", "VARCHAR"), ("zone", "VARCHAR"), ("trips", "BIGINT"), ("passengers", "BIGINT"),
    ("distance", "DOUBLE"), ("fare", "DOUBLE"), ("tip", "DOUBLE"), ("total", "DOUBLE"),
]
HOURLY_BOROUGH_TYPES = [c for c in HOURLY_ZONE_TYPES if c[0] not in ("pickup_zone_id", "zone")]


def green_month(data_root, month, trips):
    """Drop, copy and ingest one green month; ``trips`` are (pickup, zone id, passengers, total)."""
    folder = data_root.landing_dir(Partition("green", month))
    folder.mkdir(parents=True, exist_ok=True)
    pickups, zones, passengers, totals = zip(*trips, strict=True)
    pq.write_table(pa.table({
        "lpep_pickup_datetime": pa.array(pickups, pa.timestamp("us")),
        "PULocationID": pa.array(zones, pa.int32()),
        "passenger_count": pa.array(passengers, pa.int64()),
        "trip_distance": pa.array([2.0] * len(trips), pa.float64()),
        "fare_amount": pa.array([10.0] * len(trips), pa.float64()),
        "tip_amount": pa.array([1.0] * len(trips), pa.float64()),
        "total_amount": pa.array(totals, pa.float64()),
    }), folder / f"green_tripdata_{month}.parquet")
    (folder / SUCCESS_MARKER).touch()
    copy_to_raw(Partition("green", month))
    ingest.process_partition(Partition("green", month))


def rows(table, month="2024-01", source="green"):
    con = warehouse.duckdb_connection()
    try:
        path = str(warehouse.metrics_file(table, Partition(source, month)))
        relation = con.sql("SELECT * FROM read_parquet(?, hive_partitioning = false)", params=[path])
        return list(zip(relation.columns, map(str, relation.types), strict=True)), relation.fetchall()
    finally:
        con.close()


JANUARY = [
    (datetime(2024, 1, 8, 9, 5), 74, 1, 15.0),  # East Harlem North, Manhattan
    (datetime(2024, 1, 8, 9, 55), 74, None, 20.0),  # unknown passenger count: trip still counts
    (datetime(2024, 1, 8, 9, 30), 75, 2, 30.0),  # East Harlem South, Manhattan
    (datetime(2024, 1, 8, 23, 59), 7, 1, 12.5),  # Astoria, Queens
    (datetime(2024, 1, 31, 23, 40), 74, 3, 40.0),  # the month's last hour (a stray December pickup
    # would be reported and not stored: see tests/unit/data/test_drop_integrity.py)
    (datetime(2024, 1, 9, 0, 10), 999, 1, 9.0),  # not in the zone table
    (datetime(2024, 1, 9, 0, 20), None, 1, 9.0),  # no zone id at all
    (datetime(2024, 1, 9, 0, 30), 265, 1, 9.0),  # TLC's own "NA" zone
]


def test_hourly_zone_has_the_contract_columns_and_counts(data_root):
    green_month(data_root, "2024-01", JANUARY)

    result = metrics.build_metrics(Partition("green", "2024-01"))

    columns, data = rows("hourly_zone")
    assert columns == HOURLY_ZONE_TYPES
    by_key = {(d, h, z): (b, name, t, p, total) for d, h, z, b, name, t, p, _, _, _, total in data}
    assert by_key[date(2024, 1, 8), 9, 74] == ("Manhattan", "East Harlem North", 2, 1, 35.0)
    assert by_key[date(2024, 1, 8), 9, 75] == ("Manhattan", "East Harlem South", 1, 2, 30.0)
    assert by_key[date(2024, 1, 8), 23, 7] == ("Queens", "Astoria", 1, 1, 12.5)
    assert by_key[date(2024, 1, 31), 23, 74][2] == 1
    assert by_key[date(2024, 1, 9), 0, 999][:2] == ("Unknown", "Unknown")
    assert by_key[date(2024, 1, 9), 0, None][:2] == ("Unknown", "Unknown")
    assert by_key[date(2024, 1, 9), 0, 265][:2] == ("Unknown", "NA")
    assert result["trips"] == len(JANUARY)
    assert result["boroughs"] == {"Manhattan": 4, "Queens": 1, "Unknown": 3}


def test_hourly_borough_sums_zones_per_hour(data_root):
    green_month(data_root, "2024-01", JANUARY)
    metrics.build_metrics(Partition("green", "2024-01"))

    columns, data = rows("hourly_borough")

    assert columns == HOURLY_BOROUGH_TYPES
    by_key = {(d, h, b): tuple(sums) for d, h, b, *sums in data}
    assert by_key[date(2024, 1, 8), 9, "Manhattan"] == (3, 3, 6.0, 30.0, 3.0, 65.0)
    assert by_key[date(2024, 1, 9), 0, "Unknown"] == (3, 3, 6.0, 30.0, 3.0, 27.0)
    assert by_key[date(2024, 1, 31), 23, "Manhattan"][0] == 1
    assert sum(t for t, *_ in by_key.values()) == len(JANUARY)


def test_rebuilding_metrics_replaces_not_adds(data_root):
    green_month(data_root, "2024-01", JANUARY)
    metrics.build_metrics(Partition("green", "2024-01"))
    first = rows("hourly_borough")
    metrics.build_metrics(Partition("green", "2024-01"))
    assert rows("hourly_borough") == first

    green_month(data_root, "2024-01", JANUARY[:1])  # a corrected drop
    metrics.build_metrics(Partition("green", "2024-01"))
    assert [r[3] for r in rows("hourly_borough")[1]] == [1]


def test_metrics_of_a_month_never_ingested_name_the_partition(data_root):
    with pytest.raises(FileNotFoundError) as raised:
        metrics.build_metrics(Partition("yellow", "2024-03"))
    for word in ("'yellow'", "'2024-03'", "source=yellow/month=2024-03 has no _summary.json"):
        assert word in str(raised.value)


def test_weekly_summary_by_iso_week(data_root):
    green_month(data_root, "2023-12", [
        (datetime(2023, 12, 31, 10), 74, 2, 10.0),  # a Sunday: week of Monday 25 December
        (datetime(2023, 12, 25, 0, 1), 74, 1, 5.25),
    ])
    green_month(data_root, "2024-01", JANUARY)
    metrics.build_metrics(Partition("green", "2023-12"))
    metrics.build_metrics(Partition("green", "2024-01"))

    path = metrics.write_weekly_summary("green")

    assert path == data_root.outputs / "trips_by_week_green.csv"
    with path.open(newline="") as handle:
        table = list(csv.DictReader(handle))
    assert list(table[0]) == ["week", "trips", "passengers", "total_amount", "distance"]
    assert [row["week"] for row in table] == ["2023-12-25", "2024-01-08", "2024-01-29"]
    assert table[0] == {"week": "2023-12-25", "trips": "2", "passengers": "3",
                        "total_amount": "15.25", "distance": "4.00"}
    assert table[1]["trips"] == str(len(JANUARY) - 1)
    assert table[2]["trips"] == "1"


def test_weekly_summary_without_metrics_is_just_a_header(data_root):
    path = metrics.write_weekly_summary("yellow")
    assert path.read_text() == "week,trips,passengers,total_amount,distance\n"


def _write_summary(root):
    import os

    os.environ["TAXIFLOW_DATA_DIR"] = root
    metrics.write_weekly_summary("green")


def test_concurrent_weekly_summaries_leave_one_whole_file(data_root):
    green_month(data_root, "2024-01", JANUARY)
    metrics.build_metrics(Partition("green", "2024-01"))
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_write_summary, args=(str(data_root.root),)) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)

    assert [worker.exitcode for worker in workers] == [0] * 4
    lines = data_root.weekly_summary("green").read_text().splitlines()
    assert lines[0] == "week,trips,passengers,total_amount,distance"
    assert [line.split(",")[0] for line in lines[1:]] == ["2024-01-08", "2024-01-29"]
    assert sorted(p.name for p in data_root.outputs.iterdir() if not p.name.endswith(".lock")) == [
        "trips_by_week_green.csv",
    ]


def test_connect_exposes_trips_and_metrics_with_partition_columns(data_root):
    assert {name for (name,) in warehouse.connect().execute("SHOW TABLES").fetchall()} == {"zones"}
    green_month(data_root, "2024-01", JANUARY)
    metrics.build_metrics(Partition("green", "2024-01"))

    con = warehouse.connect()

    assert con.execute("SELECT source, month, count(*) FROM trips GROUP BY ALL").fetchall() == [
        ("green", "2024-01", len(JANUARY)),
    ]
    assert con.execute(
        "SELECT sum(trips) FROM hourly_borough WHERE borough = ? AND source = ?", ["Manhattan", "green"]
    ).fetchone() == (4,)
    assert con.execute("SELECT count(*) FROM hourly_zone WHERE month = ?", ["2024-01"]).fetchone()[0] > 0


def test_zone_table_keeps_literal_na_and_maps_missing_borough_to_unknown(data_root):
    data_root.zone_table.write_bytes(
        b'"LocationID","Borough","Zone","service_zone"\r\n'
        b'1,"EWR","Newark Airport","EWR"\r\n'
        b'264,"Unknown","N/A","N/A"\r\n'
        b'265,"N/A","Outside of NYC","N/A"\r\n'
        b'266,,"NA","N/A"\r\n'
    )
    zones = warehouse.load_zones()
    assert zones.to_dict("list") == {
        "zone_id": [1, 264, 265, 266],
        "borough": ["EWR", "Unknown", "Unknown", "Unknown"],
        "zone": ["Newark Airport", "N/A", "Outside of NYC", "NA"],
        "service_zone": ["EWR", "N/A", "N/A", "N/A"],
    }
