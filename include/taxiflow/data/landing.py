"""What a drop in ``landing/<source>/<YYYY-MM>/`` holds, and whether it is complete.

Whoever drops files writes them first and the ``_SUCCESS`` marker last, so a drop counts as ready
only when both are there. Half-written files (``.tmp``, ``.part``) and hidden or ``_``-prefixed
names are never data files.
"""

from __future__ import annotations

from pathlib import Path

from taxiflow.config import (
    DATA_FILE_SUFFIXES,
    SUCCESS_MARKER,
    DataPaths,
    check_month,
    check_source,
    data_paths,
)

_TEMP_SUFFIXES = (".tmp", ".part")


def is_data_file(path: Path) -> bool:
    """A finished, visible file with one of ``DATA_FILE_SUFFIXES``."""
    name = path.name.lower()
    if name.startswith((".", "_")) or name.endswith(_TEMP_SUFFIXES):
        return False
    return name.endswith(DATA_FILE_SUFFIXES) and path.is_file()


def data_files(source: str, month: str, paths: DataPaths | None = None) -> list[Path]:
    """The data files of one drop, sorted by name; empty if the folder does not exist."""
    check_source(source)
    check_month(month)
    folder = (paths or data_paths()).landing_dir(source, month)
    if not folder.is_dir():
        return []
    return sorted(path for path in folder.iterdir() if is_data_file(path))


def drop_is_ready(source: str, month: str, paths: DataPaths | None = None) -> bool:
    """True once the drop has at least one data file and its ``_SUCCESS`` marker."""
    paths = paths or data_paths()
    files = data_files(source, month, paths)
    return bool(files) and (paths.landing_dir(source, month) / SUCCESS_MARKER).is_file()


def describe_drop(source: str, month: str, paths: DataPaths | None = None) -> str:
    """One line for a waiting sensor's log: where it looks and what is still missing."""
    paths = paths or data_paths()
    folder = paths.landing_dir(source, month)
    files = data_files(source, month, paths)
    has_marker = (folder / SUCCESS_MARKER).is_file()
    missing = [what for what, there in (("data files", bool(files)), (SUCCESS_MARKER, has_marker)) if not there]
    found = f"{len(files)} data file(s)" + (f" and {SUCCESS_MARKER}" if has_marker else "")
    if not missing:
        return f"{folder}: ready ({found})"
    return f"{folder}: waiting for {' and '.join(missing)} (found {found if files or has_marker else 'nothing'})"
