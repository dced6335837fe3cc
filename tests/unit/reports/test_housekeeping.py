"""The maintenance sweep (``storage_sweep``) on both backends: abandoned versions go, nothing else.

Versions of trips partitions, of raw copies and of reports.

``any_root``: a local folder, and SeaweedFS on loopback (marked ``s3``: run under the heavy lock).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from taxiflow.config import Partition
from taxiflow.data import raw, storage, versions, warehouse
from taxiflow.reports import housekeeping, outputs
from tests.unit.reports.test_publish import request_named

OLD_PARTITION_VERSION = "v-20240101T000000000000Z-0123abcd"


def test_the_sweep_removes_abandoned_versions_and_nothing_else(any_root):
    published = outputs.publish_report(request_named("jan"), b"png", b"csv", 1)
    storage.write_bytes(any_root.outputs / "trips_by_week_green.csv", b"week,trips\n")  # a file in outputs/
    old_report = outputs.new_version(datetime(2024, 1, 1, tzinfo=UTC))
    young_report = outputs.new_version()
    for version in (old_report, young_report):
        storage.write_bytes(outputs.report_dir("jan") / version / "jan.png", b"lost")
    storage.write_bytes(outputs.report_dir("never") / old_report / "never.csv", b"lost")  # no manifest ever
    january = any_root.trips_dir(Partition("green", "2024-01"))
    young_partition = versions.new_version()
    for version in (OLD_PARTITION_VERSION, young_partition):
        storage.write_bytes(january / version / warehouse.TRIPS_FILE, b"half")

    raw_month = any_root.raw_dir(Partition("green", "2024-01"))  # no partition names any of these
    young_raw = versions.new_version()
    for version in (OLD_PARTITION_VERSION, young_raw):
        storage.write_bytes(raw_month / version / "green.parquet", b"refused")

    swept = housekeeping.sweep_storage()

    assert sorted(swept["report_versions"]) == sorted([
        storage.url(outputs.report_dir("jan") / old_report), storage.url(outputs.report_dir("never") / old_report),
    ])
    assert swept["partition_versions"] == [storage.url(january / OLD_PARTITION_VERSION)]
    assert swept["raw_versions"] == [storage.url(raw_month / OLD_PARTITION_VERSION)]
    assert storage.files_below(raw_month) == [f"{young_raw}/green.parquet"]
    assert swept["multipart_uploads"] == []
    assert storage.files_below(any_root.outputs) == sorted([
        f"jan/{outputs.MANIFEST_FILE}", f"jan/{published.version}/jan.csv", f"jan/{published.version}/jan.png",
        f"jan/{young_report}/jan.png", "trips_by_week_green.csv",
    ])
    assert storage.files_below(january) == [f"{young_partition}/{warehouse.TRIPS_FILE}"]
    assert outputs.read_report("jan") is not None


def test_staged_copies_of_the_layout_before_versions_go_by_age(any_root):
    """``raw/<source>/.<month>.staged/`` (a refused drop, before raw was versioned): nothing reads it."""
    source_dir = any_root.raw / "green"
    staged = source_dir / ".2024-01.staged"
    storage.write_bytes(staged / "green_tripdata_2024-01.parquet", b"refused")
    storage.write_bytes(source_dir / "2024-01" / "green_tripdata_2024-01.parquet", b"raw before versions")

    assert raw.sweep_legacy_staged(source_dir) == []  # written just now: kept
    assert housekeeping.sweep_raw() == []
    assert raw.sweep_legacy_staged(source_dir, older_than=timedelta(0)) == [".2024-01.staged"]

    assert storage.files_below(source_dir) == ["2024-01/green_tripdata_2024-01.parquet"]
