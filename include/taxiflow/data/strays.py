"""Strays: which trips a month counts when TLC files list trips that started in a neighbouring month.

``trips.parquet`` of month M holds the trips its files list with a pickup in M, and also their
**strays**: trips that started in the month before or after M (``adjacent_months``; TLC files list
a few). A stray counts in the month it started, once: ``counted_trips_sql`` gives a month's trips
as its own rows plus the strays its neighbours hold for it, minus those its own files already list
(all trip columns equal), without duplicates. Metrics and the warehouse's ``trips`` view count
exactly those; ``taxiflow.data.warehouse.month_inputs`` finds the partitions a month reads.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from taxiflow.config import FIRST_MONTH, TRIP_SCHEMA, format_month, parse_month
from taxiflow.data import storage

_TRIP_COLUMNS = ", ".join(f'"{column}"' for column in TRIP_SCHEMA)


def adjacent_months(month: str) -> list[str]:
    """The month before and the month after ``month`` (none before TLC's first month)."""
    first = parse_month(month)
    before = date(first.year - 1, 12, 1) if first.month == 1 else date(first.year, first.month - 1, 1)
    after = date(first.year + 1, 1, 1) if first.month == 12 else date(first.year, first.month + 1, 1)
    return [format_month(day) for day in (before, after) if day >= FIRST_MONTH]


def month_bounds(month: str) -> tuple[datetime, datetime]:
    """``[first instant of the month, first instant of the next)`` as naive local timestamps."""
    first = parse_month(month)
    end = date(first.year + 1, 1, 1) if first.month == 12 else date(first.year, first.month + 1, 1)
    return datetime(first.year, first.month, 1), datetime(end.year, end.month, 1)


def counted_trips_sql(
    month: str, own_file: storage.DataPath, neighbour_files: Sequence[storage.DataPath]
) -> tuple[str, list[Any]]:
    """SQL (and its parameters) for the trips ``month`` counts, in ``TRIP_SCHEMA`` columns.

    Its own rows (``own_file``) with a pickup in the month, plus the strays its neighbours stored
    for it (``neighbour_files``) that its own files do not list already (every trip column equal,
    NULLs equal), each once.
    """
    start, end = month_bounds(month)
    own = storage.duckdb_path(own_file)
    own_sql = (
        f"SELECT {_TRIP_COLUMNS} FROM read_parquet(?, hive_partitioning = false) "
        "WHERE pickup_at >= ? AND pickup_at < ?"
    )
    if not neighbour_files:
        return own_sql, [own, start, end]
    strays_sql = (
        f"SELECT DISTINCT {_TRIP_COLUMNS} FROM read_parquet(?, hive_partitioning = false) "
        "WHERE pickup_at >= ? AND pickup_at < ?"
    )
    strays = [storage.duckdb_path(file) for file in neighbour_files]
    # EXCEPT compares whole rows with NULLs equal; only own rows at a stray's pickup instant can match,
    # so the (small) strays are hashed and the month's own rows are only probed.
    return (
        f"{own_sql} UNION ALL ("
        f"SELECT * FROM ({strays_sql}) EXCEPT "
        f"SELECT * FROM ({own_sql}) WHERE pickup_at IN (SELECT pickup_at FROM ({strays_sql})))",
        [own, start, end, strays, start, end, own, start, end, strays, start, end],
    )
