"""Reports on both backends: published as one version, read through the manifest, a name never taken twice.

Each test runs twice (``any_root``: ``local`` and ``s3``); the ``s3`` runs start SeaweedFS once per
session, so run them under the heavy lock: ``flock /tmp/taxiflow-heavy.lock .venv/bin/python -m
pytest tests/unit/reports/test_publish_backends.py``.
"""

from __future__ import annotations

import threading

import pytest

from taxiflow.data import storage
from taxiflow.reports import outputs
from taxiflow.reports.request import InvalidRequest, ReportRequest


def _report_request(name: str, borough: str = "Manhattan") -> ReportRequest:
    return ReportRequest.from_conf({
        "borough": borough, "start_date": "2024-01-01", "end_date": "2024-02-01",
        "sources": ["green"], "name": name,
    })


def test_a_report_is_read_as_one_version_of_png_and_csv(any_root):
    request = _report_request("jan")
    outputs.publish_report(request, b"png-1", b"csv-1", 1, run_id="r1")
    outputs.publish_report(request, b"png-2", b"csv-2", 2, run_id="r2")
    report = outputs.published_report(request)
    assert report is not None
    assert (report.png, report.csv, report.manifest["run_id"]) == (b"png-2", b"csv-2", "r2")
    version = report.manifest["version"]  # the superseded version is gone; only the manifest and one version stay
    assert storage.files_below(outputs.report_dir("jan")) == sorted(
        [outputs.MANIFEST_FILE, f"{version}/jan.csv", f"{version}/jan.png"]
    )


def test_a_name_taken_by_another_request_is_not_overwritten(any_root):
    outputs.publish_report(_report_request("mine"), b"png", b"csv", 1)
    with pytest.raises(InvalidRequest, match="already holds the report for a different request"):
        outputs.publish_report(_report_request("mine", borough="Queens"), b"other", b"other", 2)
    report = outputs.read_report("mine")
    assert report is not None and report.png == b"png"


def test_of_two_racing_publishers_of_one_name_exactly_one_wins(any_root):
    """Two requests race for one new name: the conditional manifest write lets exactly one publish."""
    barrier = threading.Barrier(2)
    results: dict[str, str] = {}

    def publish(borough: str) -> None:
        barrier.wait()
        try:
            outputs.publish_report(_report_request("race", borough), borough.encode(), borough.encode(), 1)
            results[borough] = "published"
        except InvalidRequest:
            results[borough] = "refused"

    threads = [threading.Thread(target=publish, args=(b,)) for b in ("Queens", "Bronx")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results.values()) == ["published", "refused"]
    winner = next(b for b, r in results.items() if r == "published")
    report = outputs.read_report("race")
    assert report is not None and report.png == report.csv == winner.encode()
    version = report.manifest["version"]
    assert storage.files_below(outputs.report_dir("race")) == sorted(  # the loser left nothing behind
        [outputs.MANIFEST_FILE, f"{version}/race.csv", f"{version}/race.png"]
    )
