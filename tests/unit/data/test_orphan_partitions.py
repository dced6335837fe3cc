"""Partition versions nobody's ``_summary.json`` names go away, and a published one never does.

On both backends (``any_root``: a local folder, and SeaweedFS on loopback, marked ``s3``: run those
under the heavy lock). The rules are in ``taxiflow.data.versions`` and docs/object-storage.md.
"""

from __future__ import annotations

from datetime import datetime

import pytest

from taxiflow.config import Partition
from taxiflow.data import conditional, ingest, storage, versions, warehouse
from tests.support.trip_files import minutes
from tests.unit.data.test_versioned_partitions import green_parquet, ingest_drop, trips_by_month

JANUARY = Partition("green", "2024-01")
OLD = "v-20240101T000000000000Z-0123abcd"  # made long ago
FUTURE = "v-20991231T235959000000Z-89abcdef"  # made on a host whose clock runs ahead


def _orphan(folder, version: str) -> None:
    """What a writer that died before its summary leaves: staged data, no marker naming it."""
    storage.write_bytes(folder / version / warehouse.TRIPS_FILE, b"half a partition")


def test_a_retry_removes_what_its_crashed_try_staged_whatever_its_name(any_root):
    """The next publish of the partition deletes every version listed before its summary was written."""
    first = ingest_drop(any_root, JANUARY, green_parquet(minutes(datetime(2024, 1, 5), 30)))
    folder = any_root.trips_dir(JANUARY)
    crashed = versions.new_version()
    for version in (crashed, FUTURE, OLD):
        _orphan(folder, version)
    second = ingest_drop(any_root, JANUARY, green_parquet(minutes(datetime(2024, 1, 9), 20)))
    assert first["version"] != second["version"]
    assert storage.files_below(folder) == ["_summary.json", f"{second['version']}/trips.parquet"]
    assert trips_by_month() == {"2024-01": 20}


def test_a_summary_written_whose_answer_was_lost_keeps_its_version(any_root, monkeypatch):
    """The server wrote the marker, then the connection died: the version it names must stay."""
    real = conditional.replace_if_match

    def written_then_lost(target, data, expected):
        real(target, data, expected)
        raise OSError("connection reset by peer")

    ingest_drop(any_root, JANUARY, green_parquet(minutes(datetime(2024, 1, 5), 30)))
    with monkeypatch.context() as patched, pytest.raises(OSError, match="connection reset"):
        patched.setattr(conditional, "replace_if_match", written_then_lost)
        ingest_drop(any_root, JANUARY, green_parquet(minutes(datetime(2024, 1, 9), 20)))
    summary = ingest.read_summary(JANUARY)
    assert f"{summary['version']}/trips.parquet" in storage.files_below(any_root.trips_dir(JANUARY))
    assert trips_by_month() == {"2024-01": 20}
    # The version it superseded stays until the next publish (the write raised before its clean-up).
    third = ingest_drop(any_root, JANUARY, green_parquet(minutes(datetime(2024, 1, 10), 7)))
    assert storage.files_below(any_root.trips_dir(JANUARY)) == ["_summary.json", f"{third['version']}/trips.parquet"]


def test_a_staged_version_is_removed_unless_the_marker_names_it(any_root):
    published = ingest_drop(any_root, JANUARY, green_parquet(minutes(datetime(2024, 1, 5), 30)))
    folder = any_root.trips_dir(JANUARY)
    assert not versions.remove_version(folder, published["version"], marker=warehouse.SUMMARY_FILE)
    staged = versions.new_version()
    _orphan(folder, staged)
    assert versions.remove_version(folder, staged, marker=warehouse.SUMMARY_FILE)
    assert storage.files_below(folder) == ["_summary.json", f"{published['version']}/trips.parquet"]


def test_a_version_older_than_the_deadline_is_never_published(any_root):
    published = ingest_drop(any_root, JANUARY, green_parquet(minutes(datetime(2024, 1, 5), 30)))
    folder = any_root.trips_dir(JANUARY)
    _orphan(folder, OLD)
    before = versions.read_marker(folder, warehouse.SUMMARY_FILE)
    with pytest.raises(versions.VersionTooOld, match="not published"):
        versions.publish(folder, warehouse.SUMMARY_FILE, {**published, "version": OLD}, replaces=before)
    assert ingest.read_summary(JANUARY) == published
    assert storage.files_below(folder) == ["_summary.json", f"{published['version']}/trips.parquet"]


def test_the_sweep_removes_old_unnamed_versions_only(any_root):
    """The maintenance sweep: old and unnamed goes; young (a writer may be staging it) and named stay."""
    published = ingest_drop(any_root, JANUARY, green_parquet(minutes(datetime(2024, 1, 5), 30)))
    folder = any_root.trips_dir(JANUARY)
    young = versions.new_version()
    for version in (OLD, young):
        _orphan(folder, version)
    assert versions.sweep(folder, warehouse.SUMMARY_FILE) == [OLD]
    assert storage.files_below(folder) == sorted(
        ["_summary.json", f"{published['version']}/trips.parquet", f"{young}/trips.parquet"]
    )
    # However old the version the marker names, it stays; a folder with no marker loses its old versions.
    named_old = "v-20240102T000000000000Z-4567cdef"
    storage.copy_file(folder / published["version"] / warehouse.TRIPS_FILE, folder / named_old / warehouse.TRIPS_FILE)
    marker = versions.read_marker(folder, warehouse.SUMMARY_FILE)
    conditional.replace_if_match(folder / warehouse.SUMMARY_FILE,
                                 versions.json.dumps({**published, "version": named_old}).encode(), marker.tag)
    assert versions.sweep(folder, warehouse.SUMMARY_FILE, older_than=versions.PUBLISH_DEADLINE) == []
    unpublished = any_root.trips_dir(Partition("green", "2023-11"))
    _orphan(unpublished, OLD)
    assert versions.sweep(unpublished, warehouse.SUMMARY_FILE) == [OLD]
    assert storage.files_below(unpublished) == []
