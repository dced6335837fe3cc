"""The warehouse: parquet partitions below ``warehouse/``, the zone table, and how to query both.

Layout (every partition written whole, atomically, by one task)::

    warehouse/trips/source=<source>/month=<YYYY-MM>/trips.parquet     (+ _summary.json)
    warehouse/metrics/hourly_zone/source=<source>/month=<YYYY-MM>/part.parquet
    warehouse/metrics/hourly_borough/source=<source>/month=<YYYY-MM>/part.parquet

There is no ``.duckdb`` database file: every task opens an in-memory DuckDB connection and reads
and writes parquet, so concurrent tasks never meet DuckDB's single-writer lock. ``connect()`` gives
users (and the report) the same store as SQL views::

    from taxiflow.data import warehouse
    con = warehouse.connect()
    con.sql("SELECT borough, sum(trips) FROM hourly_borough GROUP BY ALL").show()
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from taxiflow.config import (
    MONTH_PATTERN,
    UNKNOWN_BOROUGH,
    DataPaths,
    Partition,
    check_source,
    duckdb_settings,
)
from taxiflow.data import files, storage
from taxiflow.data.storage import data_paths

if TYPE_CHECKING:
    import duckdb
    import pandas as pd

TRIPS_FILE = "trips.parquet"
SUMMARY_FILE = "_summary.json"
METRICS_FILE = "part.parquet"
HOURLY_ZONE = "hourly_zone"
HOURLY_BOROUGH = "hourly_borough"
METRICS_TABLES = (HOURLY_ZONE, HOURLY_BOROUGH)

# Snappy: cheaper to write than zstd for a file ~30% larger (measured with benchmarks/bench_ingest.py);
# DuckDB's default row groups (~123k rows) keep the writer's buffers small and readers parallel.
PARQUET_OPTIONS = "(FORMAT parquet, COMPRESSION snappy)"

_MONTH_DIR_RE = re.compile(MONTH_PATTERN)

# The zone table as TLC publishes it (header "LocationID","Borough","Zone","service_zone"). Read as
# text so the zones literally named "NA" or "N/A" stay strings; TLC marks "no borough" with "N/A"
# (2024 edition) or leaves it empty, and both become "Unknown". Should an id ever appear twice, only
# one row is kept: a duplicate would double every trip joined to it.
_ZONES_SQL = """
    SELECT TRY_CAST(trim("LocationID") AS INTEGER) AS zone_id,
           CASE WHEN "Borough" IS NULL OR trim("Borough") IN ('', 'N/A') THEN ?
                ELSE trim("Borough") END AS borough,
           coalesce(nullif(trim("Zone"), ''), ?) AS zone,
           "service_zone" AS service_zone
    FROM read_csv(?, header = true, all_varchar = true, strict_mode = false,
                  hive_partitioning = false)
    WHERE zone_id IS NOT NULL
    QUALIFY row_number() OVER (PARTITION BY zone_id ORDER BY borough, zone) = 1
"""

_HIVE_PARQUET_SQL = """
    SELECT * FROM read_parquet(?, hive_partitioning = true,
                               hive_types = {'source': 'VARCHAR', 'month': 'VARCHAR'})
"""


def duckdb_connection(paths: DataPaths | None = None) -> duckdb.DuckDBPyConnection:
    """A fresh in-memory DuckDB connection with the task limits of ``config.duckdb_settings()``.

    With an ``s3://`` data root, DuckDB reads ``s3://`` paths through the data root's own
    filesystem (the same connection, endpoint and keys), registered here.
    """
    import duckdb

    settings: dict[str, Any] = duckdb_settings()  # duckdb's stub wants a dict of its value union
    con = duckdb.connect(":memory:", config=settings)
    # DuckDB draws a progress bar on stdout for queries over 2 s, even when stdout is a task log.
    con.execute("SET enable_progress_bar = false")
    storage.register(con, (paths or data_paths()).root)
    return con


# TLC's zone table ships with the package: a data root (an empty bucket) needs nothing else.
PACKAGED_ZONE_TABLE = Path(__file__).resolve().parent / "reference" / "taxi_zone_lookup.csv"


def zone_table_path(paths: DataPaths | None = None) -> storage.DataPath:
    """The zone CSV: the data root's ``reference/`` copy (refreshed by downloads) if any, else the packaged one."""
    path = (paths or data_paths()).zone_table
    return path if path.is_file() else PACKAGED_ZONE_TABLE


def create_zones_table(con: duckdb.DuckDBPyConnection, paths: DataPaths | None = None) -> None:
    """Create table ``zones (zone_id INTEGER, borough, zone, service_zone VARCHAR)`` in ``con``."""
    params = [UNKNOWN_BOROUGH, UNKNOWN_BOROUGH, storage.duckdb_path(zone_table_path(paths))]
    con.execute("DROP TABLE IF EXISTS zones")
    con.sql(_ZONES_SQL, params=params).to_table("zones")


def load_zones(paths: DataPaths | None = None) -> pd.DataFrame:
    """The zone table as a DataFrame: zone_id, borough, zone, service_zone, sorted by zone_id."""
    con = duckdb_connection(paths)
    try:
        create_zones_table(con, paths)
        return con.sql("SELECT * FROM zones ORDER BY zone_id").df()
    finally:
        con.close()


def trips_file(partition: Partition, paths: DataPaths | None = None) -> Path:
    return (paths or data_paths()).trips_dir(partition) / TRIPS_FILE


def summary_file(partition: Partition, paths: DataPaths | None = None) -> Path:
    """``_summary.json`` of one trips partition: written last, it says the partition is complete."""
    return (paths or data_paths()).trips_dir(partition) / SUMMARY_FILE


