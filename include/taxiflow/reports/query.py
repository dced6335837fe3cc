"""Counting a report: trips by hour of day and day of week from the ``hourly_borough`` metrics.

The counts come from the small metrics table, never from raw trips, so a report costs the same
whether the warehouse holds one month or ten years.
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Any

from taxiflow.config import DAY_NAMES, SOURCES, DataPaths
from taxiflow.data import storage, warehouse
from taxiflow.data.storage import DataPath, data_paths
from taxiflow.reports.request import SOURCES_ALLOWED, InvalidRequest, ReportRequest

if TYPE_CHECKING:
    import pandas as pd

METRICS_TABLE = warehouse.HOURLY_BOROUGH
CSV_COLUMNS = ("hour_of_day", "day_of_week", "num_trips")
HOURS = tuple(range(24))


def metrics_partitions(source: str, paths: DataPaths, table: str = METRICS_TABLE) -> list[DataPath]:
    """Every existing ``part.parquet`` of one source's metrics table, oldest month first.

    ``warehouse.metrics_partitions``, with an unknown source reported as a bad request field.
    """
    if source not in SOURCES:
        raise InvalidRequest("sources", source, SOURCES_ALLOWED, problem=f"{source!r} is not a known source")
    return warehouse.metrics_partitions(table, source, paths)


def empty_counts() -> pd.DataFrame:
    """The 168-row grid (hour of day x day of week) with every count zero."""
    return _counts_frame([0] * (len(HOURS) * len(DAY_NAMES)))


def _counts_frame(num_trips) -> pd.DataFrame:
    import numpy as np
    import pandas as pd

    return pd.DataFrame(
        {
            "hour_of_day": np.repeat(np.arange(len(HOURS), dtype=np.int64), len(DAY_NAMES)),
            "day_of_week": list(DAY_NAMES) * len(HOURS),
            "num_trips": np.asarray(num_trips, dtype=np.int64),
        }
    )


# One in-memory DuckDB per process, opened on first use: creating a database costs more than a
# report's whole query, and a process that renders several reports (the request DAG, tests, the
# benchmark) should pay it once. Each query gets its own cursor (a connection of its own); a fork
# gets a fresh database, since a DuckDB instance must not cross fork(). So does an S3 root whose
# filesystem changed (its connection did: ``locations.location``): DuckDB keeps the one registered.
_database: Any = None
_database_pid: int | None = None
_database_fs: Any = None  # the filesystem DuckDB reads s3:// through; None for a local root
_database_lock = threading.Lock()


def _cursor(paths: DataPaths):
    global _database, _database_pid, _database_fs

    fs = paths.root.fs if storage.is_remote(paths.root) else None
    with _database_lock:
        if _database is None or _database_pid != os.getpid() or (fs is not None and fs is not _database_fs):
            _database = warehouse.duckdb_connection(paths)
            _database_pid = os.getpid()
            _database_fs = fs
        return _database.cursor()


_COUNT_SQL = """
    SELECT pickup_hour::INTEGER AS hour_of_day,
           dayofweek(pickup_date)::INTEGER AS day_index,  -- 0 = Sunday, as DAY_NAMES
           sum(trips)::BIGINT AS num_trips
    FROM read_parquet(?)
    WHERE borough = ? AND pickup_date >= ? AND pickup_date < ?
    GROUP BY ALL
"""


def report_counts(request: ReportRequest, paths: DataPaths | None = None) -> pd.DataFrame:
    """Trips per hour of day and day of week: 168 rows, zeros included, hour then Sunday..Saturday.

    Reads every ``hourly_borough`` partition of the requested sources (one written before strays
    were counted in their own month may hold pickups of other days) and keeps pickup dates in
    ``[start_date, end_date)``.
    Missing partitions count as zero trips.
    """
    paths = paths or data_paths()
    files = [file for source in request.sources for file in metrics_partitions(source, paths)]
    if not files:
        return empty_counts()
    # In a bucket the (small) files are fetched at once and read locally: DuckDB reading each one
    # through fsspec made several round trips per file, one file after another.
    with storage.local_copies(files) as local:
        cursor = _cursor(paths)
        try:
            rows = cursor.execute(
                _COUNT_SQL,
                [[storage.duckdb_path(file) for file in local], request.borough, request.start_date, request.end_date],
            ).fetchall()
        finally:
            cursor.close()
    num_trips = [0] * (len(HOURS) * len(DAY_NAMES))
    for hour, day, trips in rows:
        num_trips[hour * len(DAY_NAMES) + day] = int(trips)
    return _counts_frame(num_trips)
