"""Where taxiflow's data lives: one local folder or one S3 prefix, behind one small set of operations.

``TAXIFLOW_DATA_DIR`` is either a local path (the default: the ``data/`` folder ``make run`` sets)
or ``s3://<bucket>/<prefix>``; ``locations`` makes the root's path from it (for S3 an Airflow
``ObjectStoragePath`` whose filesystem follows the storage connection).

Every path below the root is a ``pathlib.Path`` (local) or an ``ObjectStoragePath`` (S3); both have
the pathlib methods the data layer uses (``/``, ``name``, ``exists``, ``is_file``, ``iterdir``,
``read_text``, ``open`` ...). What differs between the two lives here:

* writes readers must never see half done (``replacing``): a local temporary file, then a rename
  (local) or one upload of the complete file (S3: an object appears whole or not at all);
* how DuckDB names a path (``duckdb_path``; ``locations.register`` gives it the same filesystem).

Local-disk safety rules (no symbolic links, ``O_NOFOLLOW``) stay with the local backend, in
``landing``/``folders``. Airflow and fsspec are imported only when an S3 root is used. Reading one
published document or request file without following a link is ``documents``; the start-time
check of the root (keys, bucket, endpoint) is ``check_storage``; create-if-absent and
replace-if-unchanged, which hold across hosts, are ``conditional``.
"""

from __future__ import annotations

import asyncio
import hashlib
import mimetypes
import os
import shutil
import tempfile
from collections.abc import Generator, Mapping
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

from taxiflow.config import DATA_DIR_ENV, DataPath, DataPaths
from taxiflow.data import faults, multipart
from taxiflow.data.locations import location, url_path

# mkstemp creates files readable by their owner only; what we write is for whoever reads the data root.
FILE_MODE = 0o644
TEMP_SUFFIX = ".tmp"


class StorageError(RuntimeError):
    """The data root cannot be reached or used; the message names the URL and the connection."""


def root() -> DataPath:
    """The data root from ``TAXIFLOW_DATA_DIR``, read on every call so tests can point it elsewhere."""
    configured = os.environ.get(DATA_DIR_ENV, "")
    if not configured:
        return _default_root()
    return location(configured)


def data_paths() -> DataPaths:
    """Every path below the data root of ``TAXIFLOW_DATA_DIR`` (see ``root``), read on every call."""
    return DataPaths(root())


def names() -> DataPaths:
    """Every place below the data root, as names only: for what a DAG file declares (asset URIs).

    A local root gives its paths. An ``s3://`` root gives ``PurePosixPath`` names of
    ``bucket/prefix/...``: no connection is read and no filesystem made, which ``data_paths`` does.
    The DAG processor parses each DAG file every 30 seconds, and every task process parses its DAG
    file before its task: with ``data_paths`` each parse read the storage connection and imported
    the S3 stack, 16 MB of a task that may never touch data (``benchmarks/profile_task_memory.py``).
    """
    configured = os.environ.get(DATA_DIR_ENV, "")
    if "://" not in configured:
        return data_paths()
    return DataPaths(PurePosixPath(url_path(configured)))


def _default_root() -> Path:
    """No ``TAXIFLOW_DATA_DIR`` (``make run``, the tests and compose always set it): ``~/taxiflow-data``."""
    return (Path.home() / "taxiflow-data").resolve()


def is_remote(path: DataPath) -> bool:
    return not isinstance(path, Path)


def url(path: DataPath) -> str:
    """How a path is shown to people: a local path, or ``s3://bucket/key`` (no connection id)."""
    if not is_remote(path):
        return str(path)
    return f"s3://{path}" if isinstance(path, PurePosixPath) else f"s3://{path.path}"  # a name from ``names``


def duckdb_path(path: DataPath) -> str:
    """The string DuckDB reads ``path`` (or a glob below it) by, once ``register`` ran on the connection."""
    return url(path)


# --- reading and listing ---------------------------------------------------------------------------


def refresh(folder: DataPath) -> None:
    """Forget cached listings of ``folder`` and below so another host's writes show.

    s3fs caches every listing it made (``dircache``) and its ``invalidate_cache(path)`` forgets only
    ``path`` and its parents: a walk below ``folder`` (``glob("*/*/...")``) would still read the
    subfolders' old listings, and a long-lived reader (an api-server, a triggerer) would never see
    a partition another host added. So the subfolders' entries go too.
    """
    if is_remote(folder):
        fs = folder.fs
        fs.invalidate_cache(folder.path)
        below = folder.path.rstrip("/") + "/"
        for cached in [key for key in list(fs.dircache) if key.startswith(below)]:
            fs.dircache.pop(cached, None)


