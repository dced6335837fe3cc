"""Conditional writes: create an object only if absent, replace it only if unchanged since read.

What makes one publish protocol hold across hosts without a lock (``versions``, ``reports.outputs``,
the request-file claims): on S3 the server decides (``If-None-Match: *``, ``If-Match: <ETag>``);
on local disk an ``O_EXCL`` hard link, and a compare-and-rename under a lock on the folder.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Generator
from contextlib import contextmanager
from pathlib import Path

from taxiflow.data import faults, storage
from taxiflow.data.storage import DataPath


class PreconditionFailed(RuntimeError):
    """A conditional write lost: the object exists (create) or changed since it was read (replace)."""


def create_exclusive(target: DataPath, data: bytes) -> bool:
    """Create ``target`` with ``data`` only if nothing is there; False if something was (on any host).

    S3: a PUT with ``If-None-Match: *``. Local: ``O_EXCL`` on a temporary name, then a hard link,
    so the file appears complete.
    """
    if storage.is_remote(target):
        try:
            with faults.around("write", storage.url(target)):
                target.fs.pipe_file(target.path, data, mode="create")
        except OSError as err:
            if target.exists():
                return False
            raise storage.StorageError(f"cannot create {storage.url(target)}: {err}") from err
        return True
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=storage.TEMP_SUFFIX)
    temp = Path(name)
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
        os.chmod(temp, storage.FILE_MODE)
        os.link(temp, target)  # fails if anything (a file, a link) is at the target: O_EXCL for a whole file
    except FileExistsError:
        return False
    finally:
        temp.unlink(missing_ok=True)
    return True


def etag(target: DataPath) -> str | None:
    """The version tag a conditional replace checks against: S3 ETag, or mtime+size+inode locally."""
    try:
        if storage.is_remote(target):
            storage.refresh(target.parent)
            return target.fs.info(target.path).get("ETag")
        stat = target.stat()
    except FileNotFoundError:
        return None
    return f"{stat.st_mtime_ns}-{stat.st_size}-{stat.st_ino}"


def read_tagged(target: DataPath, attempts: int = 10) -> tuple[str, bytes] | None:
    """``(version tag, bytes)`` of ``target`` as one version, for a later ``replace_if_match``; None if absent.

    S3: one GET answers both (its ETag is the one of the bytes it returns). Local: the tag before
    and after the read must agree (re-read up to ``attempts`` times while a writer replaces it);
    the file is read without following a link.
    """
    if storage.is_remote(target):
        return _s3_get_tagged(target)
    from taxiflow.data import documents

    for _ in range(attempts):
        before = etag(target)
        if before is None:
            return None
        try:
            data = documents.read_bytes(target)
        except FileNotFoundError:
            continue
        if etag(target) == before:
            return before, data
    raise RuntimeError(f"{storage.url(target)} kept changing while it was read")


def _s3_get_tagged(target: DataPath) -> tuple[str, bytes] | None:
    """One GET of ``target``: its ETag and body (a HEAD, a GET and a HEAD to be sure they match were three)."""
    from fsspec.asyn import sync  # type: ignore[import-untyped]

    fs = target.fs
    bucket, _, key = target.path.partition("/")

    async def get() -> tuple[str, bytes]:
        answer = await fs._call_s3("get_object", Bucket=bucket, Key=key)
        try:
            return str(answer["ETag"]), bytes(await answer["Body"].read())
        finally:
            answer["Body"].close()

    try:
        return sync(fs.loop, get)
    except FileNotFoundError:
        return None


def replace_if_match(target: DataPath, data: bytes, expected: str | None) -> None:
    """Write ``target`` only if it is still at version ``expected`` (None: only if it does not exist).

    S3: ``If-Match: <etag>`` (or ``If-None-Match: *``), decided by the server, so it holds across
    hosts. Local: checked just before the rename (callers on one disk also hold the task's slot).
    Raises ``PreconditionFailed`` when another writer got there first.
    """
    if expected is None:
        if not create_exclusive(target, data):
            raise PreconditionFailed(f"{storage.url(target)} was created by another writer")
        return
    if storage.is_remote(target):
        client_put = _s3_put_if_match(target, data, expected)
        if not client_put:
            raise PreconditionFailed(f"{storage.url(target)} changed since it was read (ETag {expected})")
        return
    if etag(target) != expected:  # also when it is gone: its folder may be gone too
        raise PreconditionFailed(f"{storage.url(target)} changed since it was read")
    with _folder_locked(target.parent), storage.replacing(target) as temp:
        temp.write_bytes(data)
        if etag(target) != expected:
            raise PreconditionFailed(f"{storage.url(target)} changed since it was read")
    # storage.replacing() renamed the new version over the target before the folder's lock was released


@contextmanager
def _folder_locked(folder: Path) -> Generator[None, None, None]:
    """Hold an exclusive lock on a local folder for a compare-and-rename inside it.

    The local stand-in for the server's decision on ``If-Match``: every compare-and-replace in the
    folder takes it, for the microseconds of one compare and one rename. It is a lock on the folder
    itself (no lock file is left behind) and holds across processes on one host (and across hosts
    on NFS, which maps it to its own locks). Object stores need none: the server decides.
    """
    import fcntl

    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the last descriptor releases the lock


def _s3_put_if_match(target: DataPath, data: bytes, expected: str) -> bool:
    """One PUT with ``If-Match``; False when the server answers 412 (the object changed).

    Sent through the data root's own s3fs client: a new boto3 client per publish (``S3Hook``)
    cost 0.2 s of set-up, as much as the rest of a manifest's publish.
    """
    import botocore.exceptions  # type: ignore[import-untyped]

    bucket, _, key = target.path.partition("/")
    try:
        with faults.around("write", storage.url(target)):
            target.fs.call_s3("put_object", Bucket=bucket, Key=key, Body=data, IfMatch=expected)
    except OSError as err:  # s3fs translates the ClientError; the server's code stays on its cause
        cause = err.__cause__
        answer = cause.response if isinstance(cause, botocore.exceptions.ClientError) else {}
        if answer.get("Error", {}).get("Code") in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
            return False
        raise
    finally:
        target.fs.invalidate_cache(target.path)  # s3fs's own writes do; this PUT bypasses them
    return True
