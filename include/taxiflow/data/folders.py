"""Folders replaced whole: stage copies of some files as a folder, then publish the staged folder.

What ``raw`` needs of both backends, in one operation each, so it has one code path:

* ``stage_copies``: ``folder`` ends up holding copies of the given files and nothing else. Locally
  they are copied into a hidden sibling folder that is then swapped in by rename, so a reader
  never sees part of a new set; each file is opened without following a link planted since it
  was listed (``NotARegularFile`` otherwise, before the folder changes). In a bucket the old
  objects are removed and each file is copied server-side.
* ``publish``: the staged folder becomes the target folder (a rename locally; copies, then the
  staged objects removed, in a bucket).
"""

from __future__ import annotations

import os
import shutil
import stat
import uuid
from collections.abc import Sequence
from pathlib import Path

from taxiflow.data import storage
from taxiflow.data.storage import DataPath

COPY_BUFFER_BYTES = 1024 * 1024


class NotARegularFile(ValueError):
    """A file to copy is a link or not a regular file; ``name`` and ``reason`` say which and why."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"{name}: {reason}")
        self.name = name
        self.reason = reason


def stage_copies(files: Sequence[DataPath], folder: DataPath) -> None:
    """Replace ``folder`` with one holding copies of ``files`` (same names); sources are only read."""
    if storage.is_remote(folder):
        storage.remove_tree(folder)
        for file in files:
            storage.copy_file(file, folder / file.name)
        return
    folder.parent.mkdir(parents=True, exist_ok=True)
    hidden = f".{folder.name.lstrip('.')}.{uuid.uuid4().hex}"  # no watcher or glob picks up a hidden name
    incoming = folder.with_name(f"{hidden}.incoming")
    retired = folder.with_name(f"{hidden}.retired")
    incoming.mkdir()
    try:
        for file in files:
            _copy_regular_file(file, incoming / file.name)
        if folder.exists():
            os.rename(folder, retired)
        os.rename(incoming, folder)
    finally:
        shutil.rmtree(incoming, ignore_errors=True)
        shutil.rmtree(retired, ignore_errors=True)


def _copy_regular_file(source: Path, target: Path) -> None:
    """Copy one local file without following a link planted since it was listed; keeps its times."""
    try:
        fd = os.open(source, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    except OSError as err:
        raise NotARegularFile(
            source.name, f"cannot open it as a regular file without following links ({err.strerror})"
        ) from None
    with os.fdopen(fd, "rb") as reader:
        info = os.fstat(reader.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise NotARegularFile(source.name, "not a regular file")
        with open(target, "xb") as writer:
            shutil.copyfileobj(reader, writer, COPY_BUFFER_BYTES)
    os.utime(target, ns=(info.st_atime_ns, info.st_mtime_ns))


def publish(staged: DataPath, target: DataPath) -> None:
    """Make the staged folder ``target``, replacing what was there; ``staged`` is gone afterwards."""
    if storage.is_remote(target):
        storage.remove_tree(target)
        for name in storage.files_below(staged):
            storage.copy_file(staged / name, target / name)
        storage.remove_tree(staged)
        return
    retired = target.with_name(f".{target.name.lstrip('.')}.{uuid.uuid4().hex}.retired")
    if target.exists():
        os.rename(target, retired)
    os.rename(staged, target)
    shutil.rmtree(retired, ignore_errors=True)
