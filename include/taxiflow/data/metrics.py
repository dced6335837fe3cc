"""Hourly metrics per pickup zone and borough, and the weekly summary CSV of a source.

``build_metrics`` turns the trips a month counts into one partition of each metrics table; reports
read those small tables, never the trips. Trips count on their **pickup** date and hour, taken
straight from ``pickup_at`` (naive New York local time, as TLC publishes it). A month counts its own
partition's trips and the strays its neighbours' files list for it (``strays.counted_trips_sql``),
so a trip in January's file that started on 31 December counts on 31 December, in December's
metrics, once. Pickup zones missing from the zone table (or NULL) count under borough and zone
"Unknown".

Each metrics file records the trips versions it was built from (parquet key-value metadata
``taxiflow_inputs``). When an ingest publishes a month, ``refresh_metrics`` rebuilds that month and
every adjacent month whose inputs changed (new strays for it, or strays gone with a re-drop).
Callers run one ``refresh_metrics`` at a time (``create_metrics``: ``max_active_tis_per_dag=1``), so
a month's last build always saw every version published before it started.

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
from taxiflow.data import files, readers, storage, strays, warehouse
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
    FROM ({counted}) AS trips
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


INPUTS_KEY = "taxiflow_inputs"


def build_metrics(partition: Partition, paths: DataPaths | None = None) -> dict[str, Any]:
    """Write the ``hourly_zone`` and ``hourly_borough`` partitions of the trips one month counts.

    Each partition replaces the previous one atomically, so re-running is idempotent. Returns
    row and trip counts for the task log.
    """
    paths = paths or data_paths()
    for _attempt in range(3):
        inputs = warehouse.month_inputs(partition, paths)
        if inputs is None:
            raise FileNotFoundError(
                f"no trips partition for source {partition.source!r}, month {partition.month!r}: "
                f"{storage.url(paths.trips_dir(partition))} has no {warehouse.SUMMARY_FILE} (ingest that month first)"
            )
        try:
            return _build(partition, inputs, paths)
        except Exception:
            # A re-ingest of an input published a new version (and removed the one being read) meanwhile:
            # build again from the new versions. Any other failure is raised as it is.
            now = warehouse.month_inputs(partition, paths)
            if now is not None and now.fingerprint == inputs.fingerprint:
                raise
    raise RuntimeError(f"the trips of {partition} and its neighbours kept changing while their metrics were built")


def _build(partition: Partition, inputs: warehouse.MonthInputs, paths: DataPaths) -> dict[str, Any]:
    source, month = partition.source, partition.month
    recorded = {INPUTS_KEY: inputs.fingerprint}
    # The month's own trips file is read almost whole: on S3 it is fetched once (while DuckDB opens),
    # and DuckDB reads the local copy (its ranged reads through fsspec took twice as long: 79 GETs
    # for a 3M-row month). The neighbours' files give only their few strays: read in place.
    with readers.zones_and_copies([inputs.own.trips_file], paths) as (con, (own,)):
        counted, counted_params = strays.counted_trips_sql(
            month, own, [neighbour.trips_file for neighbour in inputs.neighbours]
        )
        con.sql(
            _HOURLY_ZONE_SQL.format(counted=counted),
            params=[UNKNOWN_BOROUGH, UNKNOWN_BOROUGH, *counted_params],
        ).to_table(HOURLY_ZONE)
        zone_rows, zone_file = warehouse.write_parquet_atomically(
            con, _HOURLY_ZONE_OUT_SQL, [], warehouse.metrics_file(HOURLY_ZONE, partition, paths), metadata=recorded
        )
        borough_rows, borough_file = warehouse.write_parquet_atomically(
            con, _HOURLY_BOROUGH_OUT_SQL, [],
            warehouse.metrics_file(HOURLY_BOROUGH, partition, paths), metadata=recorded,
        )
        by_borough = con.execute(
            "SELECT borough, CAST(sum(trips) AS BIGINT) FROM hourly_zone GROUP BY ALL ORDER BY 2 DESC"
        ).fetchall()
    result = {
        "source": source,
        "month": month,
        "rows": zone_rows,
        "borough_rows": borough_rows,
        "trips": sum(n for _, n in by_borough),
        "boroughs": dict(by_borough),
        "inputs": inputs.fingerprint,
        # name, bytes, sha256 of each file, from the local file before upload (lineage: no read back)
        "files": {HOURLY_ZONE: zone_file, HOURLY_BOROUGH: borough_file},
    }
    log.info(
        "Metrics for %s %s from %s: %d trips, %d hourly_zone rows, %d hourly_borough rows; by borough: %s",
        source, month, inputs.fingerprint, result["trips"], zone_rows, borough_rows,
        ", ".join(f"{name} {n}" for name, n in by_borough),
    )
    return result


def built_from(partition: Partition, paths: DataPaths | None = None) -> str | None:
    """The inputs the month's current metrics were built from; None if it has none (or older ones)."""
    paths = paths or data_paths()
    files = [warehouse.metrics_file(table, partition, paths) for table in (HOURLY_ZONE, HOURLY_BOROUGH)]
    if not all(file.is_file() for file in files):
        return None
    con = warehouse.duckdb_connection(paths)
    try:
        found = {warehouse.read_metadata(con, file).get(INPUTS_KEY) for file in files}
    finally:
        con.close()
    return found.pop() if len(found) == 1 else None


def refresh_metrics(partition: Partition, paths: DataPaths | None = None) -> dict[str, Any]:
    """Build the month's metrics, then rebuild each adjacent published month whose inputs changed.

    An ingest of month F may add (or, re-dropped, remove) strays of F-1 and F+1: their metrics
    are rebuilt here, so "F's metrics are done" also means its neighbours count F's strays.
    """
    paths = paths or data_paths()
    result = build_metrics(partition, paths)
    rebuilt = []
    for month in strays.adjacent_months(partition.month):
        neighbour = Partition(partition.source, month)
        inputs = warehouse.month_inputs(neighbour, paths)
        if inputs is None or built_from(neighbour, paths) == inputs.fingerprint:
            continue
        build_metrics(neighbour, paths)
        rebuilt.append(month)
    result["neighbours_rebuilt"] = rebuilt
    return result


def hourly_borough_files(source: str, paths: DataPaths | None = None) -> list[storage.DataPath]:
    """Every ``hourly_borough`` partition file of one source, oldest month first."""
    return warehouse.metrics_partitions(HOURLY_BOROUGH, source, paths)


def write_weekly_summary(source: str, paths: DataPaths | None = None) -> storage.DataPath:
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
