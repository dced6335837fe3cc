"""Versioned folders: readers see one complete version or none, never old and new mixed.

Object stores have no rename and no folder swap, so a folder that is replaced whole (a warehouse
trips partition) is published the same way on local disk and on S3::

    <folder>/<version>/...     the version's data files, written first; no reader looks here unaided
    <folder>/<marker>          written last: names the current version (the done marker)

1. ``read_marker``: the marker now there (its document and version tag), or None;
2. stage: write the new version's files below ``<folder>/<new_version()>/`` (named after step 1);
3. validate what was staged (the caller's checks: row counts, refusals);
4. ``publish``: list the versions there, then write the marker naming the new version,
   **conditionally**: only if the marker is still the one read in step 1 (S3 ``If-Match`` on its
   ETag, ``If-None-Match: *`` for a folder that had none; locally the same check before an atomic
   rename). A writer that lost the race gets ``PreconditionFailed`` and removes its staged version
   (``remove_version``): the winner's stays whole. Once the marker is written, every version that
   was listed before it is deleted (see below);
5. ``remove_superseded``: delete files of the layout before versions.

A reader reads the marker, then exactly the files of the version it names (``current_version``).
A folder without a marker does not exist for readers.

**Which versions may go, and when** (docs/object-storage.md, "Cleaning up"):

* *At publish, safe by construction.* A version listed before a successful conditional marker write
  belongs to a writer that read the marker before that write (it reads the marker before it
  stages anything). Its own conditional write is now bound to fail, so nobody can ever name that
  version: it is deleted, whatever its age. That is the superseded version, a version whose writer
  died before its marker (a crashed try: its retry's publish removes it), and a concurrent writer's
  version that has just lost the race (that writer fails and its task retries).
* *Never*: the version the marker names (``remove_version`` checks), nor one that appeared after
  the listing.
* *Later, by age* (``sweep``, the maintenance step, for folders nobody publishes again): a version
  the marker does not name, written more than ``ORPHAN_AGE`` ago. Safe because ``publish`` refuses
  to name a version older than ``PUBLISH_DEADLINE`` (it removes it and raises ``VersionTooOld``):
  the gap between the two allows for clocks of different hosts that disagree.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from taxiflow.data import conditional, storage
from taxiflow.data.conditional import PreconditionFailed
from taxiflow.data.storage import DataPath

VERSION_PREFIX = "v-"
VERSION_TIME_FORMAT = "%Y%m%dT%H%M%S%fZ"
_VERSION_RE = re.compile(r"v-\d{8}T\d{12}Z-[0-9a-f]{8}")
# A writer names its version only this soon after making it (ingest: execution_timeout is 1 hour) ...
PUBLISH_DEADLINE = timedelta(hours=2)
# ... so a version nobody names, this old, is abandoned: ``sweep`` deletes it. The 4 hours between
# the two cover clocks of two hosts that disagree (the version's name carries its writer's clock).
ORPHAN_AGE = timedelta(hours=6)

log = logging.getLogger(__name__)

__all__ = [
    "Marker", "PreconditionFailed", "VersionTooOld", "is_version", "new_version", "publish", "read_marker",
    "remove_superseded", "remove_version", "sweep", "version_time",
]


class VersionTooOld(PreconditionFailed):
    """A version made more than ``PUBLISH_DEADLINE`` ago is never named: ``sweep`` may delete it any time."""


def new_version() -> str:
    """A fresh version name: ``v-<UTC time to the microsecond>-<random>``; later names sort after."""
    return f"{VERSION_PREFIX}{datetime.now(UTC):%Y%m%dT%H%M%S%f}Z-{uuid.uuid4().hex[:8]}"


def is_version(name: str) -> bool:
    return bool(_VERSION_RE.fullmatch(name))


def version_time(version: str) -> datetime:
    """When ``version`` was made, by its writer's clock (from its name)."""
    return datetime.strptime(version.removeprefix(VERSION_PREFIX).split("-")[0], VERSION_TIME_FORMAT).replace(
        tzinfo=UTC
    )


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
    if storage.is_remote(path):  # one GET: the bytes and the ETag they have
        found = conditional.read_tagged(path)
        return Marker(json.loads(found[1]), found[0]) if found else None
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


