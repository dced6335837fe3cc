"""Hourly metrics per pickup zone and borough, and the weekly summary CSV of a source.

``build_metrics`` turns one trips partition into one partition of each metrics table; reports read
those small tables, never the trips. Trips count on their **pickup** date and hour, taken straight
from ``pickup_at`` (naive New York local time, as TLC publishes it), so a trip in January's file
that started on 31 December counts on 31 December. Pickup zones missing from the zone table (or
NULL) count under borough and zone "Unknown".

``hourly_zone``: pickup_date DATE, pickup_hour TINYINT (0-23), pickup_zone_id INTEGER, borough,
zone VARCHAR, trips, passengers BIGINT, distance, fare, tip, total DOUBLE (sums over the trips).
``hourly_borough``: the same without pickup_zone_id and zone.
"""

from __future__ import annotations

import csv
import io
import logging
from pathlib import Path
from typing import Any

from taxiflow.config import UNKNOWN_BOROUGH, DataPaths, Partition, check_source
from taxiflow.data import files, storage, warehouse
from taxiflow.data.storage import data_paths

log = logging.getLogger(__name__)

HOURLY_ZONE, HOURLY_BOROUGH = warehouse.HOURLY_ZONE, warehouse.HOURLY_BOROUGH

WEEKLY_COLUMNS = ("week", "trips", "passengers", "total_amount", "distance")

# Sums of absent values are 0, not NULL: an hour whose trips all lack a passenger count had 0
# counted passengers, and a NULL would make every later sum NULL.
_HOURLY_ZONE_SQL = """
    SELECT CAST(trips.pickup_at AS DATE) AS pickup_date,
           CAST(hour(trips.pickup_at) AS TINYINT) AS pickup_hour,
           trips.pickup_zone_id,
           coalesce(zones.borough, ?) AS borough,
           coalesce(zones.zone, ?) AS zone,
           CAST(count(*) AS BIGINT) AS trips,
           CAST(coalesce(sum(trips.passenger_count), 0) AS BIGINT) AS passengers,
           CAST(coalesce(sum(trips.trip_distance), 0) AS DOUBLE) AS distance,
           CAST(coalesce(sum(trips.fare_amount), 0) AS DOUBLE) AS fare,
           CAST(coalesce(sum(trips.tip_amount), 0) AS DOUBLE) AS tip,
           CAST(coalesce(sum(trips.total_amount), 0) AS DOUBLE) AS total
    FROM read_parquet(?, hive_partitioning = false) AS trips
    LEFT JOIN zones ON zones.zone_id = trips.pickup_zone_id
    GROUP BY ALL
"""

_HOURLY_ZONE_OUT_SQL = """
    SELECT * FROM hourly_zone ORDER BY pickup_date, pickup_hour, pickup_zone_id NULLS LAST
"""

_HOURLY_BOROUGH_OUT_SQL = """
    SELECT pickup_date, pickup_hour, borough,
           CAST(sum(trips) AS BIGINT) AS trips,
           CAST(sum(passengers) AS BIGINT) AS passengers,
           sum(distance) AS distance, sum(fare) AS fare, sum(tip) AS tip, sum(total) AS total
    FROM hourly_zone
    GROUP BY ALL
    ORDER BY pickup_date, pickup_hour, borough
"""

_WEEKLY_SQL = """
    SELECT CAST(date_trunc('week', pickup_date) AS DATE) AS week,  -- ISO weeks start on Monday
           CAST(sum(trips) AS BIGINT) AS trips,
           CAST(sum(passengers) AS BIGINT) AS passengers,
           round(sum(total), 2) AS total_amount,
           round(sum(distance), 2) AS distance
    FROM read_parquet(?, hive_partitioning = false)
    GROUP BY ALL
    ORDER BY week
"""


def build_metrics(partition: Partition, paths: DataPaths | None = None) -> dict[str, Any]:
    """Write the ``hourly_zone`` and ``hourly_borough`` partitions of one trips partition.

    Each partition replaces the previous one atomically, so re-running is idempotent. Returns
    row and trip counts for the task log.
    """
    source, month = partition.source, partition.month
    paths = paths or data_paths()
    trips_file = warehouse.trips_file(partition, paths)
    if not trips_file.is_file():
        raise FileNotFoundError(
            f"no trips partition for source {source!r}, month {month!r}: {trips_file} does not "
            f"exist (ingest that month first)"
        )
    con = warehouse.duckdb_connection(paths)
    try:
        warehouse.create_zones_table(con, paths)
        con.sql(
            _HOURLY_ZONE_SQL, params=[UNKNOWN_BOROUGH, UNKNOWN_BOROUGH, storage.duckdb_path(trips_file)]
        ).to_table(HOURLY_ZONE)
        zone_rows = warehouse.write_parquet_atomically(
            con, _HOURLY_ZONE_OUT_SQL, [], warehouse.metrics_file(HOURLY_ZONE, partition, paths)
        )
        borough_rows = warehouse.write_parquet_atomically(
            con, _HOURLY_BOROUGH_OUT_SQL, [],
            warehouse.metrics_file(HOURLY_BOROUGH, partition, paths),
        )
        by_borough = con.execute(
            "SELECT borough, CAST(sum(trips) AS BIGINT) FROM hourly_zone GROUP BY ALL ORDER BY 2 DESC"
        ).fetchall()
    finally:
        con.close()
    result = {
        "source": source,
        "month": month,
        "rows": zone_rows,
        "borough_rows": borough_rows,
        "trips": sum(n for _, n in by_borough),
        "boroughs": dict(by_borough),
    }
    log.info(
        "Metrics for %s %s: %d trips, %d hourly_zone rows, %d hourly_borough rows; by borough: %s",
        source, month, result["trips"], zone_rows, borough_rows,
        ", ".join(f"{name} {n}" for name, n in by_borough),
    )
    return result


def hourly_borough_files(source: str, paths: DataPaths | None = None) -> list[Path]:
    """Every ``hourly_borough`` partition file of one source, oldest month first."""
    return warehouse.metrics_partitions(HOURLY_BOROUGH, source, paths)


def write_weekly_summary(source: str, paths: DataPaths | None = None) -> Path:
    """Recompute ``outputs/trips_by_week_<source>.csv`` from every ``hourly_borough`` partition.

    Weeks are ISO weeks, named by their Monday. The file is replaced whole, so concurrent writers
    never mix; ``create_metrics`` runs this task one at a time (``max_active_tis_per_dag=1``, which
    holds across hosts, unlike a file lock), so the last one to finish saw every partition.
    """
    check_source(source)
    paths = paths or data_paths()
    target = paths.weekly_summary(source)
    rows = _weekly_rows(hourly_borough_files(source, paths), paths)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(WEEKLY_COLUMNS)
    for week, trips, passengers, total_amount, distance in rows:
        writer.writerow([week.isoformat(), trips, passengers, f"{total_amount:.2f}", f"{distance:.2f}"])
    files.write_text_atomically(target, buffer.getvalue())
    log.info("Weekly summary of %s: %d weeks -> %s", source, len(rows), target)
    return target


def _weekly_rows(files: list[Path], paths: DataPaths) -> list[tuple[Any, ...]]:
    if not files:
        return []
    con = warehouse.duckdb_connection(paths)
    try:
        return con.execute(_WEEKLY_SQL, [[storage.duckdb_path(file) for file in files]]).fetchall()
    finally:
        con.close()
