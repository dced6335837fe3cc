"""Request files, checked on small folders in tmp_path: run ids, error files, containment, read-only."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from taxiflow.config import DataPaths
from taxiflow.doors.request_files import (
    MAX_REQUEST_BYTES,
    error_file_for,
    request_file_owner,
    request_file_stem,
    request_run_id,
    scan_requests,
)

VALID = {"borough": "Staten Island", "start_date": "2024-01-01", "end_date": "2024-02-01"}
PROJECT_DIR = Path(__file__).resolve().parents[3]


@pytest.fixture
def paths(tmp_path) -> DataPaths:
    paths = DataPaths(tmp_path / "data")
    paths.requests.mkdir(parents=True)
    return paths


def drop(paths: DataPaths, name: str, content: object) -> Path:
    path = paths.requests / name
    path.write_bytes(content if isinstance(content, bytes) else json.dumps(content).encode())
    return path


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Bytes and mtime of every entry (links not followed), to prove nothing was touched."""
    return {
        p.name: (p.read_bytes() if p.is_file() and not p.is_symlink() else b"", os.lstat(p).st_mtime_ns)
        for p in sorted(folder.iterdir())
    }


def error_of(paths: DataPaths, stem: str) -> dict:
    return json.loads((paths.outputs / f"{stem}.error.json").read_text())


def test_valid_file_maps_to_run_id_from_name_and_content(paths):
    path = drop(paths, "january-staten-island.json", VALID)
    scan = scan_requests(paths)
    [request] = scan.valid
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert request.run_id == f"request__january-staten-island__{digest[:16]}"
    assert request.conf == {**VALID, "sources": ["yellow", "green"], "name": "january-staten-island"}
    assert scan.rejected == []
    assert not paths.outputs.exists() or list(paths.outputs.iterdir()) == []


def test_run_id_is_stable_and_changes_only_with_content(paths):
    drop(paths, "req.json", VALID)
    first = scan_requests(paths).valid[0].run_id
    assert scan_requests(paths).valid[0].run_id == first  # no state: the same bytes, the same id

    drop(paths, "req.json", {**VALID, "end_date": "2024-01-15"})
    changed = scan_requests(paths).valid[0].run_id
    assert changed != first and changed.startswith("request__req__")

    drop(paths, "req.json", VALID)  # changed back: the original run id, which Airflow already has
    assert scan_requests(paths).valid[0].run_id == first
    assert request_run_id("req", "ab" * 32) == "request__req__" + "ab" * 8


def test_a_run_id_names_its_request_file_only_if_request_run_id_made_it():
    run_id = request_run_id("jan__staten", "ab" * 32)
    assert request_file_stem(run_id) == "jan__staten"
    assert request_file_owner(run_id, "jan__staten") == "requests/jan__staten.json"
    assert request_file_owner(run_id, "jan") is None  # the report of another name is not this file's
    for other in ("manual__2024-01-01T00:00:00+00:00", "request__jan", "request__jan__short", "", None):
        assert request_file_stem(other) is None
        assert request_file_owner(other, "jan") is None


def test_example_request_shipped_with_the_project_is_valid(tmp_path):
    paths = DataPaths(tmp_path)
    paths.requests.mkdir()
    example = PROJECT_DIR / "data" / "requests" / "january-staten-island.json"
    (paths.requests / example.name).write_bytes(example.read_bytes())
    [request] = scan_requests(paths).valid
    assert request.conf["borough"] == "Staten Island"
    assert (request.conf["start_date"], request.conf["end_date"]) == ("2024-01-01", "2024-02-01")


@pytest.mark.parametrize(
    ("content", "field", "in_message"),
    [
        (b"{not json", "file", "not valid JSON"),
        (b"\xff\xfe\x00garbage", "file", "not UTF-8"),
        (b'["Manhattan"]', "conf", "is not an object"),
        (b"null", "conf", "is not an object"),
        (b'{"borough": "Bronx", "borough": "Queens", "start_date": "2024-01-01", "end_date": "2024-02-01"}',
         "file", "more than once"),
        ({"start_date": "2024-01-01", "end_date": "2024-02-01"}, "borough", "required"),
        ({"borough": "Staten Island", "end_date": "2024-02-01"}, "start_date", "required"),
        ({**VALID, "borough": "Narnia"}, "borough", "'Narnia' is not one of"),
        ({**VALID, "start_date": "2024-13-01"}, "start_date", "is not a 'date'"),
        ({**VALID, "end_date": 20240201}, "end_date", "is not of type 'string'"),
        ({**VALID, "start_date": "2024-02-01", "end_date": "2024-01-01"}, "end_date", "not after start_date"),
        ({**VALID, "start_date": "2008-12-01"}, "start_date", "'2008-12-01' does not match"),
        ({**VALID, "start_date": "2024-01-01", "end_date": "2099-01-01"}, "end_date", "after the current month"),
        ({**VALID, "start_date": "2010-01-01", "end_date": "2014-01-01"}, "end_date", "more than the maximum of 1096"),
        ({k: v for k, v in VALID.items() if k != "borough"}, "borough", "is required"),
        ({**VALID, "sources": ["blue"]}, "sources", "'blue' is not one of"),
        ({**VALID, "colour": "yellow"}, "conf", "unknown key 'colour'"),
        ({**VALID, "name": "elsewhere"}, "name", "cannot set 'name'"),
    ],
)
def test_bad_file_gets_an_error_file_naming_the_field(paths, content, field, in_message):
    drop(paths, "good.json", VALID)
    bad = drop(paths, "bad.json", content)
    scan = scan_requests(paths)

    assert [r.path.name for r in scan.valid] == ["good.json"]  # other files proceed
    error = error_of(paths, "bad")
    assert error["field"] == field
    assert in_message in error["error"]
    assert error["file"] == "requests/bad.json"
    assert error["allowed"]
    assert error["sha256"] == hashlib.sha256(bad.read_bytes()).hexdigest()
    assert error["checked_at"].endswith("+00:00")
    assert not (paths.outputs / "good.error.json").exists()