def publish(
    folder: DataPath, name: str, document: dict[str, Any], replaces: Marker | None, deadline: timedelta | None = None
) -> list[str]:
    """Write the marker naming ``document["version"]``, only if the marker is still ``replaces``.

    Then delete every other version listed just before the write (see the module's docstring), and
    return their names. Raises ``PreconditionFailed`` when another writer published since
    ``replaces`` was read, and ``VersionTooOld`` (after removing it) for a version made more than
    ``deadline`` (``PUBLISH_DEADLINE``) ago.
    """
    version = str(document.get("version"))
    if not is_version(version):
        raise ValueError(f"a marker must name a version made by new_version(), got {document.get('version')!r}")
    age = datetime.now(UTC) - version_time(version)
    if age > (deadline or PUBLISH_DEADLINE):
        remove_version(folder, version)
        raise VersionTooOld(
            f"{storage.url(folder / version)} was made {age} ago, more than {deadline or PUBLISH_DEADLINE}: "
            "it is not published (an abandoned version may be swept by then); run the task again"
        )
    listed = [old for old in storage.names_in(folder) if is_version(old) and old != version]
    data = (json.dumps(document, indent=2) + "\n").encode("utf-8")
    conditional.replace_if_match(folder / name, data, replaces.tag if replaces else None)
    for old in listed:  # their writers read the marker before this write: theirs can never be named now
        storage.remove_tree(folder / old)
    return listed


def remove_version(folder: DataPath, version: str, marker: str | None = None) -> bool:
    """Delete one version's files (staged, then refused or lost the race); False if it was kept.

    With ``marker`` (the marker's file name), a version the marker names is kept: a write whose
    answer was lost (the server died after writing it) may have published it after all. So is a
    version when the marker cannot be read (the store is down): ``sweep`` removes it later.
    """
    if not is_version(version):
        raise ValueError(f"not a version name: {version!r}")
    if marker is not None:
        try:
            current = read_marker(folder, marker)
        except Exception as err:
            log.warning("kept %s: cannot read its marker to tell if it was published (%s)",
                        storage.url(folder / version), err)
            return False
        if current is not None and current.version == version:
            return False
    storage.remove_tree(folder / version)
    return True


def remove_superseded(folder: DataPath, current: str, legacy_files: tuple[str, ...] = ()) -> list[str]:
    """Delete the pre-version ``legacy_files`` beside the marker of ``current``; return what went.

    Superseded versions were deleted by ``publish`` already; versions that appeared since (another
    writer's, still staging) are left alone.
    """
    removed = []
    for name in legacy_files:
        if (folder / name).exists():
            storage.remove(folder / name)
            removed.append(name)
    return removed


def sweep(folder: DataPath, name: str, older_than: timedelta | None = None) -> list[str]:
    """Delete the versions in ``folder`` its marker ``name`` does not name, made ``older_than`` ago or more.

    ``older_than`` defaults to ``ORPHAN_AGE``; nothing younger than ``PUBLISH_DEADLINE`` is ever
    deleted. A folder with no marker loses old versions too (its writers all died). Returns what went.
    """
    age = max(older_than if older_than is not None else ORPHAN_AGE, PUBLISH_DEADLINE)
    marker = read_marker(folder, name)
    keep = marker.version if marker else None
    cutoff = datetime.now(UTC) - age
    removed = []
    for old in storage.names_in(folder):
        if is_version(old) and old != keep and version_time(old) < cutoff:
            storage.remove_tree(folder / old)
            removed.append(old)
    return removed
