"""The warehouse: parquet partitions below ``warehouse/``, the zone table, and how to query both.

Layout (every partition written whole by one task)::

    warehouse/trips/source=<source>/month=<YYYY-MM>/_summary.json            names the current version
    warehouse/trips/source=<source>/month=<YYYY-MM>/<version>/trips.parquet  that version's trips
    warehouse/metrics/hourly_zone/source=<source>/month=<YYYY-MM>/part.parquet
    warehouse/metrics/hourly_borough/source=<source>/month=<YYYY-MM>/part.parquet

A trips partition is published as one version (``taxiflow.data.versions``): its ``trips.parquet``
under a fresh version folder first, ``_summary.json`` last, naming it; readers follow the summary,
so a re-ingest never shows old and new mixed, and a partition without a summary is not there.

``trips.parquet`` of month M holds the trips its files list with a pickup in M, and also their
**strays** (trips that started in the month before or after M): ``month_inputs`` finds the
partitions a month's count reads, and ``taxiflow.data.strays.counted_trips_sql`` counts each
trip once, in the month it started. Metrics and the ``trips`` view count exactly those.

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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from taxiflow.config import (
    MONTH_PATTERN,
    UNKNOWN_BOROUGH,
    DataPaths,
    Partition,
    check_source,
    duckdb_settings,
)
from taxiflow.data import files, locations, storage, strays, versions
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

# Parquet V2 pages (timestamps delta-encoded: PLAIN stored each in 8 bytes, 46 % of the file) with
# zstd level 1: a 3M-row trips file is 40 MB instead of snappy's 56, written as fast (0.66 s against
# 0.68 s on two threads) and read faster, so an S3 data root uploads and downloads 28 % less
# (docs/object-storage.md). V1 files written before stay readable; pyarrow and DuckDB read both.
# DuckDB's default row groups (~123k rows) keep the writer's buffers small and readers parallel.
PARQUET_OPTIONS = "(FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL 1, PARQUET_VERSION V2)"

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
    # DuckDB keeps what it read of a non-local file in memory for the next query; a task reads each
    # file once or twice, and on S3 the cache held ~60 MB more at peak for a 3M-row ingest.
    con.execute("SET enable_external_file_cache = false")
    locations.register(con, (paths or data_paths()).root)
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


@dataclass(frozen=True)
class PublishedTrips:
    """One published trips partition: its summary and the files of the version the summary names."""

    partition: Partition
    marker: versions.Marker
    folder: storage.DataPath  # the version's folder (a partition written before versions: the partition's)

    @property
    def summary(self) -> dict[str, Any]:
        return self.marker.document

    @property
    def version(self) -> str:
        """The version name; ``legacy@<written_at>`` for a partition written before versions."""
        return self.marker.version or f"legacy@{self.summary.get('written_at', '')}"

    @property
    def trips_file(self) -> storage.DataPath:
        return self.folder / TRIPS_FILE

    def strays_for(self, month: str) -> int:
        """How many of its stored strays started in ``month``."""
        return int(self.summary.get("strays_kept_by_month", {}).get(month, 0))


def published_trips(partition: Partition, paths: DataPaths | None = None) -> PublishedTrips | None:
    """The partition's current version, as its ``_summary.json`` names it; None if it has none."""
    found = versions.current_version((paths or data_paths()).trips_dir(partition), SUMMARY_FILE)
    if found is None:
        return None
    marker, folder = found
    return PublishedTrips(partition, marker, folder)


def trips_file(partition: Partition, paths: DataPaths | None = None) -> storage.DataPath:
    """The published ``trips.parquet`` of a partition (its month's trips and the strays it keeps).

    Unpublished: a path that does not exist. Readers that must not see a re-ingest mid-way
    take ``published_trips`` once and read its ``trips_file``.
    """
    published = published_trips(partition, paths)
    if published is None:
        return (paths or data_paths()).trips_dir(partition) / TRIPS_FILE
    return published.trips_file