def test_schema_errors_read_as_airflow_words_them(paths):
    """The message is Airflow's own param validation message, as the CLI and REST v2 print it."""
    drop(paths, "bad.json", {**VALID, "borough": "Narnia"})
    scan_requests(paths)
    error = error_of(paths, "bad")
    assert error["error"] == (
        "Invalid input for param borough: 'Narnia' is not one of "
        "['Manhattan', 'Brooklyn', 'Queens', 'Bronx', 'Staten Island']"
    )
    assert error["value"] == "Narnia"
    assert error["allowed"] == ["Manhattan", "Brooklyn", "Queens", "Bronx", "Staten Island"]


@pytest.mark.parametrize("stem", ["my report", "report.v2", "-leading-dash", "x" * 81])
def test_file_names_that_are_not_valid_output_names_get_an_error_file(paths, stem):
    drop(paths, f"{stem}.json", VALID)
    scan = scan_requests(paths)
    assert scan.valid == []
    assert error_of(paths, stem)["field"] == "name"


def test_huge_file_is_refused_without_parsing(paths):
    padding = " " * MAX_REQUEST_BYTES
    drop(paths, "huge.json", (json.dumps(VALID)[:-1] + padding + "}").encode())
    scan = scan_requests(paths)
    assert scan.valid == []
    error = error_of(paths, "huge")
    assert error["field"] == "file" and str(MAX_REQUEST_BYTES) in error["error"]


def test_links_hidden_files_other_suffixes_and_folders_are_ignored(paths, tmp_path):
    outside = tmp_path / "outside.json"
    outside.write_text(json.dumps(VALID))
    (paths.requests / "link.json").symlink_to(outside)
    (paths.requests / "dangling.json").symlink_to(tmp_path / "nowhere.json")
    (paths.requests / "escape.json").symlink_to(Path("..") / ".." / "outside.json")
    drop(paths, ".hidden.json", VALID)
    drop(paths, "..json", VALID)
    drop(paths, "notes.txt", VALID)
    drop(paths, "upper.JSON", VALID)
    (paths.requests / "folder.json").mkdir()
    os.mkfifo(paths.requests / "pipe.json")

    scan = scan_requests(paths)
    assert scan.valid == [] and scan.rejected == []
    assert set(scan.ignored) == {
        "link.json", "dangling.json", "escape.json", ".hidden.json", "..json", "notes.txt",
        "upper.JSON", "folder.json", "pipe.json",
    }
    assert not paths.outputs.exists()


def test_error_files_stay_inside_outputs(paths, tmp_path):
    for stem in ("..", ".", "", "../x", "a/b", ".hidden"):
        with pytest.raises(ValueError):
            error_file_for(stem, paths.outputs)
    assert error_file_for("ok", paths.outputs) == paths.outputs / "ok.error.json"

    # A link planted where the error file goes is replaced, never written through.
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    paths.outputs.mkdir()
    (paths.outputs / "bad.error.json").symlink_to(victim)
    drop(paths, "bad.json", {**VALID, "borough": "Narnia"})
    scan_requests(paths)
    assert victim.read_text() == "keep me"
    assert not (paths.outputs / "bad.error.json").is_symlink()
    assert error_of(paths, "bad")["field"] == "borough"
    assert sorted(p.name for p in paths.outputs.iterdir()) == ["bad.error.json"]  # no temp files left


def test_stale_error_file_is_removed_when_the_file_becomes_valid(paths):
    drop(paths, "req.json", {**VALID, "borough": "Narnia"})
    scan_requests(paths)
    assert (paths.outputs / "req.error.json").exists()

    drop(paths, "req.json", VALID)
    scan = scan_requests(paths)
    assert [r.path.name for r in scan.valid] == ["req.json"]
    assert scan.removed_error_files == [paths.outputs / "req.error.json"]
    assert not (paths.outputs / "req.error.json").exists()


def test_unchanged_bad_file_keeps_its_error_file_as_is(paths):
    drop(paths, "bad.json", {**VALID, "borough": "Narnia"})
    scan_requests(paths, now=lambda: "2024-01-01T00:00:00+00:00")
    before = (paths.outputs / "bad.error.json").read_bytes()
    scan_requests(paths, now=lambda: "2024-06-01T00:00:00+00:00")
    assert (paths.outputs / "bad.error.json").read_bytes() == before

    drop(paths, "bad.json", {**VALID, "borough": "Atlantis"})  # new content: a new error
    scan_requests(paths, now=lambda: "2024-06-01T00:00:00+00:00")
    error = error_of(paths, "bad")
    assert error["value"] == "Atlantis" and error["checked_at"] == "2024-06-01T00:00:00+00:00"


def test_request_files_are_never_modified(paths, tmp_path):
    drop(paths, "good.json", VALID)
    drop(paths, "bad.json", b"{oops")
    drop(paths, "late.json", {**VALID, "start_date": "2024-03-01"})
    drop(paths, "notes.txt", b"hello")
    (paths.requests / "link.json").symlink_to(paths.requests / "good.json")
    os.utime(paths.requests / "good.json", ns=(1_000_000_000, 1_000_000_000))
    before = snapshot(paths.requests)

    for _ in range(2):
        scan_requests(paths)
    assert snapshot(paths.requests) == before


def test_missing_requests_folder_is_an_empty_scan(tmp_path):
    scan = scan_requests(DataPaths(tmp_path / "nothing-here"))
    assert (scan.valid, scan.rejected, scan.ignored) == ([], [], [])
