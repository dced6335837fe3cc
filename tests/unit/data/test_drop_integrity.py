"""Drops that must not corrupt the numbers: links, files under the wrong month, corrupt re-drops.

Each case checks what a user sees (the error names the file and says what was kept) and what the
warehouse still holds afterwards (byte for byte), never that a function was called.
"""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timedelta

import pandas as pd
import pytest

from taxiflow.config import Partition
from taxiflow.data import ingest, landing, versions, warehouse
from taxiflow.data.raw import STAGED_FILE, copy_to_raw, raw_files
from tests.unit.data.test_ingest import land, written_trips, yellow_parquet

SECRET = "s3cr3t-password-line"


def january(n: int, start=datetime(2024, 1, 3, 8)) -> list[datetime]:
    return [start + timedelta(minutes=7 * i) for i in range(n)]


def snapshot(data_root, source, month):
    """Every byte of the month's raw copy and partition, to compare before and after."""
    folders = [data_root.raw_dir(Partition(source, month)), data_root.trips_dir(Partition(source, month))]
    files = [p for folder in folders if folder.exists() for p in sorted(folder.rglob("*")) if p.is_file()]
    return {p: p.read_bytes() for p in files}


def ingest_good_january(data_root):
    land(data_root, "yellow", "2024-01", {"good.parquet": lambda p: yellow_parquet(p, january(300), [4] * 300)})
    copy_to_raw(Partition("yellow", "2024-01"))
    return ingest.process_partition(Partition("yellow", "2024-01"))


# --- links and paths outside landing --------------------------------------------------------------


def test_a_symlinked_drop_file_is_refused_naming_it_and_never_read(data_root, tmp_path):
    outside = tmp_path / "private.csv"
    outside.write_text(f"{SECRET}\n{SECRET}\n")
    folder = land(data_root, "green", "2024-01", {})
    (folder / "trips.csv").symlink_to(outside)

    with pytest.raises(landing.UnsafeDropError) as caught:
        landing.drop_is_ready(Partition("green", "2024-01"))
    assert "landing/green/2024-01/trips.csv" in str(caught.value) and "symbolic link" in str(caught.value)
    with pytest.raises(landing.UnsafeDropError):
        copy_to_raw(Partition("green", "2024-01"))

    assert SECRET not in str(caught.value)
    assert not data_root.raw.exists()  # nothing staged, nothing copied
    assert outside.read_text() == f"{SECRET}\n{SECRET}\n"


def test_a_symlink_inside_landing_is_refused_too(data_root):
    folder = land(data_root, "green", "2024-01", {"real.csv": b"lpep_pickup_datetime,PULocationID\n"})
    (folder / "alias.csv").symlink_to(folder / "real.csv")
    with pytest.raises(landing.UnsafeDropError, match=r"alias\.csv: it is a symbolic link"):
        copy_to_raw(Partition("green", "2024-01"))


def test_a_month_folder_leading_outside_landing_is_refused(data_root, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "trips.parquet").write_bytes(SECRET.encode())
    (elsewhere / "_SUCCESS").touch()
    (data_root.landing / "green").mkdir(parents=True)
    (data_root.landing / "green" / "2024-01").symlink_to(elsewhere)

    with pytest.raises(landing.UnsafeDropError, match="landing/green/2024-01/: the folder leads outside"):
        landing.drop_is_ready(Partition("green", "2024-01"))
    assert not data_root.raw.exists()


# --- the month check ------------------------------------------------------------------------------


def test_a_month_dropped_under_the_wrong_folder_is_refused_with_counts(data_root):
    february = january(250, start=datetime(2024, 2, 2, 6))
    land(data_root, "yellow", "2024-01", {"yellow_tripdata_2024-02.parquet":
                                          lambda p: yellow_parquet(p, february + january(2), [4] * 252)})
    copy_to_raw(Partition("yellow", "2024-01"))

    with pytest.raises(ingest.DropRefused) as caught:
        ingest.process_partition(Partition("yellow", "2024-01"))

    message = str(caught.value)
    assert "yellow_tripdata_2024-02.parquet: 250 of its 252 rows (99.2%) have pickups outside 2024-01" in message
    assert "(250 in 2024-02)" in message and "wrong month" in message
    assert "nothing had been ingested for this month before" in message
    assert not warehouse.trips_file(Partition("yellow", "2024-01"), data_root).exists()
    assert raw_files(Partition("yellow", "2024-01"), data_root) == []  # no raw copy: only the refused version


