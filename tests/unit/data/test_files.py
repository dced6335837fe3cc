"""The one atomic writer (``taxiflow.data.files``): old file or new, never half, never a leftover."""

from __future__ import annotations

import json
import os
import stat

import pytest

from taxiflow.data import files


def test_write_replaces_the_target_whole_and_leaves_no_temp_file(tmp_path):
    target = tmp_path / "out" / "report.csv"
    files.write_text_atomically(target, "old\n")
    files.write_text_atomically(target, "new\n")
    assert target.read_text() == "new\n"
    assert sorted(p.name for p in target.parent.iterdir()) == ["report.csv"]
    assert stat.S_IMODE(target.stat().st_mode) == 0o644  # readable by whoever reads the data root


def test_a_failed_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "part.parquet"
    target.write_text("previous")

    def half_then_fail(file):
        file.write(b"half")
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError, match="disk on fire"):
        files.write_atomically(target, half_then_fail)
    assert target.read_text() == "previous"
    assert [p.name for p in tmp_path.iterdir()] == ["part.parquet"]


def test_temp_names_are_hidden_unique_and_carry_the_suffix(tmp_path):
    target = tmp_path / "green_tripdata_2024-01.parquet"
    with files.replacing(target, suffix=".part") as first, files.replacing(target, suffix=".part") as second:
        assert first != second
        for temp in (first, second):
            assert temp.parent == tmp_path and temp.name.startswith(".") and temp.name.endswith(".part")
        first.write_text("one")
        second.write_text("two")
    assert target.read_text() == "one"  # the outer block finishes last: its rename wins, whole
    assert [p.name for p in tmp_path.iterdir()] == [target.name]


def test_a_link_at_the_target_is_replaced_not_followed(tmp_path):
    elsewhere = tmp_path / "elsewhere.json"
    elsewhere.write_text("{}")
    target = tmp_path / "request.error.json"
    os.symlink(elsewhere, target)
    files.write_json_atomically(target, {"error": "bad borough"})
    assert not target.is_symlink() and json.loads(target.read_text()) == {"error": "bad borough"}
    assert elsewhere.read_text() == "{}"
