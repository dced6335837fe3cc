"""Unfinished multipart uploads on a real S3 server (SeaweedFS on loopback): ours are aborted when an
upload fails, and the sweep aborts stale ones below the data root only.

Marked ``s3``: run under the heavy lock (``flock /tmp/taxiflow-heavy.lock .venv/bin/python -m pytest
tests/unit/data/test_multipart_uploads.py``). Also shows SeaweedFS serves ListMultipartUploads and
AbortMultipartUpload as taxiflow uses them (prefix, key and upload id, the ``Date`` header).
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from taxiflow.config import DATA_DIR_ENV
from taxiflow.data import faults, multipart, storage

pytestmark = pytest.mark.s3

PART = faults.ARMED_PART_SIZE  # the smallest part S3 accepts


class Killed(BaseException):
    """What a task timeout or a kill from the UI raises in a task: not an ``Exception``."""


@pytest.fixture
def s3_root(seaweedfs, monkeypatch):
    for name, value in seaweedfs.env(prefix=f"t-{uuid.uuid4().hex[:12]}").items():
        monkeypatch.setenv(name, value)
    return storage.root()


def _started_upload(root, key: str) -> None:
    """An upload with one part sent and never completed: what a process killed mid-upload leaves."""
    bucket, _, prefix = root.path.partition("/")
    answer = root.fs.call_s3("create_multipart_upload", Bucket=bucket, Key=f"{prefix}/{key}")
    root.fs.call_s3("upload_part", Bucket=bucket, Key=f"{prefix}/{key}", UploadId=answer["UploadId"],
                    PartNumber=1, Body=b"x" * PART)


def test_an_upload_killed_between_parts_is_aborted_by_its_own_process(s3_root, tmp_path, monkeypatch):
    """A task timeout (or a kill from the UI) is raised in the task's main thread while s3fs sends the
    parts from fsspec's IO thread, so s3fs's own abort (on an ``Exception`` inside the upload) never
    runs and the process exits leaving the parts. ``storage.upload`` aborts them itself."""
    local = tmp_path / "big.parquet"
    with local.open("wb") as sparse:  # larger than one PUT takes: it goes in parts (no disk used)
        sparse.truncate(storage.SINGLE_PUT_LIMIT + 1)
    target = s3_root / "warehouse" / "big.parquet"

    def put_file_killed_after_its_first_part(lpath, rpath, **options):
        _started_upload(s3_root, "warehouse/big.parquet")  # what the upload had sent when the timeout struck
        raise Killed("task timed out")

    monkeypatch.setattr(target.fs, "put_file", put_file_killed_after_its_first_part)
    with pytest.raises(Killed):
        storage.upload(local, target)
    assert not target.exists()
    assert multipart.unfinished(s3_root) == []


def test_the_sweep_aborts_stale_uploads_below_the_root_only(s3_root, seaweedfs, monkeypatch):
    _started_upload(s3_root, "warehouse/trips/v-1/trips.parquet")
    _started_upload(s3_root, "outputs/jan/v-2/jan.png")
    with monkeypatch.context() as other:  # another deployment's prefix in the same bucket
        other.setenv(DATA_DIR_ENV, f"s3://{seaweedfs.bucket}/other-{uuid.uuid4().hex[:8]}")
        other_root = storage.root()
        _started_upload(other_root, "raw/x.parquet")
    prefix = s3_root.path.partition("/")[2]
    assert sorted(u["Key"] for u in multipart.unfinished(s3_root)) == [
        f"{prefix}/outputs/jan/v-2/jan.png", f"{prefix}/warehouse/trips/v-1/trips.parquet",
    ]
    assert multipart.sweep(s3_root) == []  # younger than STALE_UPLOAD_AGE: may still be running
    assert sorted(multipart.sweep(s3_root, older_than=timedelta(0))) == [
        f"{prefix}/outputs/jan/v-2/jan.png", f"{prefix}/warehouse/trips/v-1/trips.parquet",
    ]
    assert multipart.unfinished(s3_root) == []
    other_prefix = other_root.path.partition("/")[2]
    assert [u["Key"] for u in multipart.unfinished(other_root)] == [f"{other_prefix}/raw/x.parquet"]
    multipart.sweep(other_root, older_than=timedelta(0))


def test_a_local_root_has_no_uploads(data_root):
    assert multipart.unfinished(storage.root()) == [] and multipart.sweep(storage.root(), timedelta(0)) == []