def test_stray_rows_of_adjacent_months_are_kept_and_far_ones_dropped(data_root):
    """Strays of the month before and after are stored for their month; junk years are only counted."""
    pickups = [*january(400), datetime(2023, 12, 31, 23, 58), datetime(2024, 2, 1, 0, 3),
               datetime(2002, 12, 31, 23, 1), datetime(2088, 1, 1, 0, 40)]
    land(data_root, "yellow", "2024-01", {"y.parquet": lambda p: yellow_parquet(p, pickups, [4] * 404)})
    copy_to_raw(Partition("yellow", "2024-01"))
    summary = ingest.process_partition(Partition("yellow", "2024-01"))

    assert summary["rows_outside_month_by_month"] == {"2002-12": 1, "2023-12": 1, "2024-02": 1, "2088-01": 1}
    assert summary["rows_written"] == 400
    assert summary["rows_strays_kept"] == 2 and summary["strays_kept_by_month"] == {"2023-12": 1, "2024-02": 1}
    assert summary["rows_strays_dropped"] == 2
    assert summary["rows_outside_month"] == summary["rows_strays_kept"] + summary["rows_strays_dropped"]
    assert summary["rows_read"] == summary["rows_written"] + summary["rows_rejected"] + summary["rows_outside_month"]
    trips = written_trips(data_root, "yellow", "2024-01")
    assert trips["pickup_at"].min() >= datetime(2024, 1, 1) and trips["pickup_at"].max() < datetime(2024, 2, 1)
    stored = pd.read_parquet(warehouse.trips_file(Partition("yellow", "2024-01"), data_root))
    assert sorted(stored["pickup_at"])[0] == datetime(2023, 12, 31, 23, 58)
    assert sorted(stored["pickup_at"])[-1] == datetime(2024, 2, 1, 0, 3) and len(stored) == 402
    assert not (data_root.warehouse / "trips" / "source=yellow" / "month=2002-12").exists()


# --- re-drops are validated before they replace anything ------------------------------------------


@pytest.mark.parametrize(
    "bad_file, expected",
    [
        ({"good.parquet": SECRET.encode() * 20}, "cannot read good.parquet"),
        ({"good.parquet": lambda p: yellow_parquet(p, january(100, datetime(2024, 3, 1)), [4] * 100)},
         "100 of its 100 rows (100.0%) have pickups outside 2024-01 (100 in 2024-03)"),
    ],
    ids=["corrupt-bytes", "wrong-month"],
)
def test_a_failed_redrop_keeps_raw_and_partition_and_says_so(data_root, bad_file, expected):
    ingest_good_january(data_root)
    before = snapshot(data_root, "yellow", "2024-01")
    (data_root.landing_dir(Partition("yellow", "2024-01")) / "good.parquet").unlink()
    land(data_root, "yellow", "2024-01", bad_file)
    copy_to_raw(Partition("yellow", "2024-01"))

    with pytest.raises(ingest.DropRefused) as caught:
        ingest.process_partition(Partition("yellow", "2024-01"))

    message = str(caught.value)
    assert expected in message
    assert "the new drop is refused" in message
    kept = "last good raw copy (raw/yellow/2024-01/: good.parquet) and warehouse partition (present) are kept"
    assert kept in message
    assert SECRET not in message
    after = snapshot(data_root, "yellow", "2024-01")
    kept = {path: data for path, data in after.items() if path in before and path.name != STAGED_FILE}
    assert kept == {path: data for path, data in before.items() if path.name != STAGED_FILE}  # byte for byte
    new = sorted(path.name for path in set(after) - set(before))
    assert new == ["good.parquet"]  # the refused copy, in a raw version nobody names (swept by age)
    assert [p.read_bytes() for p in raw_files(Partition("yellow", "2024-01"))] == [
        before[path] for path in before if path.name == "good.parquet"]
    assert len(written_trips(data_root, "yellow", "2024-01")) == 300