def partition_summary(partition: Partition, paths: DataPaths | None = None) -> dict[str, Any] | None:
    """The ``_summary.json`` of one trips partition (counts, files, ``written_at``); None if incomplete.

    The one reader of summaries for the quality figures and kept partitions.
    """
    path = summary_file(partition, paths)
    storage.refresh(path.parent)
    try:
        return json.loads(path.read_bytes())
    except FileNotFoundError:
        return None


def summarised_partitions(paths: DataPaths | None = None) -> list[Partition]:
    """Every trips partition with its ``_summary.json`` (complete), by source then month."""
    root = (paths or data_paths()).warehouse / "trips"
    found = []
    for path in storage.glob(root, f"source=*/month=*/{SUMMARY_FILE}"):
        source, month = path.parent.parent.name.removeprefix("source="), path.parent.name.removeprefix("month=")
        try:
            found.append(Partition(source, month))
        except ValueError:
            continue  # not a partition taxiflow wrote
    return sorted(found)


def metrics_file(table: str, partition: Partition, paths: DataPaths | None = None) -> Path:
    return (paths or data_paths()).metrics_dir(table, partition) / METRICS_FILE


def metrics_partitions(table: str, source: str, paths: DataPaths | None = None) -> list[Path]:
    """Every existing ``part.parquet`` of one source's metrics ``table``, oldest month first.

    Only ``month=YYYY-MM`` folders count (a stray ``month=latest`` or a hidden temp folder does
    not); paths are built by ``DataPaths.metrics_dir``, never from what a user typed.
    """
    if table not in METRICS_TABLES:
        raise ValueError(f"table must be one of {', '.join(METRICS_TABLES)}, got {table!r}")
    paths = paths or data_paths()
    source_dir = paths.metrics_source_dir(table, check_source(source))
    months = sorted(
        entry.name.removeprefix("month=")
        for entry in storage.list_dir(source_dir)
        if entry.name.startswith("month=") and _MONTH_DIR_RE.fullmatch(entry.name.removeprefix("month="))
    )
    found = (paths.metrics_dir(table, Partition(source, month)) / METRICS_FILE for month in months)
    return [file for file in found if file.is_file()]


def complete_trips_files(paths: DataPaths | None = None) -> list[storage.DataPath]:
    """Every ``trips.parquet`` whose partition has its ``_summary.json`` (written last: the done marker)."""
    root = (paths or data_paths()).warehouse / "trips"
    done = {name.rsplit("/", 1)[0] for name in _relative(storage.glob(root, f"*/*/{SUMMARY_FILE}"))}
    return [root / name for name in _relative(storage.glob(root, f"*/*/{TRIPS_FILE}"))
            if name.rsplit("/", 1)[0] in done]


def _relative(found: list[storage.DataPath]) -> list[str]:
    return [f"{path.parent.parent.name}/{path.parent.name}/{path.name}" for path in found]


def _has_files(folder: storage.DataPath, pattern: str) -> bool:
    return bool(storage.glob(folder, pattern))


def connect(paths: DataPaths | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory connection onto the warehouse, for people and reports to query.

    Defines what exists on disk when it is called:

    * table ``zones`` (zone_id, borough, zone, service_zone);
    * view ``trips``: every *complete* trips partition (one whose ``_summary.json``, written last,
      is there: a partition still being written is skipped), with ``source`` and ``month`` columns
      from the folders; the partitions are listed when ``connect`` is called;
    * views ``hourly_zone`` and ``hourly_borough``: the metrics partitions, also with source, month.

    A view is only created once its table has at least one partition (DuckDB cannot bind a view
    to a glob that matches nothing), so on an empty warehouse only ``zones`` exists. The metrics
    views re-read the folders at every query, so partitions written later show up without reconnecting.
    """
    paths = paths or data_paths()
    con = duckdb_connection(paths)
    create_zones_table(con, paths)
    trips = complete_trips_files(paths)
    if trips:
        con.sql(_HIVE_PARQUET_SQL, params=[[storage.duckdb_path(f) for f in trips]]).create_view("trips", replace=True)
    for table in METRICS_TABLES:
        table_root = paths.warehouse / "metrics" / table
        if _has_files(table_root, f"*/*/{METRICS_FILE}"):
            _create_parquet_view(con, table, table_root / "*" / "*" / METRICS_FILE)
    return con


def _create_parquet_view(con: duckdb.DuckDBPyConnection, name: str, glob: storage.DataPath) -> None:
    con.sql(_HIVE_PARQUET_SQL, params=[storage.duckdb_path(glob)]).create_view(name, replace=True)


def write_parquet_atomically(
    con: duckdb.DuckDBPyConnection,
    query: str,
    params: Sequence[Any],
    target: Path,
    expected_rows: int | None = None,
) -> int:
    """Write the result of ``query`` to ``target``; readers see the old file or the new, never half.

    Streams through DuckDB's ``COPY`` into ``files.replacing``'s local temporary file (renamed over
    ``target`` locally, uploaded once complete to S3: a failed ``COPY`` never leaves a partial object). With
    ``expected_rows``, a different row count leaves ``target`` untouched and raises. Returns the
    number of rows written.
    """
    with files.replacing(target) as temp:
        copy = f"COPY ({query}) TO ? {PARQUET_OPTIONS}"
        row = con.execute(copy, [*params, str(temp)]).fetchone()
        assert row is not None  # COPY always answers one row: the number of rows written
        (written,) = row
        if expected_rows is not None and written != expected_rows:
            raise RuntimeError(
                f"{target}: wrote {written} rows where {expected_rows} were expected (did the "
                f"input files change while they were read?); the previous file was kept"
            )
    return int(written)