@dataclass(frozen=True)
class MonthInputs:
    """What a month's counted trips are made of: its own partition and the neighbours holding its strays."""

    own: PublishedTrips
    neighbours: tuple[PublishedTrips, ...]

    @property
    def fingerprint(self) -> str:
        """Names every input version: metrics built from other versions are stale."""
        parts = [f"{p.partition.month}@{p.version}" for p in (self.own, *self.neighbours)]
        return ";".join(parts)

    def counted_trips_sql(self) -> tuple[str, list[Any]]:
        """SQL (and its parameters) for the trips the month counts: ``strays.counted_trips_sql``."""
        neighbour_files = [neighbour.trips_file for neighbour in self.neighbours]
        return strays.counted_trips_sql(self.own.partition.month, self.own.trips_file, neighbour_files)


def month_inputs(
    partition: Partition,
    paths: DataPaths | None = None,
    known: Mapping[Partition, PublishedTrips | None] | None = None,
) -> MonthInputs | None:
    """The month's own published partition and the adjacent ones holding strays for it; None if unpublished.

    ``known``: partitions already read (by ``connect``, which reads every summary once).
    """

    def published(of: Partition) -> PublishedTrips | None:
        return known.get(of) if known is not None else published_trips(of, paths)

    own = published(partition)
    if own is None:
        return None
    neighbours = []
    for month in strays.adjacent_months(partition.month):
        other = published(Partition(partition.source, month))
        if other is not None and other.strays_for(partition.month):
            neighbours.append(other)
    return MonthInputs(own, tuple(neighbours))


def summary_file(partition: Partition, paths: DataPaths | None = None) -> storage.DataPath:
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


def metrics_file(table: str, partition: Partition, paths: DataPaths | None = None) -> storage.DataPath:
    return (paths or data_paths()).metrics_dir(table, partition) / METRICS_FILE


def metrics_partitions(table: str, source: str, paths: DataPaths | None = None) -> list[storage.DataPath]:
    """Every existing ``part.parquet`` of one source's metrics ``table``, oldest month first.

    Only ``month=YYYY-MM/part.parquet`` counts (a stray ``month=latest`` or a hidden temporary file
    does not); paths are built by ``DataPaths.metrics_dir``, never from what a user typed. Found
    by one listing of every file below the source's folder: in a bucket, one request for any
    number of months (a listing of the month folders, then a check of each file, was one request
    per month), and it leaves each file's size cached, so opening one needs no request either.
    """
    if table not in METRICS_TABLES:
        raise ValueError(f"table must be one of {', '.join(METRICS_TABLES)}, got {table!r}")
    paths = paths or data_paths()
    source_dir = paths.metrics_source_dir(table, check_source(source))
    months = sorted(
        found.group(1) for found in map(_METRICS_FILE_RE.fullmatch, storage.files_below(source_dir)) if found
    )
    return [paths.metrics_dir(table, Partition(source, month)) / METRICS_FILE for month in months]


_METRICS_FILE_RE = re.compile(f"month=({MONTH_PATTERN.strip('^$')})/{re.escape(METRICS_FILE)}")


def published_partitions(paths: DataPaths | None = None) -> list[Partition]:
    """Every trips partition with its ``_summary.json`` (written last: the done marker), sorted."""
    root = (paths or data_paths()).trips
    found = []
    for summary in storage.glob(root, f"source=*/month=*/{SUMMARY_FILE}"):
        source, month = summary.parent.parent.name, summary.parent.name
        try:
            found.append(Partition(source.removeprefix("source="), month.removeprefix("month=")))
        except ValueError:  # a folder nobody of ours wrote ("month=latest"): not a partition
            continue
    return sorted(found)


def _has_files(folder: storage.DataPath, pattern: str) -> bool:
    return bool(storage.glob(folder, pattern))