def list_dir(folder: DataPath) -> list[DataPath]:
    """The entries directly in ``folder``, sorted by name; empty if it does not exist."""
    refresh(folder)
    if not folder.is_dir():
        return []
    return sorted(folder.iterdir(), key=lambda entry: entry.name)


def glob(folder: DataPath, pattern: str) -> list[DataPath]:
    """The files below ``folder`` matching ``pattern`` (e.g. ``*/*/trips.parquet``), sorted."""
    if not is_remote(folder):
        return sorted(folder.glob(pattern)) if folder.is_dir() else []
    refresh(folder)
    found = folder.fs.glob(f"{folder.path}/{pattern}")
    return [folder / name[len(folder.path) + 1:] for name in sorted(found)]


def files_below(folder: DataPath) -> list[str]:
    """Every file below ``folder`` (any depth), as sorted ``/``-separated names relative to it.

    What an object store holds; its folder listing may still show a prefix whose objects were
    all deleted (SeaweedFS keeps the empty folder a while), so count objects with this.
    """
    if not is_remote(folder):
        return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    refresh(folder)
    below = folder.path.rstrip("/") + "/"  # not the folder itself (SeaweedFS may list an emptied one)
    return sorted(name[len(below):] for name in folder.fs.find(folder.path) if name.startswith(below))


def names_in(folder: DataPath) -> list[str]:
    """The names directly in ``folder`` that hold data, sorted: its files, and its folders (on S3,
    those with an object below). For walking versions (``v-...`` folders), which come and go.

    On S3 one listing of the objects below, not of ``folder``'s prefixes: SeaweedFS keeps listing a
    folder whose objects were all deleted (45 emptied version folders were still listed 45 minutes
    on, 2026-12-05), and a walk of those paid a listing and a HEAD each, more with every re-ingest.
    """
    if not is_remote(folder):
        return sorted(entry.name for entry in folder.iterdir()) if folder.is_dir() else []
    return sorted({name.split("/", 1)[0] for name in files_below(folder)})


def info(path: DataPath) -> dict[str, Any]:
    """``size`` (bytes), ``modified`` (aware datetime) and ``etag`` (S3; None locally) of one file."""
    if not is_remote(path):
        stat = path.stat()
        from datetime import UTC

        return {"size": stat.st_size, "modified": datetime.fromtimestamp(stat.st_mtime, UTC), "etag": None}
    found = path.fs.info(path.path)
    return {"size": found["size"], "modified": found.get("LastModified"), "etag": found.get("ETag")}


# --- writing ----------------------------------------------------------------------------------------


@contextmanager
def replacing(target: DataPath, suffix: str = TEMP_SUFFIX) -> Generator[Path, None, None]:
    """Yield a fresh local temporary path; if the block succeeds it replaces ``target`` whole.

    Local: the temporary file is hidden beside ``target`` and renamed over it (a link planted at the
    target is replaced, not followed). S3: it is a local file uploaded once complete, so a failed
    write never leaves a 0-byte or truncated object. Concurrent writers never share a temporary
    name; the last to finish wins, whole.
    """
    if is_remote(target):
        folder = Path(tempfile.mkdtemp(prefix="taxiflow-upload-"))
        try:
            temp = folder / target.name
            yield temp
            upload(temp, target)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=suffix)
    os.close(handle)
    temp = Path(name)
    try:
        yield temp
        os.chmod(temp, FILE_MODE)
        os.replace(temp, target)
    finally:
        temp.unlink(missing_ok=True)


def upload(local: Path, target: DataPath) -> None:
    """Put a complete local file at ``target`` (one object on S3; a copy and rename locally)."""
    if is_remote(target):
        with faults.around("write", url(target)):
            _put(local, target)
        return
    with replacing(target) as temp:
        shutil.copyfile(local, temp)


# A file up to this size goes in one PUT that streams it from disk (64 KiB reads): a 3M-row month's
# 58 MB trips file went up in 0.34 s against 0.42 s in parts of 8 MiB, 4 at once (medians, loopback),
# and held ~1 MB instead of ~64 MB (``benchmarks/bench_upload.py``, docs/benchmarks.md, "Sixth
# pass"). Payload signing stays on: botocore's CRC32 header is what SeaweedFS checks, but a store
# that checks the signed SHA-256 also refuses a body altered on a plain-HTTP way. A larger file
# goes in parts of ``PART_SIZE``, a few at once (a single PUT is at most 5 GiB, and a remote store's
# one connection is slower than a few), not s3fs's default of 10 parts of 50 MiB at a time.
SINGLE_PUT_LIMIT = 128 * 2**20
PART_SIZE = 8 * 2**20
PARTS_AT_ONCE = 4


