"""Copies of a drop into a fresh raw version on local disk: times kept, a link planted after listing refused."""

from __future__ import annotations

import hashlib
import os

import pytest

from taxiflow.config import Partition
from taxiflow.data import folders, landing, raw
from tests.unit.data.test_ingest import land


def test_copy_into_copies_the_files_keeping_their_times(tmp_path):
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    first.write_text("a\n")
    second.write_text("b\n")
    os.utime(first, ns=(1_700_000_000_000_000_000, 1_700_000_000_000_000_000))
    folder = tmp_path / "out" / "v-version"

    copies, facts = folders.copy_into([first, second], folder)

    assert copies == [folder / "a.csv", folder / "b.csv"]
    assert facts == [{"name": name, "bytes": 2, "sha256": hashlib.sha256(data).hexdigest()}
                     for name, data in (("a.csv", b"a\n"), ("b.csv", b"b\n"))]
    assert sorted(p.name for p in folder.iterdir()) == ["a.csv", "b.csv"]
    assert (folder / "a.csv").read_text() == "a\n" and first.read_text() == "a\n"
    assert (folder / "a.csv").stat().st_mtime_ns == 1_700_000_000_000_000_000
    assert [p.name for p in folder.parent.iterdir()] == ["v-version"]  # no temporary left


def test_a_link_planted_after_listing_is_refused_and_never_followed(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("s3cr3t\n")
    planted = tmp_path / "trips.csv"
    planted.symlink_to(secret)
    folder = tmp_path / "out"

    with pytest.raises(folders.NotARegularFile, match=r"trips\.csv: cannot open it as a regular file without"):
        folders.copy_into([planted], folder)

    assert list(folder.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "secret.txt", "trips.csv"]


def test_copy_to_raw_names_a_file_swapped_for_a_link_after_the_drop_was_checked(data_root, monkeypatch, tmp_path):
    partition = Partition("green", "2024-01")
    folder = land(data_root, "green", "2024-01", {"trips.csv": b"lpep_pickup_datetime,PULocationID\n"})
    listed = landing.data_files(partition, data_root)
    (folder / "trips.csv").unlink()
    (folder / "trips.csv").symlink_to(tmp_path)  # the race: the name now leads elsewhere
    monkeypatch.setattr(raw, "data_files", lambda *_args: listed)

    with pytest.raises(landing.UnsafeDropError, match=r"^refused trips\.csv: cannot open .*Nothing of it was copied"):
        raw.copy_to_raw(partition, data_root)

    raw_dir = data_root.raw_dir(partition)
    assert not raw_dir.exists() or list(raw_dir.iterdir()) == []  # nothing copied, nothing staged
