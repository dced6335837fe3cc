"""Versioned folders: readers see one complete version or none, never old and new mixed.

Object stores have no rename and no folder swap, so a folder that is replaced whole (a warehouse
trips partition) is published the same way on local disk and on S3::

    <folder>/<version>/...     the version's data files, written first; no reader looks here unaided
    <folder>/<marker>          written last: names the current version (the done marker)

1. ``read_marker``: the marker now there (its document and version tag), or None;
2. stage: write the new version's files below ``<folder>/<new_version()>/``;
3. validate what was staged (the caller's checks: row counts, refusals);
4. ``publish``: write the marker naming the new version, **conditionally**: only if the marker is
   still the one read in step 1 (S3 ``If-Match`` on its ETag, ``If-None-Match: *`` for a folder
   that had none; locally the same check before an atomic rename). A writer that lost the race
   gets ``PreconditionFailed`` and its staged version is removed: the winner's stays whole;
5. ``remove_superseded``: delete versions older than the published one.

A reader reads the marker, then exactly the files of the version it names (``current_version``).
A folder without a marker does not exist for readers. Version names sort by creation time, so
cleaning never touches a newer version another writer may still be staging.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from taxiflow.data import conditional, storage
from taxiflow.data.conditional import PreconditionFailed
from taxiflow.data.storage import DataPath

VERSION_PREFIX = "v-"
_VERSION_RE = re.compile(r"v-\d{8}T\d{12}Z-[0-9a-f]{8}")

__all__ = [
    "Marker", "PreconditionFailed", "is_version", "new_version", "publish", "read_marker", "remove_superseded",
    "remove_version",
]


def new_version() -> str:
    """A fresh version name: ``v-<UTC time to the microsecond>-<random>``; later names sort after."""
    return f"{VERSION_PREFIX}{datetime.now(UTC):%Y%m%dT%H%M%S%f}Z-{uuid.uuid4().hex[:8]}"


def is_version(name: str) -> bool:
    return bool(_VERSION_RE.fullmatch(name))


@dataclass(frozen=True)
class Marker:
    """A folder's marker as read: its JSON document and the tag a conditional replace checks."""

    document: dict[str, Any]
    tag: str

    @property
    def version(self) -> str | None:
        """The version it names; None for a folder written before versions (files beside the marker)."""
        version = self.document.get("version")
        return version if isinstance(version, str) and is_version(version) else None


def read_marker(folder: DataPath, name: str) -> Marker | None:
    """The marker ``folder/name`` now, or None if the folder has none (is not published)."""
    path = folder / name
    tag = conditional.etag(path)  # taken first: should the marker change meanwhile, a publish based on it loses
    if tag is None:
        return None
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    return Marker(json.loads(text), tag)


def current_version(folder: DataPath, name: str) -> tuple[Marker, DataPath] | None:
    """The published marker and the folder holding its version's files, or None if unpublished."""
    marker = read_marker(folder, name)
    if marker is None:
        return None
    return marker, (folder / marker.version if marker.version else folder)


def publish(folder: DataPath, name: str, document: dict[str, Any], replaces: Marker | None) -> None:
    """Write the marker naming ``document["version"]``, only if the marker is still ``replaces``.

    Raises ``PreconditionFailed`` when another writer published since ``replaces`` was read.
    """
    if not is_version(str(document.get("version"))):
        raise ValueError(f"a marker must name a version made by new_version(), got {document.get('version')!r}")
    data = (json.dumps(document, indent=2) + "\n").encode("utf-8")
    conditional.replace_if_match(folder / name, data, replaces.tag if replaces else None)


def remove_version(folder: DataPath, version: str) -> None:
    """Delete one version's files (a staged version that was refused or lost the race)."""
    if not is_version(version):
        raise ValueError(f"not a version name: {version!r}")
    storage.remove_tree(folder / version)


def remove_superseded(folder: DataPath, current: str, legacy_files: tuple[str, ...] = ()) -> list[str]:
    """Delete every version older than ``current`` and the pre-version ``legacy_files``; return what went.

    Newer versions are left alone: another writer may be staging one (if it loses, it removes its own).
    """
    removed = []
    for entry in storage.list_dir(folder):
        if is_version(entry.name) and entry.name < current:
            storage.remove_tree(entry)
            removed.append(entry.name)
    for name in legacy_files:
        if (folder / name).exists():
            storage.remove(folder / name)
            removed.append(name)
    return removed