def _put(local: Path, target: DataPath) -> None:
    """One PUT streaming ``local`` to ``target``, or a multipart upload aborted if it fails."""
    fs = target.fs
    progress = faults.UploadProgress(url(target))
    if faults.armed(progress.point):  # a drill (``faults``: ``during-upload``): small parts, to cut between
        with multipart.aborting(target):
            fs.put_file(str(local), target.path, chunksize=faults.ARMED_PART_SIZE, callback=progress)
        return
    if local.stat().st_size > SINGLE_PUT_LIMIT:
        with multipart.aborting(target):  # no parts left if it fails
            fs.put_file(str(local), target.path, chunksize=PART_SIZE, max_concurrency=PARTS_AT_ONCE)
        return
    bucket, _, key = target.path.partition("/")
    content_type, _ = mimetypes.guess_type(target.name)  # as s3fs's put_file sets it
    with open(local, "rb") as body:  # botocore sends its x-amz-checksum-crc32, which the server checks
        fs.call_s3("put_object", Bucket=bucket, Key=key, Body=body,
                   **({"ContentType": content_type} if content_type else {}))
    fs.invalidate_cache(target.path)  # the key and its parents' listings, as put_file does


@contextmanager
def local_copies(files: list[DataPath]) -> Generator[list[Path], None, None]:
    """Local paths to read ``files`` by, in order, for a reader that reads each more than once or many small ones.

    Local files are their own copies. Objects are fetched at once, each as one GET streamed to a
    temporary folder removed after the block:
    - ingest reads a drop three times (its header, its pickup times, then every column), and over
      HTTP each pass would fetch the file again. s3fs's download in parts (a GET of the whole object
      dropped, then parts each read whole into memory and joined) took three times as long for a
      58 MB file on loopback and held ~60 MB more (``benchmarks/bench_storage.py``, 2026-12-05);
    - a report reads many small metrics partitions: through HTTP one by one, DuckDB paid several
      round trips per file (the footer, then each column chunk), one file after another.
    Each copy is one object as at its GET: never the footer of one version and the rows of another.
    """
    remote = [file for file in files if is_remote(file)]
    if not remote:
        yield list(files)
        return
    if len(remote) != len(files) or any(file.fs is not remote[0].fs for file in remote):
        raise ValueError("local_copies: every file must be below one data root")
    folder = Path(tempfile.mkdtemp(prefix="taxiflow-download-"))
    try:
        copies = [folder / f"{index}-{file.name}" for index, file in enumerate(files)]  # names may repeat
        remote[0].fs.get([file.path for file in files], [str(copy) for copy in copies], max_concurrency=1)
        yield copies
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def sha256(path: DataPath) -> tuple[int, str, str | None]:
    """The size (bytes), hex sha256 and ETag (S3; None locally) of one file, read once from start to end.

    The ETag is the one the server sent with the bytes hashed, so a later copy made only if the
    object still has it (``copy_file``'s ``seen``) copies exactly these bytes. An object is one GET
    streamed through the hash in 1 MiB reads: through ``open`` (s3fs's read-ahead cache: a HEAD,
    then 50 MiB GETs each held whole) it took twice as long for a 58 MB drop on loopback
    (``benchmarks/bench_storage.py``, docs/benchmarks.md).
    """
    if not is_remote(path):
        with open(path, "rb") as reader:
            return *read_hashed(reader), None
    from fsspec.asyn import sync  # type: ignore[import-untyped]

    fs = path.fs
    bucket, key, version = fs.split_path(path.path)
    # s3fs raises a missing key as FileNotFoundError, as ``open`` would
    return sync(fs.loop, _hash_object, fs, bucket, key, {"VersionId": version} if version else {})


def read_hashed(reader: BinaryIO, writer: BinaryIO | None = None) -> tuple[int, str]:
    """The size and hex sha256 of what ``reader`` holds, read once; each block also goes to ``writer``."""
    digest, size = hashlib.sha256(), 0
    while block := reader.read(HASH_BLOCK):
        digest.update(block)
        size += len(block)
        if writer is not None:
            writer.write(block)
    return size, digest.hexdigest()


