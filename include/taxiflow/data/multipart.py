"""Multipart uploads nobody will complete: abort our own when an upload fails, sweep the rest.

An S3 upload of a large file (over ``storage.SINGLE_PUT_LIMIT``) goes in parts: the server keeps every part it
received, invisible to readers and outside any listing of objects, until the upload is completed
or aborted. An upload that dies half-way leaves them behind for good, on AWS S3 (billed) as on
SeaweedFS or MinIO (disk). Two rules clear them (docs/object-storage.md, "Cleaning up"):

* ``aborting(target)``: a failed upload to ``target`` is aborted right away by the process that
  started it, if that process survives the failure. s3fs aborts on an ``Exception`` raised inside
  the upload only, which runs in fsspec's IO thread; a task timeout or a kill from the UI
  (``AirflowTaskTimeout``, ``AirflowTaskTerminated``: ``BaseException``) is raised in the task's
  main thread while it waits, so s3fs never sees it and the task exits leaving the parts.
* ``sweep(root)``: every upload below the data root started more than ``STALE_UPLOAD_AGE`` ago
  is aborted (the maintenance step). A process killed outright, or a server that died mid-upload,
  leaves its upload for this. The age is measured by the server's own clock (its ``Date`` header
  against the upload's ``Initiated``), so hosts with wrong clocks cannot shorten it.

Local data roots have no multipart uploads: both are no-ops there.
"""

from __future__ import annotations

import logging
from collections.abc import Generator, Iterator
from contextlib import contextmanager, suppress
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

from taxiflow.config import DataPath

# Longer than any upload of ours takes (ingest's tasks time out after 1 hour): an upload this old
# was abandoned. Aborting one still running would fail that upload (its task retries), never lose data.
STALE_UPLOAD_AGE = timedelta(hours=24)

log = logging.getLogger(__name__)


@contextmanager
def aborting(target: DataPath) -> Generator[None, None, None]:
    """Abort the unfinished multipart uploads to ``target``'s key if the block fails, whatever the failure.

    Only that exact key: ours are unique (a fresh version prefix) or written by one task at a time.
    The failure is raised as it was; if the abort fails too (the server is down), ``sweep`` clears it.
    """
    try:
        yield
    except BaseException:
        if not isinstance(target, Path):
            bucket, _, key = target.path.partition("/")
            try:
                for upload in _uploads(target.fs, bucket, key):
                    if upload["Key"] == key:
                        _abort(target.fs, bucket, upload)
            except Exception as err:
                log.warning("could not abort the unfinished upload to s3://%s (left for the sweep): %s",
                            target.path, err)
        raise


def unfinished(root: DataPath) -> list[dict[str, Any]]:
    """The unfinished multipart uploads below ``root``: ``Key``, ``UploadId``, ``Initiated`` each."""
    if isinstance(root, Path):
        return []
    bucket, _, prefix = root.path.partition("/")
    return list(_uploads(root.fs, bucket, f"{prefix}/" if prefix else ""))


def sweep(root: DataPath, older_than: timedelta = STALE_UPLOAD_AGE) -> list[str]:
    """Abort the multipart uploads below ``root`` started ``older_than`` ago or more; return their keys."""
    if isinstance(root, Path):
        return []
    bucket, _, prefix = root.path.partition("/")
    now = _server_now(root.fs, bucket)
    aborted = []
    for upload in _uploads(root.fs, bucket, f"{prefix}/" if prefix else ""):
        if now - upload["Initiated"] >= older_than:
            _abort(root.fs, bucket, upload)
            aborted.append(upload["Key"])
    return aborted


def _uploads(fs: Any, bucket: str, prefix: str) -> Iterator[dict[str, Any]]:
    """Every unfinished upload whose key starts with ``prefix``, page by page."""
    markers: dict[str, str] = {}
    while True:
        answer = fs.call_s3("list_multipart_uploads", Bucket=bucket, Prefix=prefix, **markers)
        yield from answer.get("Uploads") or []
        if not answer.get("IsTruncated"):
            return
        markers = {"KeyMarker": answer["NextKeyMarker"], "UploadIdMarker": answer["NextUploadIdMarker"]}


def _abort(fs: Any, bucket: str, upload: dict[str, Any]) -> None:
    log.info("aborting the unfinished upload %s of s3://%s/%s, started %s",
             upload["UploadId"], bucket, upload["Key"], upload.get("Initiated"))
    with suppress(FileNotFoundError):  # NoSuchUpload: completed or aborted meanwhile
        fs.call_s3("abort_multipart_upload", Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])


def _server_now(fs: Any, bucket: str) -> datetime:
    """The server's clock: the ``Date`` header of a cheap request (what ``Initiated`` is measured by)."""
    answer = fs.call_s3("list_multipart_uploads", Bucket=bucket, MaxUploads=1)
    return parsedate_to_datetime(answer["ResponseMetadata"]["HTTPHeaders"]["date"])