def connect(paths: DataPaths | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory connection onto the warehouse, for people and reports to query.

    Defines what exists on disk when it is called:

    * table ``zones`` (zone_id, borough, zone, service_zone);
    * view ``trips``: the trips every *published* partition counts (``MonthInputs.counted_trips_sql``: its own
      rows and the strays of its neighbours, each trip once), read from the version its
      ``_summary.json`` names (a partition still being written is skipped), with ``source`` and
      ``month`` (the month the trip started in); the partitions are listed when ``connect`` is called;
    * views ``hourly_zone`` and ``hourly_borough``: the metrics partitions, also with source, month.

    A view is only created once its table has at least one partition (DuckDB cannot bind a view
    to a glob that matches nothing), so on an empty warehouse only ``zones`` exists. The metrics
    views re-read the folders at every query, so partitions written later show up without reconnecting.
    """
    paths = paths or data_paths()
    con = duckdb_connection(paths)
    create_zones_table(con, paths)
    selects, params = [], []
    known = {partition: published_trips(partition, paths) for partition in published_partitions(paths)}
    for partition in known:
        inputs = month_inputs(partition, paths, known)
        if inputs is None:  # unpublished since it was listed
            continue
        sql, sql_params = inputs.counted_trips_sql()
        selects.append(f"SELECT *, ?::VARCHAR AS source, ?::VARCHAR AS month FROM ({sql})")
        params += [partition.source, partition.month, *sql_params]
    if selects:
        con.sql(" UNION ALL ".join(selects), params=params).create_view("trips", replace=True)
    for table in METRICS_TABLES:
        table_root = paths.warehouse / "metrics" / table
        if _has_files(table_root, f"*/*/{METRICS_FILE}"):
            _create_parquet_view(con, table, table_root / "*" / "*" / METRICS_FILE)
    return con


def _create_parquet_view(con: duckdb.DuckDBPyConnection, name: str, glob: storage.DataPath) -> None:
    con.sql(_HIVE_PARQUET_SQL, params=[storage.duckdb_path(glob)]).create_view(name, replace=True)


class WrittenFile(NamedTuple):
    """What ``write_parquet_atomically`` wrote: its rows, and ``{"name", "bytes", "sha256"}``."""

    rows: int
    facts: dict[str, Any]


def write_parquet_atomically(
    con: duckdb.DuckDBPyConnection,
    query: str,
    params: Sequence[Any],
    target: storage.DataPath,
    expected_rows: int | None = None,
    metadata: Mapping[str, str] | None = None,
) -> WrittenFile:
    """Write the result of ``query`` to ``target``; readers see the old file or the new, never half.

    Streams through DuckDB's ``COPY`` into ``files.replacing``'s local temporary file (renamed over
    ``target`` locally, uploaded once complete to S3: a failed ``COPY`` never leaves a partial object). With
    ``expected_rows``, a different row count leaves ``target`` untouched and raises. Returns the
    number of rows written and the file's facts (name, bytes, sha256: of the local file, before it
    is uploaded). ``metadata`` goes into the file's key-value metadata (``read_metadata``).
    """
    options = PARQUET_OPTIONS
    if metadata:
        options = options.removesuffix(")") + ", KV_METADATA {" + ", ".join(
            f"{_metadata_text(key)}: {_metadata_text(value)}" for key, value in metadata.items()
        ) + "})"
    with files.replacing(target) as temp:
        copy = f"COPY ({query}) TO ? {options}"
        row = con.execute(copy, [*params, str(temp)]).fetchone()
        assert row is not None  # COPY always answers one row: the number of rows written
        (written,) = row
        if expected_rows is not None and written != expected_rows:
            raise RuntimeError(
                f"{target}: wrote {written} rows where {expected_rows} were expected (did the "
                f"input files change while they were read?); the previous file was kept"
            )
        facts = files.local_facts(temp, target.name)
    return WrittenFile(int(written), facts)


# What key-value metadata may hold: our own names (months, versions, timestamps), never input.
_METADATA_TEXT = re.compile(r"[A-Za-z0-9_@:;.+ -]{1,2000}")


def _metadata_text(value: str) -> str:
    """A SQL string literal of one of our own metadata names or values (COPY options take no parameters)."""
    if not _METADATA_TEXT.fullmatch(value):
        raise ValueError(f"metadata text {value!r} holds characters other than letters, digits and _@:;.+ -")
    return f"'{value}'"


def read_metadata(con: duckdb.DuckDBPyConnection, path: storage.DataPath) -> dict[str, str]:
    """The key-value metadata of a parquet file written with ``write_parquet_atomically(metadata=...)``."""
    rows = con.execute(
        "SELECT key::VARCHAR, value::VARCHAR FROM parquet_kv_metadata(?)", [storage.duckdb_path(path)]
    ).fetchall()
    return dict(rows)