def test_a_csv_whose_first_line_is_not_a_header_is_not_echoed(data_root):
    land(data_root, "green", "2024-01", {"notes.csv": f"{SECRET}:x:0:0:/root\nmore secret text\n".encode()})
    copy_to_raw(Partition("green", "2024-01"))
    with pytest.raises(ingest.DropRefused) as caught:
        ingest.process_partition(Partition("green", "2024-01"))
    assert "notes.csv: its header matches no green era" in str(caught.value)
    assert "it lacks 'pickup_at'" in str(caught.value)
    assert "not shown" in str(caught.value) and SECRET not in str(caught.value)


def test_a_staged_drop_is_published_with_its_partition_and_the_old_raw_copy_goes(data_root):
    """Until ``_summary.json`` names it, a staged drop is not the month's raw copy (raw and partition
    are published by that one write); then the superseded raw copy goes, and a rebuild reads the new one."""
    first = ingest_good_january(data_root)
    (data_root.landing_dir(Partition("yellow", "2024-01")) / "good.parquet").unlink()
    land(data_root, "yellow", "2024-01", {"new.parquet": lambda p: yellow_parquet(p, january(120), [5] * 120)})
    copy_to_raw(Partition("yellow", "2024-01"))
    assert [f.name for f in raw_files(Partition("yellow", "2024-01"))] == ["good.parquet"]  # still the old copy

    summary = ingest.process_partition(Partition("yellow", "2024-01"))

    assert summary["rows_written"] == 120 and [f["name"] for f in summary["raw_files"]] == ["new.parquet"]
    assert summary["raw_version"] != first["raw_version"]
    assert set(written_trips(data_root, "yellow", "2024-01")["pickup_zone_id"]) == {5}
    raw_dir = data_root.raw_dir(Partition("yellow", "2024-01"))
    assert sorted(p.name for p in raw_dir.iterdir()) == [STAGED_FILE, summary["raw_version"]]
    again = ingest.process_partition(Partition("yellow", "2024-01"))  # nothing staged: rebuilt from raw
    assert again["raw_version"] == summary["raw_version"] and again["rows_written"] == 120


def test_a_drop_staged_too_long_ago_is_not_published_and_says_copy_again(data_root):
    """The sweep may delete a raw version nobody names once it is 6 h old: one staged more than
    ``PUBLISH_DEADLINE`` ago is never published, and nothing is replaced."""
    first = ingest_good_january(data_root)
    land(data_root, "yellow", "2024-01", {"late.parquet": lambda p: yellow_parquet(p, january(50), [6] * 50)})
    copy_to_raw(Partition("yellow", "2024-01"))
    raw_dir = data_root.raw_dir(Partition("yellow", "2024-01"))
    staged = json.loads((raw_dir / STAGED_FILE).read_text())
    old = "v-20240101T000000000000Z-0123abcd"  # made by a writer long ago
    shutil.move(raw_dir / staged["version"], raw_dir / old)
    (raw_dir / STAGED_FILE).write_text(json.dumps({**staged, "version": old}))
    before = snapshot(data_root, "yellow", "2024-01")

    with pytest.raises(versions.VersionTooOld, match="run copy_to_raw again"):
        ingest.process_partition(Partition("yellow", "2024-01"))

    assert snapshot(data_root, "yellow", "2024-01") == before
    assert ingest.read_summary(Partition("yellow", "2024-01"))["raw_version"] == first["raw_version"]


def test_a_staged_drop_whose_files_are_gone_is_not_mistaken_for_a_rebuild(data_root):
    ingest_good_january(data_root)
    copy_to_raw(Partition("yellow", "2024-01"))
    raw_dir = data_root.raw_dir(Partition("yellow", "2024-01"))
    shutil.rmtree(raw_dir / json.loads((raw_dir / STAGED_FILE).read_text())["version"])  # swept, or another publish

    with pytest.raises(FileNotFoundError, match="has no files any more: run copy_to_raw again"):
        ingest.process_partition(Partition("yellow", "2024-01"))
