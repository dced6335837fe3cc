"""Report versions no manifest names go away; the one a manifest names never does.

On both backends (``any_root``: a local folder, and SeaweedFS on loopback, marked ``s3``: run those
under the heavy lock). The rules are in ``taxiflow.reports.outputs`` and docs/object-storage.md.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from taxiflow.data import conditional, storage
from taxiflow.reports import outputs
from tests.unit.reports.test_publish import request_named


class Killed(BaseException):
    """What a task timeout or a kill from the UI raises in a task (not an ``Exception``)."""


def test_a_failed_upload_leaves_nothing_behind(any_root, monkeypatch):
    real = storage.write_bytes

    def csv_fails(target, data):
        if target.name.endswith(".csv"):
            raise Killed("task timed out")
        return real(target, data)

    with monkeypatch.context() as patched, pytest.raises(Killed):
        patched.setattr(storage, "write_bytes", csv_fails)
        outputs.publish_report(request_named("jan"), b"png", b"csv", 1)
    assert storage.files_below(outputs.report_dir("jan")) == []


def test_a_publish_that_lost_the_race_starts_over_under_a_fresh_version(any_root, monkeypatch):
    """Another publish lands between our upload and our manifest: it deletes our version (listed before
    its manifest), so ours must not be named; we publish a fresh one, whole."""
    request = request_named("race")
    real = conditional.replace_if_match
    first_versions = []

    def another_publish_first(target, data, expected):
        if not first_versions:
            first_versions.extend(e.name for e in storage.list_dir(target.parent) if e.name.startswith("v-"))
            with monkeypatch.context() as inner:
                inner.setattr(conditional, "replace_if_match", real)
                outputs.publish_report(request, b"png-other", b"csv-other", 2)
        return real(target, data, expected)

    with monkeypatch.context() as patched:
        patched.setattr(conditional, "replace_if_match", another_publish_first)
        published = outputs.publish_report(request, b"png-mine", b"csv-mine", 1)
    assert published.version not in first_versions
    report = outputs.read_report("race")
    assert report is not None and (report.png, report.csv) == (b"png-mine", b"csv-mine")
    assert storage.files_below(outputs.report_dir("race")) == sorted(
        [outputs.MANIFEST_FILE, f"{published.version}/race.csv", f"{published.version}/race.png"]
    )


def test_a_manifest_written_whose_answer_was_lost_keeps_its_version(any_root, monkeypatch):
    real = conditional.replace_if_match

    def written_then_lost(target, data, expected):
        real(target, data, expected)
        raise OSError("connection reset by peer")

    with monkeypatch.context() as patched, pytest.raises(OSError, match="connection reset"):
        patched.setattr(conditional, "replace_if_match", written_then_lost)
        outputs.publish_report(request_named("jan"), b"png", b"csv", 1)
    report = outputs.read_report("jan")
    assert report is not None and (report.png, report.csv) == (b"png", b"csv")


def test_the_sweep_removes_old_unnamed_versions_only(any_root):
    """The maintenance sweep, for reports nobody publishes again: old and unnamed goes."""
    published = outputs.publish_report(request_named("jan"), b"png", b"csv", 1)
    folder = outputs.report_dir("jan")
    old = outputs.new_version(datetime(2024, 1, 1, tzinfo=UTC))
    young = outputs.new_version()  # a publisher may be uploading it right now
    for version in (old, young):
        storage.write_bytes(folder / version / "jan.png", b"lost")
    assert outputs.sweep_report("jan") == [old]
    assert outputs.sweep_report("jan", older_than=outputs.PUBLISH_DEADLINE * 0) == []  # never under the deadline
    assert storage.files_below(folder) == sorted([
        outputs.MANIFEST_FILE, f"{published.version}/jan.csv", f"{published.version}/jan.png", f"{young}/jan.png",
    ])
    # No manifest at all (every publisher died): old versions go too, the folder is then empty.
    storage.write_bytes(outputs.report_dir("lost") / old / "lost.png", b"lost")
    assert outputs.sweep_report("lost") == [old]
    assert storage.files_below(outputs.report_dir("lost")) == []
