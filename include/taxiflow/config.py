"""Names, sources and paths that every part of taxiflow agrees on.

Everything taxiflow stores hangs off one data root, ``TAXIFLOW_DATA_DIR``: a local folder (``make``
sets ``<checkout>/data``; unset, ``~/taxiflow-data``) or ``s3://<bucket>/<prefix>``.
DAG ids, task ids and conf keys that one DAG uses to address another
live here too, so the trigger side and the target side cannot drift apart.

No Airflow, pandas or DuckDB import here: DAG files import this module at parse time.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import date
from typing import Any

# --- DAG and task ids shared between DAGs -------------------------------------------------------

INGEST_DAG_ID = "ingest_taxi_trips"
METRICS_DAG_ID = "create_metrics"
REPORT_DAG_ID = "borough_report"
REQUESTS_DAG_ID = "report_requests"
DOWNLOAD_DAG_ID = "download_tlc_trips"
SWEEP_DAG_ID = "storage_sweep"


def wait_task_id(source: str) -> str:
    return f"wait_for_{source}"


def copy_task_id(source: str) -> str:
    return f"copy_to_raw_{source}"


def process_task_id(source: str) -> str:
    return f"process_{source}"


def trigger_metrics_task_id(source: str) -> str:
    """The ingest task whose success means "metrics for this source and month are done"."""
    return f"trigger_create_metrics_{source}"


# --- Sources --------------------------------------------------------------------------------------

# The normalised trip schema every source is mapped onto: column -> DuckDB type.
TRIP_SCHEMA: dict[str, str] = {
    "pickup_at": "TIMESTAMP",
    "dropoff_at": "TIMESTAMP",
    "pickup_zone_id": "INTEGER",
    "dropoff_zone_id": "INTEGER",
    "passenger_count": "INTEGER",
    "trip_distance": "DOUBLE",
    "fare_amount": "DOUBLE",
    "tip_amount": "DOUBLE",
    "total_amount": "DOUBLE",
    "vendor_id": "INTEGER",
    "payment_type": "INTEGER",
}


@dataclass(frozen=True)
class Source:
    """One TLC trip-record family.

    How its files' columns map onto ``TRIP_SCHEMA``, for every column-name era TLC has used, is
    data in ``taxiflow.data.eras`` (one entry per source and era). ``first_month`` is the first
    month TLC published for the family: no drop can exist before it.
    """

    name: str
    label: str
    first_month: str
    description: str = ""


SOURCES: dict[str, Source] = {
    "yellow": Source("yellow", "Yellow taxi", "2009-01", "street-hail taxis (medallion cabs), since 2009"),
    "green": Source("green", "Green taxi", "2013-08", "boro taxis serving the outer boroughs, since 2013-08"),
    "fhv": Source(
        "fhv", "For-hire vehicle", "2015-01",
        "for-hire vehicles dispatched by bases (black cars, liveries, luxury limousines), since 2015",
    ),
    "fhvhv": Source(
        "fhvhv", "High-volume for-hire vehicle", "2019-02",
        "high-volume for-hire services (Uber, Lyft, Via, Juno), since 2019-02",
    ),
}

SOURCE_NAMES: tuple[str, ...] = tuple(SOURCES)

# What a report counts when its request names no sources: the taxi families, as before for-hire
# vehicles became sources, so existing reports keep their names and numbers.
DEFAULT_REPORT_SOURCES: tuple[str, ...] = ("yellow", "green")

# Which sources this deployment ingests (and downloads): a comma-separated list, or "all". The
# for-hire families are opt-in: an FHVHV month is ~20 million trips (~0.5 GB to download).
INGEST_SOURCES_ENV = "TAXIFLOW_INGEST_SOURCES"


def ingest_sources() -> tuple[str, ...]:
    """The sources ``TAXIFLOW_INGEST_SOURCES`` names (default: yellow, green), in canonical order.

    Read at DAG parse time (one ingest and one download branch per source) and by the report's
    checks (a report may only count what is ingested). A ValueError names a bad value.
    """
    value = os.environ.get(INGEST_SOURCES_ENV, "").strip()
    if not value:
        return DEFAULT_REPORT_SOURCES
    if value.lower() == "all":
        return SOURCE_NAMES
    names = {name.strip() for name in value.split(",") if name.strip()}
    unknown = sorted(names - set(SOURCE_NAMES))
    if unknown or not names:
        raise ValueError(
            f"{INGEST_SOURCES_ENV} must be 'all' or a comma-separated list of {', '.join(SOURCE_NAMES)}, "
            f"got {value!r}"
        )
    return tuple(name for name in SOURCE_NAMES if name in names)


def published_from(source: str) -> str:
    """The first month TLC published for ``source`` (``YYYY-MM``): no drop can exist before it."""
    return SOURCES[check_source(source)].first_month


# Boroughs a report can be asked for (the zone table also has EWR and Unknown).
BOROUGHS: tuple[str, ...] = ("Manhattan", "Brooklyn", "Queens", "Bronx", "Staten Island")
UNKNOWN_BOROUGH = "Unknown"

# Day names as the report CSV writes them, in the order it writes them.
DAY_NAMES: tuple[str, ...] = (
    "Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday",
)

# TLC's trip records begin in January 2009; nothing earlier can ever be ingested.
FIRST_MONTH = date(2009, 1, 1)

DATA_FILE_SUFFIXES = (".parquet", ".csv", ".csv.gz")
SUCCESS_MARKER = "_SUCCESS"

# --- Months ---------------------------------------------------------------------------------------

MONTH_PATTERN = r"^[0-9]{4}-(0[1-9]|1[0-2])$"
_MONTH_RE = re.compile(MONTH_PATTERN)


def parse_month(month: str) -> date:
    """``"2024-01"`` -> ``date(2024, 1, 1)``; a ValueError naming the bad value otherwise."""
    if not isinstance(month, str) or not _MONTH_RE.match(month):
        raise ValueError(f"month must look like YYYY-MM (e.g. 2024-01), got {month!r}")
    return date(int(month[:4]), int(month[5:7]), 1)


def format_month(day: date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


def months_covering(start: date, end: date) -> list[str]:
    """The months ``YYYY-MM`` that the half-open date range ``[start, end)`` touches."""
    if end <= start:
        return []
    months = []
    year, month = start.year, start.month
    last = end.toordinal() - 1  # the last day inside the range
    while date(year, month, 1).toordinal() <= last:
        months.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return months


def check_source(source: str) -> str:
    """``source`` if it is a configured source; a ValueError naming the allowed ones otherwise."""
    if source not in SOURCES:
        allowed = ", ".join(repr(name) for name in SOURCES)
        raise ValueError(f"source must be one of {allowed}, got {source!r}")
    return source


def check_month(month: str) -> str:
    """``month`` if it is a ``YYYY-MM`` month TLC can have published; a ValueError otherwise."""
    first_day = parse_month(month)
    if first_day < FIRST_MONTH:
        raise ValueError(
            f"month must be {format_month(FIRST_MONTH)} or later (TLC records start then), got {month!r}"
        )
    return month


# --- Partitions ------------------------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class Partition:
    """One source's month: the unit that is dropped, ingested, aggregated and gated on.

    Made once at the edge (``Partition("green", "2024-01")`` from validated input, or
    ``Partition.from_logical_date`` in an ingest run) and passed down: code that receives one
    trusts it. A bad source or month raises a ValueError naming the field and what is allowed.
    """

    source: str
    month: str

    def __post_init__(self) -> None:
        check_source(self.source)
        check_month(self.month)

    @classmethod
    def from_logical_date(cls, source: str, logical_date: object) -> Partition:
        """The partition an ``ingest_taxi_trips`` run ingests for ``source`` (see ``month_of_logical_date``)."""
        return cls(source, month_of_logical_date(logical_date))

    @property
    def first_day(self) -> date:
        return parse_month(self.month)

    @property
    def metrics_run_id(self) -> str:
        """The run id of the ``create_metrics`` run an ingest run triggers for this partition."""
        return f"ingest__{self.source}__{self.month}"

    @property
    def metrics_conf(self) -> dict[str, str]:
        """The conf of that ``create_metrics`` run."""
        return {"source": self.source, "month": self.month}

    def __str__(self) -> str:
        return f"{self.source} {self.month}"


# --- Paths ----------------------------------------------------------------------------------------

DATA_DIR_ENV = "TAXIFLOW_DATA_DIR"
# An ``s3://`` data root takes its endpoint and keys from this Airflow connection (conn type aws).
STORAGE_CONN_ENV = "TAXIFLOW_STORAGE_CONN_ID"
STORAGE_CONN_ID_DEFAULT = "taxiflow_storage"

# A ``pathlib.Path`` or an ``airflow.sdk.ObjectStoragePath``. Typed loosely on purpose: the two share
# the pathlib methods the data layer calls, and what they do not share is dispatched on
# ``taxiflow.data.storage.is_remote``.
DataPath = Any


@dataclass(frozen=True)
class DataPaths:
    """Every folder taxiflow reads or writes, below one root.

    ``root`` is a ``pathlib.Path`` (local disk) or an Airflow ``ObjectStoragePath`` (``s3://``): both
    join and name paths the same way, and ``taxiflow.data.storage`` does what differs.
    """

    root: DataPath

    @property
    def landing(self) -> DataPath:
        return self.root / "landing"

    @property
    def raw(self) -> DataPath:
        return self.root / "raw"

    @property
    def warehouse(self) -> DataPath:
        return self.root / "warehouse"

    @property
    def reference(self) -> DataPath:
        return self.root / "reference"

    @property
    def requests(self) -> DataPath:
        return self.root / "requests"

    @property
    def outputs(self) -> DataPath:
        return self.root / "outputs"

    @property
    def zone_table(self) -> DataPath:
        return self.reference / "taxi_zone_lookup.csv"

    @property
    def request_claims(self) -> DataPath:
        """The request-file door's claims on the run ids it starts (``taxiflow.doors.request_claims``)."""
        return self.root / "state" / "request-claims"

    @property
    def trips(self) -> DataPath:
        """The warehouse's normalised trips: ``source=<source>/month=<YYYY-MM>/`` partitions."""
        return self.warehouse / "trips"

    def landing_dir(self, partition: Partition) -> DataPath:
        return self.landing / partition.source / partition.month

    def raw_dir(self, partition: Partition) -> DataPath:
        return self.raw / partition.source / partition.month

    def trips_source_dir(self, source: str) -> DataPath:
        """The folder of one source's trips partitions."""
        return self.trips / f"source={source}"

    def trips_dir(self, partition: Partition) -> DataPath:
        """One partition of normalised trips: ``trips.parquet`` plus ``_summary.json``."""
        return self.trips_source_dir(partition.source) / f"month={partition.month}"

    def metrics_source_dir(self, table: str, source: str) -> DataPath:
        """The folder of one source's partitions of a metrics table."""
        return self.warehouse / "metrics" / table / f"source={source}"

    def metrics_dir(self, table: str, partition: Partition) -> DataPath:
        """One partition of a metrics table (``hourly_zone`` or ``hourly_borough``)."""
        return self.metrics_source_dir(table, partition.source) / f"month={partition.month}"

    def weekly_summary(self, source: str) -> DataPath:
        return self.outputs / f"trips_by_week_{source}.csv"


# A request file is ``requests/<stem>.json``: the folder's watcher (``taxiflow.components.triggers``)
# and its reader (``taxiflow.doors.request_files``) go by this one rule.
REQUEST_SUFFIX = ".json"


def is_request_file_name(name: str) -> bool:
    """True for ``<stem>.json`` with a stem that is not hidden (``.x.json``) or empty (``.json``)."""
    return name.endswith(REQUEST_SUFFIX) and not name.startswith(".")


# --- Tunables (environment, read at call time) ----------------------------------------------------


def env_seconds(name: str, default: float) -> float:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return float(value)
    except ValueError as err:
        raise ValueError(f"{name} must be a number of seconds, got {value!r}") from err


def duckdb_settings() -> dict[str, str]:
    """DuckDB limits for a task: bounded so Celery workers sharing a host cannot exhaust it."""
    return {
        "memory_limit": os.environ.get("TAXIFLOW_DUCKDB_MEMORY_LIMIT", "1GB"),
        "threads": os.environ.get("TAXIFLOW_DUCKDB_THREADS", str(os.cpu_count() or 2)),
        "preserve_insertion_order": "false",
    }


def month_of_logical_date(logical_date: object, dag_id: str = INGEST_DAG_ID) -> str:
    """The month a monthly run of ``dag_id`` (ingest, download) covers: its logical date must be a month's first day.

    Manual runs without a logical date cannot say which month they mean, so they fail here with
    the command that does the right thing.
    """
    if logical_date is None:
        raise ValueError(
            f"{dag_id} needs a logical date (the first day of the month its run covers); this run "
            f"has none. Trigger it as: airflow dags trigger {dag_id} -l 2024-01-01T00:00:00+00:00"
        )
    day = getattr(logical_date, "day", None)
    if day != 1 or (getattr(logical_date, "hour", 0), getattr(logical_date, "minute", 0)) != (0, 0):
        raise ValueError(
            f"{dag_id} runs cover whole months: the logical date must be the first day of a "
            f"month at 00:00 UTC (e.g. 2024-01-01T00:00:00+00:00), got {logical_date}"
        )
    return format_month(logical_date)  # type: ignore[arg-type]


# How long an ingest run waits for a drop before failing that source's branch (and the alert's cap).
DEFAULT_DROP_TIMEOUT = 6 * 3600.0


def drop_timeout() -> float:
    """``TAXIFLOW_DROP_TIMEOUT`` in seconds (default 6 h)."""
    return env_seconds("TAXIFLOW_DROP_TIMEOUT", DEFAULT_DROP_TIMEOUT)


def wait_settings(name: str, poke_interval: float, timeout: float) -> dict[str, float]:
    """``poke_interval``/``timeout`` for a waiting task, overridable by environment.

    ``TAXIFLOW_<NAME>_POKE_INTERVAL`` and ``TAXIFLOW_<NAME>_TIMEOUT`` (seconds), e.g.
    ``TAXIFLOW_DROP_TIMEOUT=86400`` lets a drop arrive up to a day after its run starts.
    """
    return {
        "poke_interval": env_seconds(f"TAXIFLOW_{name}_POKE_INTERVAL", poke_interval),
        "timeout": env_seconds(f"TAXIFLOW_{name}_TIMEOUT", timeout),
    }
