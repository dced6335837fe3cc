"""Raw storage: the last validated copy of each drop, and the staged copy of a new one.

    raw/<source>/<YYYY-MM>/            the drop the warehouse partition was built from
    raw/<source>/.<YYYY-MM>.staged/    a new drop, copied from landing, not yet validated

``copy_to_raw`` stages; ``taxiflow.data.ingest.process_partition`` validates the staged copy and
only then calls ``promote_staged`` (and replaces the partition). Landing is only ever read. On
local disk files are opened without following links and folders are swapped in by rename; in an
object store objects are copied server-side (raw is read only by ``process_partition``, never by
a report, so it needs no swap).
"""

from __future__ import annotations

import os
import shutil
import stat
import uuid
from pathlib import Path

from taxiflow.config import DATA_FILE_SUFFIXES, DataPaths, Partition
from taxiflow.data import storage
from taxiflow.data.landing import UnsafeDropError, data_files, has_data_file_name, is_data_file
from taxiflow.data.storage import data_paths


def staged_dir(partition: Partition, paths: DataPaths | None = None) -> Path:
    """``raw/<source>/.<month>.staged/``: a new drop's copy, waiting to be validated."""
    raw_dir = (paths or data_paths()).raw_dir(partition)
    return raw_dir.with_name(f".{partition.month}.staged")


def copy_to_raw(partition: Partition, paths: DataPaths | None = None) -> list[Path]:
    """Stage the drop: copy its data files to ``raw/<source>/.<month>.staged/``; return them.

    ``raw/<source>/<month>/`` itself is replaced only by ``process_partition``, once the staged copy
    validated. Files are opened without following links (``UnsafeDropError`` otherwise, before
    anything is copied) and copied into a hidden folder swapped in whole. Landing is only read.
    """
    paths = paths or data_paths()
    files = data_files(partition, paths)  # refuses links and paths outside landing/
    if not files:
        raise FileNotFoundError(
            f"no data files ({', '.join(DATA_FILE_SUFFIXES)}) in {paths.landing_dir(partition)} "
            f"for source {partition.source!r}, month {partition.month!r}"
        )
    staged = staged_dir(partition, paths)
    if storage.is_remote(staged):
        storage.remove_tree(staged)
        for file in files:
            storage.copy_file(file, staged / file.name)
        return data_files_in(staged)
    staged.parent.mkdir(parents=True, exist_ok=True)
    token = uuid.uuid4().hex
    incoming = staged.with_name(f".{partition.month}.{token}.incoming")
    retired = staged.with_name(f".{partition.month}.{token}.retired")
    incoming.mkdir()
    try:
        for file in files:
            _copy_regular_file(file, incoming / file.name)
        if staged.exists():
            os.rename(staged, retired)
        os.rename(incoming, staged)
    finally:
        shutil.rmtree(incoming, ignore_errors=True)
        shutil.rmtree(retired, ignore_errors=True)
    return data_files_in(staged)


def _copy_regular_file(source: Path, target: Path) -> None:
    """Copy one file without following a link planted since it was listed."""
    try:
        fd = os.open(source, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    except OSError as err:
        raise UnsafeDropError(
            f"refused {source.name}: cannot open it as a regular file without following links "
            f"({err.strerror}). Nothing of it was copied."
        ) from None
    with os.fdopen(fd, "rb") as reader:
        info = os.fstat(reader.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise UnsafeDropError(f"refused {source.name}: not a regular file. Nothing of it was copied.")
        with open(target, "xb") as writer:
            shutil.copyfileobj(reader, writer, 1024 * 1024)
    os.utime(target, ns=(info.st_atime_ns, info.st_mtime_ns))


def data_files_in(folder: Path) -> list[Path]:
    if storage.is_remote(folder):
        return [path for path in storage.list_dir(folder) if has_data_file_name(path.name) and path.is_file()]
    if not folder.is_dir():
        return []
    return sorted(path for path in folder.iterdir() if is_data_file(path))


def raw_files(partition: Partition, paths: DataPaths | None = None) -> list[Path]:
    """The data files in ``raw/<source>/<month>/`` (the last validated drop), sorted by name."""
    return data_files_in((paths or data_paths()).raw_dir(partition))


def promote_staged(partition: Partition, paths: DataPaths) -> None:
    """Swap the validated staged copy in as ``raw/<source>/<month>/``."""
    staged = staged_dir(partition, paths)
    raw_dir = paths.raw_dir(partition)
    if storage.is_remote(raw_dir):
        storage.remove_tree(raw_dir)
        for file in data_files_in(staged):
            storage.copy_file(file, raw_dir / file.name)
        storage.remove_tree(staged)
        return
    retired = raw_dir.with_name(f".{partition.month}.{uuid.uuid4().hex}.retired")
    if raw_dir.exists():
        os.rename(raw_dir, retired)
    os.rename(staged, raw_dir)
    shutil.rmtree(retired, ignore_errors=True)
