"""Published documents and request files, one file at a time: list, read and delete, never through a link.

Reports are published with one protocol on both backends (``taxiflow.reports.outputs``): files
under a fresh version prefix, then a manifest written last with ``conditional.replace_if_match``.
Request files are read, never written. What reports, the request-file door and the request-folder
watcher read through is here: the same few operations on a local folder and a bucket. Locally they
never follow a symbolic link and never block on a FIFO, so no name planted in a watched folder can
steer a reader elsewhere. Writes and the rest of the path contract are in ``storage``.
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from taxiflow.data.storage import DataPath, is_remote, refresh


@dataclass(frozen=True)
class FileEntry:
    """One regular file directly in a folder, as a listing saw it."""

    path: DataPath
    name: str
    size: int
    stamp: str  # changes whenever the file is written: mtime (local), ETag and LastModified (S3)


def list_files(folder: DataPath) -> tuple[list[FileEntry], list[str]]:
    """The regular files directly in ``folder`` by name, and the names of everything else there.

    Locally, symbolic links (whatever they point at), folders and special files are "everything
    else", so no name can steer a reader elsewhere; in a bucket, sub-prefixes are.
    """
    files: list[FileEntry] = []
    others: list[str] = []
    if is_remote(folder):
        refresh(folder)
        try:
            listed = folder.fs.ls(folder.path, detail=True)
        except FileNotFoundError:
            return [], []
        for entry in listed:
            full = entry["name"].rstrip("/")
            if full == folder.path.rstrip("/"):
                continue  # the folder's own marker (a store that keeps emptied folders lists itself)
            name = full.rsplit("/", 1)[-1]
            if entry.get("type") != "file":
                others.append(name)
                continue
            stamp = f"{entry.get('ETag', '')}:{entry.get('LastModified', '')}:{entry['size']}"
            files.append(FileEntry(folder / name, name, int(entry["size"]), stamp))
    else:
        if not folder.is_dir():
            return [], []
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.is_symlink() or not entry.is_file(follow_symlinks=False):
                    others.append(entry.name)
                    continue
                found = entry.stat(follow_symlinks=False)
                files.append(FileEntry(Path(entry.path), entry.name, found.st_size,
                                       f"{found.st_size}:{found.st_mtime_ns}"))
    return sorted(files, key=lambda entry: entry.name), sorted(others)


def read_bytes(path: DataPath) -> bytes:
    """The bytes of one file (FileNotFoundError if absent); locally never through a link or a FIFO."""
    if is_remote(path):
        return bytes(path.fs.cat_file(path.path))
    head, _digest, _size = read_capped(path, None)
    assert head is not None  # no limit: all of it
    return head


_CHUNK = 1 << 16


def read_capped(path: DataPath, limit: int | None) -> tuple[bytes | None, str, int]:
    """``(content, or None if larger than limit; sha256 of all of it; size)`` of one file.

    Locally ``O_NOFOLLOW`` and an ``fstat`` check close the gap between listing a folder and opening
    a name in it: a file swapped for a link or a FIFO is refused (``OSError``), not followed or
    blocked on.
    """
    digest = hashlib.sha256()
    head = bytearray()
    size = 0
    if is_remote(path):
        handle_cm: Any = path.fs.open(path.path, "rb")
    else:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        handle_cm = os.fdopen(fd, "rb")
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            handle_cm.close()
            raise OSError(f"{path} is not a regular file")
    with handle_cm as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
            if limit is None or len(head) <= limit:
                head += chunk if limit is None else chunk[: limit + 1 - len(head)]
    return (bytes(head) if limit is None or size <= limit else None), digest.hexdigest(), size


def is_link(path: DataPath) -> bool:
    """True for a local symbolic link (object stores have none)."""
    return not is_remote(path) and path.is_symlink()


def remove_file(path: DataPath) -> bool:
    """Delete one file if it is a file (never a folder, never what a link points at); True if deleted."""
    if is_remote(path):
        refresh(path.parent)
        try:
            if path.fs.info(path.path).get("type") != "file":
                return False
        except FileNotFoundError:
            return False
        path.fs.rm_file(path.path)  # S3 answers a DELETE of a missing key with success too: asked above
        refresh(path.parent)
        return True
    try:
        if stat.S_ISDIR(os.lstat(path).st_mode):
            return False
        path.unlink()
    except FileNotFoundError:
        return False
    return True