async def _hash_object(fs: Any, bucket: str, key: str, conditions: dict[str, str]) -> tuple[int, str, str | None]:
    """The size, hex sha256 and ETag of one object, one GET (with ``conditions``: ``IfMatch``, ``VersionId``)."""
    response = await fs._call_s3("get_object", Bucket=bucket, Key=key, **conditions, **fs.req_kw)
    body, digest, size = response["Body"], hashlib.sha256(), 0
    try:
        while block := await body.read(HASH_BLOCK):
            digest.update(block)
            size += len(block)
    finally:
        body.close()
    return size, digest.hexdigest(), response.get("ETag")


HASH_BLOCK = 1024 * 1024


def write_bytes(target: DataPath, data: bytes) -> DataPath:
    """Replace ``target`` with ``data``; readers see the old content or the new, never a mix."""
    if is_remote(target):
        with faults.around("write", url(target)):
            target.fs.pipe_file(target.path, data)  # one PUT: the object is replaced whole
        return target
    with replacing(target) as temp:
        temp.write_bytes(data)
    return target


def copy_file(source: DataPath, target: DataPath, seen: Mapping[str, Any] | None = None) -> tuple[int, str]:
    """Copy one file within the data root (server-side on S3); return the size and sha256 of what was copied.

    The hash is taken from the bytes copied, so the copy need not be read again for its facts
    (lineage). On S3 the copy is made only if the source still has the ETag it was listed with
    (``CopySourceIfMatch``): a source replaced meanwhile fails the copy (``OSError``). Its facts
    are ``seen``'s (``{"bytes", "sha256", "etag"}``, from ``sha256``: the drop sensor hashed the
    drop) when that ETag and size are the listed ones, so the source is not read again; otherwise
    a GET streamed through the hash runs while the server copies, conditional on the same ETag
    (``IfMatch``). Either way what was hashed is what was copied.
    """
    if is_remote(target):
        with faults.around("write", url(target)):
            return _copy_hashed(source, target, seen)
    with replacing(target) as temp, open(source, "rb") as reader, open(temp, "wb") as writer:
        return read_hashed(reader, writer)


def _copy_hashed(source: DataPath, target: DataPath, seen: Mapping[str, Any] | None) -> tuple[int, str]:
    from fsspec.asyn import sync

    fs = target.fs
    listed = info(source)  # from the listing that found the source, if it is cached
    etag = listed["etag"]
    source_bucket, source_key, _ = fs.split_path(source.path)
    bucket, key, _ = fs.split_path(target.path)
    hashed = None
    if seen and etag and seen.get("etag") == etag and seen.get("bytes") == listed["size"]:
        hashed = int(seen["bytes"]), str(seen["sha256"])  # the bytes of this ETag were hashed already

    async def copy_and_hash() -> tuple[int, str]:
        copied = fs._call_s3("copy_object", Bucket=bucket, Key=key, **fs.req_kw,
                             CopySource={"Bucket": source_bucket, "Key": source_key}, CopySourceIfMatch=etag)
        if hashed:
            await copied
            return hashed
        _, (size, digest, _) = await asyncio.gather(copied, _hash_object(fs, source_bucket, source_key,
                                                                         {"IfMatch": etag}))
        return size, digest

    facts = sync(fs.loop, copy_and_hash)
    fs.invalidate_cache(target.path)  # the key and its parents' listings, as s3fs's copy does
    return facts


def remove(path: DataPath) -> None:
    """Delete one file if it is there."""
    if is_remote(path):
        if path.exists():
            with faults.around("delete", url(path)):
                path.fs.rm_file(path.path)
        return
    path.unlink(missing_ok=True)


def remove_tree(folder: DataPath) -> None:
    """Delete a folder and everything below it, if it is there.

    On S3 one listing finds every object below the folder and they go in bulk deletes (an
    existence check first cost a HEAD and a listing of its own).
    """
    if is_remote(folder):
        refresh(folder)
        below = folder.path.rstrip("/") + "/"  # not the folder itself (SeaweedFS may list an emptied one)
        found = [name for name in folder.fs.find(folder.path) if name.startswith(below)]
        if found:
            with faults.around("delete", url(folder)):
                folder.fs.rm(found)
        return
    shutil.rmtree(folder, ignore_errors=True)


def make_dirs(folder: DataPath) -> None:
    """Create ``folder`` locally; S3 has no folders (a key's prefix is enough)."""
    if not is_remote(folder):
        folder.mkdir(parents=True, exist_ok=True)
