"""What a drop in ``landing/<source>/<YYYY-MM>/`` holds, and whether it is complete.

Whoever drops files writes them first and the ``_SUCCESS`` marker last, so a drop counts as ready
only when both are there. Half-written files (``.tmp``, ``.part``) and hidden or ``_``-prefixed
names are never data files.

On local disk a data file must be a regular file inside the landing root: a symbolic link
(wherever it points), or a file reached through a linked folder that leads outside ``landing/``,
raises ``UnsafeDropError`` naming the file, and nothing of it is read, copied or printed.

In an object store (``s3://`` data root) there are no links, but a drop has its own unsafe cases:
a zero-byte data file (a failed upload) raises ``UnsafeDropError``, and a ``_SUCCESS`` older than
one of the data files (the marker was written first) does not count: the drop waits for a new one.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from taxiflow.config import (
    DATA_FILE_SUFFIXES,
    SUCCESS_MARKER,
    DataPaths,
    Partition,
)
from taxiflow.data import storage
from taxiflow.data.storage import data_paths

_TEMP_SUFFIXES = (".tmp", ".part")


class UnsafeDropError(ValueError):
    """A drop holds a file that must not be read: a link, or a path leading outside landing/."""


def has_data_file_name(name: str) -> bool:
    """A visible, finished name with one of ``DATA_FILE_SUFFIXES`` (says nothing about the file)."""
    name = name.lower()
    if name.startswith((".", "_")) or name.endswith(_TEMP_SUFFIXES):
        return False
    return name.endswith(DATA_FILE_SUFFIXES)


def is_data_file(path: Path) -> bool:
    """A regular file (not a link) with a data file name."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return False
    return has_data_file_name(path.name) and stat.S_ISREG(mode)


def data_files(partition: Partition, paths: DataPaths | None = None) -> list[storage.DataPath]:
    """The data files of one drop, sorted by name; empty if the folder does not exist.

    Raises ``UnsafeDropError`` naming the file when a data file name is a symbolic link or is not
    a regular file inside the landing root (the folder itself may not lead outside it either).
    """
    paths = paths or data_paths()
    folder = paths.landing_dir(partition)
    if storage.is_remote(folder):
        return _object_data_files(partition, folder)
    if not folder.is_dir():
        return []
    root = paths.landing.resolve()
    shown = f"landing/{partition.source}/{partition.month}"
    if not folder.resolve().is_relative_to(root):
        raise UnsafeDropError(
            f"refused {shown}/: the folder leads outside the landing root {root} (a symbolic link); "
            "drops must be real folders inside it. Nothing was read or copied."
        )
    found = []
    for path in sorted(folder.iterdir()):
        if not has_data_file_name(path.name):
            continue
        mode = os.lstat(path).st_mode
        if stat.S_ISLNK(mode):
            raise UnsafeDropError(
                f"refused {shown}/{path.name}: it is a symbolic link; drop the file itself (a regular "
                "file inside landing/). Nothing of it was read or copied."
            )
        if not stat.S_ISREG(mode) or not path.resolve().is_relative_to(root):
            raise UnsafeDropError(
                f"refused {shown}/{path.name}: not a regular file inside {root}. Nothing of it was "
                "read or copied."
            )
        found.append(path)
    return found


def _object_data_files(partition: Partition, folder: storage.DataPath) -> list[Any]:
    """The data objects of one drop in an object store; a zero-byte one is refused."""
    found = []
    for path in storage.list_dir(folder):
        if not has_data_file_name(path.name) or not path.is_file():
            continue
        if storage.info(path)["size"] == 0:
            raise UnsafeDropError(
                f"refused landing/{partition.source}/{partition.month}/{path.name}: it is empty (0 bytes), "
                "which in an object store means a failed or unfinished upload; upload the file again, "
                f"then {SUCCESS_MARKER}. Nothing of the drop was read or copied."
            )
        found.append(path)
    return found


def _marker_state(folder: storage.DataPath, files: list[Any]) -> tuple[bool, str | None]:
    """(a usable ``_SUCCESS`` is there, why not if one is there but does not count)."""
    marker = folder / SUCCESS_MARKER
    if not marker.is_file():
        return False, None
    if not storage.is_remote(folder) or not files:
        return True, None
    written = storage.info(marker)["modified"]
    newer = [path.name for path in files if storage.info(path)["modified"] > written]
    if newer:
        return False, (
            f"{SUCCESS_MARKER} is older than {', '.join(newer)} (it was written before them); "
            f"write the data files first and {SUCCESS_MARKER} last"
        )
    return True, None


@dataclass(frozen=True)
class Drop:
    """What one listing of a drop's folder found: its data files and whether its ``_SUCCESS`` counts."""

    folder: storage.DataPath
    files: list[Any]
    has_marker: bool
    stale: str | None = None  # why a ``_SUCCESS`` that is there does not count

    @property
    def ready(self) -> bool:
        """At least one data file and its ``_SUCCESS`` marker (written after them)."""
        return bool(self.files) and self.has_marker

    def describe(self) -> str:
        """One line for a waiting sensor's log: where it looks and what is still missing."""
        where = storage.url(self.folder)
        if self.stale:
            return f"{where}: waiting: {self.stale}"
        found = f"{len(self.files)} data file(s)" + (f" and {SUCCESS_MARKER}" if self.has_marker else "")
        if self.ready:
            return f"{where}: ready ({found})"
        missing = [what for what, there in (("data files", bool(self.files)), (SUCCESS_MARKER, self.has_marker))
                   if not there]
        found = found if self.files or self.has_marker else "nothing"
        return f"{where}: waiting for {' and '.join(missing)} (found {found})"


def list_drop(partition: Partition, paths: DataPaths | None = None) -> Drop:
    """The drop as one listing of its folder shows it (on S3 one request), with ``data_files``' refusals.

    A sensor's poke takes readiness, its log line and the files to hash from this one ``Drop``.
    """
    paths = paths or data_paths()
    folder = paths.landing_dir(partition)
    files = data_files(partition, paths)
    has_marker, stale = _marker_state(folder, files)
    return Drop(folder, files, has_marker, stale)


def drop_is_ready(partition: Partition, paths: DataPaths | None = None) -> bool:
    """True once the drop has at least one data file and its ``_SUCCESS`` marker (written after them)."""
    return list_drop(partition, paths).ready


def describe_drop(partition: Partition, paths: DataPaths | None = None) -> str:
    """One line for a waiting sensor's log: where it looks and what is still missing."""
    return list_drop(partition, paths).describe()
