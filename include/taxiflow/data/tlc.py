"""Where NYC TLC publishes its files, and the local file names a download goes through.

TLC serves every trip-record month of every family as
``<base>/trip-data/<source>_tripdata_<YYYY-MM>.parquet`` (``yellow`` from 2009-01, ``green`` from
2013-08, ``fhv`` from 2015-01, ``fhvhv`` from 2019-02; TLC converted its former CSV files to Parquet
and kept each era's column names) and the zone table as ``<base>/misc/taxi_zone_lookup.csv``.
Pure helpers: no Airflow, no network.
"""

from __future__ import annotations

import time

from taxiflow.config import SOURCE_NAMES, SOURCES, parse_month
from taxiflow.data import storage
from taxiflow.data.storage import DataPath

# Airflow connection whose host is the TLC base URL (e.g. AIRFLOW_CONN_NYC_TLC=http://127.0.0.1:8000).
TLC_CONN_ID = "nyc_tlc"

# TLC's public download host: what the ``nyc_tlc`` connection holds in production.
TLC_PUBLIC_BASE_URL = "https://d37ci6vzurychx.cloudfront.net"

ZONE_TABLE_ENDPOINT = "misc/taxi_zone_lookup.csv"

# A download lands under a hidden ``.<name>.<random>.part`` name first, renamed only once complete.
PART_SUFFIX = ".part"


def check_source(source: str) -> str:
    """``source`` itself, or a ValueError naming the bad value and the allowed ones."""
    if source not in SOURCE_NAMES:
        raise ValueError(f"source must be one of {', '.join(SOURCE_NAMES)}, got {source!r}")
    return source


def trip_file_name(source: str, month: str) -> str:
    """``("green", "2024-01")`` -> ``"green_tripdata_2024-01.parquet"`` (both values validated).

    A month before TLC published the source is a ValueError saying from when it exists.
    """
    check_source(source)
    parse_month(month)
    if month < SOURCES[source].first_month:  # "YYYY-MM" strings order as months
        raise ValueError(
            f"TLC publishes {source} trips from {SOURCES[source].first_month} on: there is no {source} "
            f"file for {month}"
        )
    return f"{source}_tripdata_{month}.parquet"


def trip_endpoint(source: str, month: str) -> str:
    """The path of one month's trip file below the TLC base URL."""
    return f"trip-data/{trip_file_name(source, month)}"


def missing_connection_message(conn_id: str) -> str:
    """What to tell an operator whose TLC connection is not defined: its id and how to define it."""
    return (
        f"Airflow connection {conn_id!r} is not defined; it holds the base URL of TLC's files. Define it, "
        f"e.g. AIRFLOW_CONN_{conn_id.upper()}='{TLC_PUBLIC_BASE_URL}' (TLC's public host) in the environment "
        f"of every Airflow process, or: airflow connections add {conn_id} --conn-uri '{TLC_PUBLIC_BASE_URL}'"
    )


def is_stale(path: DataPath, max_age_days: float, now: float | None = None) -> bool:
    """True when ``path`` (local or in the bucket) is missing or was last modified more than ``max_age_days`` ago."""
    try:
        modified = storage.info(path)["modified"].timestamp()
    except FileNotFoundError:
        return True
    current = time.time() if now is None else now
    return current - modified > max_age_days * 86400
