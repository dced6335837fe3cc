"""What counts as a drop's data, and when a drop is ready."""

from __future__ import annotations

import pytest

from taxiflow.config import Partition
from taxiflow.data import landing


def drop(data_root, names, source="green", month="2024-01"):
    folder = data_root.landing_dir(Partition(source, month))
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(b"x")
    return folder


def test_data_files_lists_finished_data_files_sorted(data_root):
    drop(data_root, [
        "b.csv", "a.parquet", "c.csv.gz", "_SUCCESS", ".hidden.parquet", "_tmp.parquet",
        "d.parquet.tmp", "e.csv.part", "notes.txt", "upper.PARQUET",
    ])
    names = [path.name for path in landing.data_files(Partition("green", "2024-01"))]
    assert names == ["a.parquet", "b.csv", "c.csv.gz", "upper.PARQUET"]


def test_data_files_of_a_month_nobody_dropped_is_empty(data_root):
    assert landing.data_files(Partition("yellow", "2024-01")) == []


def test_paths_argument_wins_over_environment(data_root, tmp_path, monkeypatch):
    drop(data_root, ["a.parquet", "_SUCCESS"])
    monkeypatch.setenv("TAXIFLOW_DATA_DIR", str(tmp_path / "elsewhere"))
    assert landing.drop_is_ready(Partition("green", "2024-01"), data_root)
    assert not landing.drop_is_ready(Partition("green", "2024-01"))


@pytest.mark.parametrize(
    "names, ready",
    [
        ([], False),
        (["green_tripdata_2024-01.parquet"], False),  # marker not written yet
        (["_SUCCESS"], False),  # marker but no data
        (["_SUCCESS", ".green_tripdata_2024-01.parquet.123.tmp"], False),  # data still being written
        (["_SUCCESS", "green_tripdata_2024-01.parquet.part"], False),
        (["_SUCCESS", "green_tripdata_2024-01.parquet"], True),
        (["_SUCCESS", "yellow_tripdata_sample.csv"], True),
    ],
)
def test_drop_is_ready_needs_data_and_marker(data_root, names, ready):
    drop(data_root, names)
    assert landing.drop_is_ready(Partition("green", "2024-01")) is ready


def test_drop_is_ready_without_folder(data_root):
    assert landing.drop_is_ready(Partition("green", "2023-12")) is False


@pytest.mark.parametrize(
    "source, month, words",
    [
        ("purple", "2024-01", ["source", "'purple'", "'yellow'", "'green'"]),
        ("Yellow", "2024-01", ["source", "'Yellow'", "'yellow'"]),
        ("green", "2024-1", ["month", "YYYY-MM", "'2024-1'"]),
        ("green", "2024-13", ["month", "YYYY-MM", "'2024-13'"]),
        ("green", "2008-12", ["month", "2009-01", "'2008-12'"]),
        ("green", "../2024-01", ["month", "'../2024-01'"]),
    ],
)
def test_bad_source_or_month_is_named_with_what_is_allowed(data_root, source, month, words):
    with pytest.raises(ValueError) as raised:
        landing.drop_is_ready(Partition(source, month))
    for word in words:
        assert word in str(raised.value)


def test_describe_drop_says_what_is_missing(data_root):
    partition = Partition("green", "2024-02")
    folder = data_root.landing_dir(partition)
    assert "waiting for data files and _SUCCESS (found nothing)" in landing.describe_drop(partition, data_root)
    folder.mkdir(parents=True)
    (folder / "green_tripdata_2024-02.parquet").write_bytes(b"x")
    assert "waiting for _SUCCESS (found 1 data file(s))" in landing.describe_drop(partition, data_root)
    (folder / "_SUCCESS").touch()
    assert landing.describe_drop(partition, data_root).endswith("ready (1 data file(s) and _SUCCESS)")
