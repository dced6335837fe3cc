"""Synthetic TLC trip files made on the fly for tests: small, in TLC's own column names and types."""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import datetime, timedelta

import pyarrow as pa
import pyarrow.parquet as pq


def minutes(first: datetime, count: int) -> list[datetime]:
    """``count`` pickup times a minute apart from ``first``."""
    return [first + timedelta(minutes=i) for i in range(count)]


def green_parquet(
    pickups: Sequence[datetime], zones: Sequence[int] = (236,), trip_time: timedelta = timedelta(0)
) -> bytes:
    """A green file in TLC's parquet schema, one trip per pickup time.

    Pickup zones cycle through ``zones``; every trip ends ``trip_time`` after its pickup in zone
    236 and costs 10.00 + 1.00 tip (12.00 in all) for one passenger over 2 miles.
    """
    rows = len(pickups)
    table = pa.table({
        "VendorID": pa.array([2] * rows, pa.int32()),
        "lpep_pickup_datetime": pa.array(pickups, pa.timestamp("us")),
        "lpep_dropoff_datetime": pa.array([pickup + trip_time for pickup in pickups], pa.timestamp("us")),
        "passenger_count": pa.array([1] * rows, pa.int64()),
        "trip_distance": pa.array([2.0] * rows, pa.float64()),
        "PULocationID": pa.array([zones[i % len(zones)] for i in range(rows)], pa.int32()),
        "DOLocationID": pa.array([236] * rows, pa.int32()),
        "payment_type": pa.array([1] * rows, pa.int64()),
        "fare_amount": pa.array([10.0] * rows, pa.float64()),
        "tip_amount": pa.array([1.0] * rows, pa.float64()),
        "total_amount": pa.array([12.0] * rows, pa.float64()),
    })
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()
