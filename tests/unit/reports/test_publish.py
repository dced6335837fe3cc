"""One publish protocol for reports on both backends: versions first, the manifest last, conditionally.

Each test runs on a local folder and on a real S3 server (SeaweedFS on loopback, ``s3`` marker:
run those under the heavy lock).
"""

from __future__ import annotations

import hashlib
import json
import threading
from datetime import UTC, datetime

import pytest

from taxiflow.data import conditional, documents, storage
from taxiflow.reports import outputs
from taxiflow.reports.request import ReportRequest


def request_named(name: str, borough: str = "Manhattan") -> ReportRequest:
    return ReportRequest.from_conf({"borough": borough, "start_date": "2024-01-01", "end_date": "2024-02-01",
                                    "sources": ["green"], "name": name})


def test_readers_see_one_versions_png_and_csv_while_it_is_replaced(any_root):
    """A reader loops over read_report while one request's report is published again and again."""
    request = request_named("live")
    outputs.publish_report(request, b"png-0", b"csv-0", 0)
    stop = threading.Event()
    seen: list[tuple[bytes, bytes, int]] = []
    problems: list[str] = []

    def read_loop() -> None:
        while not stop.is_set():
            report = outputs.read_report("live")
            if report is None:
                problems.append("no report")
                continue
            seen.append((report.png, report.csv, report.manifest["total_trips"]))

    reader = threading.Thread(target=read_loop)
    reader.start()
    try:
        for n in range(1, 7):
            outputs.publish_report(request, f"png-{n}".encode(), f"csv-{n}".encode(), n)
    finally:
        stop.set()
        reader.join()
    assert seen and problems == []
    for png, csv, total in seen:  # never the PNG of one version with the CSV or manifest of another
        assert png == f"png-{total}".encode() and csv == f"csv-{total}".encode()
    report = outputs.read_report("live")
    assert report is not None and report.manifest["total_trips"] == 6
    assert storage.files_below(outputs.report_dir("live")) == sorted(  # every superseded version is gone
        [outputs.MANIFEST_FILE, f"{report.manifest['version']}/live.csv", f"{report.manifest['version']}/live.png"]
    )


def test_versions_whose_publisher_died_before_its_manifest_go_with_the_next_publish(any_root):
    """A retried task cleans up after its crashed try: every version listed before its manifest goes.

    Even the young one: had its publisher been alive, it read the manifest before uploading, so its
    conditional write fails now and it starts over under a fresh version.
    """
    folder = outputs.report_dir("jan")
    old = outputs.new_version(datetime(2024, 1, 1, tzinfo=UTC))
    young = outputs.new_version()
    for version in (old, young):  # files uploaded, manifest never written
        storage.write_bytes(folder / version / "jan.png", b"lost")
    assert outputs.read_report("jan") is None  # no manifest: no report
    published = outputs.publish_report(request_named("jan"), b"png", b"csv", 1)
    assert storage.files_below(folder) == sorted([
        outputs.MANIFEST_FILE, f"{published.version}/jan.csv", f"{published.version}/jan.png",
    ])


def test_a_new_name_is_created_only_if_absent(any_root):
    """The first manifest of a name is a create-if-absent: a stale "new name" publish cannot overwrite."""
    manifest = outputs.manifest_path("fresh")
    outputs.publish_report(request_named("fresh"), b"png", b"csv", 1)
    with pytest.raises(conditional.PreconditionFailed):
        conditional.replace_if_match(manifest, b"{}", None)
    assert json.loads(documents.read_bytes(manifest))["total_trips"] == 1


def test_a_manifest_naming_a_file_outside_its_report_is_not_followed(any_root):
    request = request_named("jan")
    outputs.publish_report(request, b"png", b"csv", 1)
    manifest_file = outputs.manifest_path("jan")
    manifest = json.loads(documents.read_bytes(manifest_file))
    manifest["files"]["csv"]["key"] = "../other/secret.csv"
    storage.write_bytes(manifest_file, json.dumps(manifest).encode())
    with pytest.raises(ValueError, match="not a report file"):
        outputs.read_report("jan")


def test_a_report_published_before_versions_is_read_then_replaced(data_root):
    """A local report of the old layout (files beside the manifest) still reads, and is replaced cleanly."""
    request = request_named("old")
    folder = data_root.outputs / "old"
    folder.mkdir(parents=True)
    files = {}
    for kind in ("png", "csv"):
        (folder / f"old.{kind}").write_bytes(f"old-{kind}".encode())
        files[kind] = {"name": f"old.{kind}", "bytes": 7, "sha256": hashlib.sha256(f"old-{kind}".encode()).hexdigest()}
    (folder / outputs.MANIFEST_FILE).write_text(json.dumps(
        {"name": "old", "request": request.to_conf(), "run_id": "r0", "owner": None, "total_trips": 3, "files": files}
    ))
    report = outputs.published_report(request)
    assert report is not None and (report.png, report.csv) == (b"old-png", b"old-csv")

    published = outputs.publish_report(request, b"new-png", b"new-csv", 4, run_id="r1")
    report = outputs.published_report(request)
    assert report is not None and (report.png, report.manifest["run_id"]) == (b"new-png", "r1")
    assert storage.files_below(folder) == sorted(
        [outputs.MANIFEST_FILE, f"{published.version}/old.csv", f"{published.version}/old.png"]
    )


def test_a_link_in_place_of_a_report_folder_is_neither_read_nor_written(data_root, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    data_root.outputs.mkdir(parents=True)
    (data_root.outputs / "linked").symlink_to(elsewhere)
    assert outputs.read_report("linked") is None
    with pytest.raises(Exception, match="not a taxiflow report folder"):
        outputs.publish_report(request_named("linked"), b"png", b"csv", 1)
    assert list(elsewhere.iterdir()) == []
