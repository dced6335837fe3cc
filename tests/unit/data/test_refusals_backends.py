"""Refusal records and kept partitions on both backends: a local folder and a real S3 server (SeaweedFS).

The ``s3`` runs start SeaweedFS once per session: run them under the heavy lock
(``flock /tmp/taxiflow-heavy.lock .venv/bin/python -m pytest tests/unit/data/test_refusals_backends.py``).
"""

from __future__ import annotations

import io
from datetime import datetime, timedelta

import pyarrow as pa
import pyarrow.parquet as pq

from taxiflow.config import SUCCESS_MARKER, Partition
from taxiflow.data import ingest, metrics, quality, refusals, storage
from taxiflow.data.raw import copy_to_raw, raw_files

MONTH = Partition("green", "2024-03")


def green_parquet(rows: int, first: datetime) -> bytes:
    pickups = [first + timedelta(minutes=i) for i in range(rows)]
    table = pa.table({
        "lpep_pickup_datetime": pa.array(pickups, pa.timestamp("us")),
        "lpep_dropoff_datetime": pa.array(pickups, pa.timestamp("us")),
        "PULocationID": pa.array([(236, 7, 999)[i % 3] for i in range(rows)], pa.int32()),
        "total_amount": pa.array([12.0] * rows, pa.float64()),
    })
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


def drop(paths, content: bytes) -> None:
    folder = paths.landing_dir(MONTH)
    storage.write_bytes(folder / "green_tripdata_2024-03.parquet", content)
    storage.write_bytes(folder / SUCCESS_MARKER, b"")


def test_a_refused_redrop_is_recorded_and_the_partition_kept_on_every_backend(any_root):
    drop(any_root, green_parquet(90, datetime(2024, 3, 2, 8, 0)))
    copy_to_raw(MONTH)
    summary = ingest.process_partition(MONTH)
    metrics.build_metrics(MONTH)
    assert refusals.refusal_outcome(MONTH)[1] is None

    raw_before = storage.files_below(any_root.raw_dir(MONTH))
    drop(any_root, b"corrupt" * 100)
    copy_to_raw(MONTH)
    try:
        ingest.process_partition(MONTH, run_id="scheduled__2024-03-01")
    except ingest.DropRefused as err:
        assert "kept as they were" in str(err)
    else:
        raise AssertionError("the corrupt re-drop was not refused")

    # the raw copy the partition names is kept; the refused drop stays in a version nobody names
    assert ingest.read_summary(MONTH)["raw_version"] == summary["raw_version"]
    assert [f.name for f in raw_files(MONTH)] == ["green_tripdata_2024-03.parquet"]
    raw_after = storage.files_below(any_root.raw_dir(MONTH))
    assert set(raw_before) - {"_staged.json"} <= set(raw_after) and len(raw_after) == len(raw_before) + 1
    kept = refusals.refusal_outcome(MONTH, run_id="scheduled__2024-03-01")[1]
    assert kept is not None and refusals.iso(kept.ingested_at) == summary["written_at"]
    assert kept.refusal.reason.startswith("cannot read green_tripdata_2024-03.parquet")
    assert refusals.refused_partitions() == [MONTH]
    (figures,) = quality.month_figures()
    assert (figures.rows_read, figures.rows_written) == (summary["rows_read"], summary["rows_written"]) == (90, 90)
    assert figures.refused_after_ingest and figures.rows_unknown_zone == 30  # zone 999 is in no table
