"""Raw storage: every drop copied once into a version of its own; the partition names the one it was built from.

    raw/<source>/<YYYY-MM>/<version>/    one drop's data files, copied whole by ``copy_to_raw``
    raw/<source>/<YYYY-MM>/_staged.json  the version ``copy_to_raw`` completed last (written last),
                                         with each copy's bytes and sha256 (``copied_facts``)

The month's raw copy (the last validated drop) is the version its warehouse partition's
``_summary.json`` names (``raw_version``). ``copy_to_raw`` copies the drop straight into a fresh
version and then names it in ``_staged.json``; ``taxiflow.data.ingest.process_partition`` validates
that version and publishes it *with* the partition, by the one conditional write of the summary
(``taxiflow.data.versions``): raw and partition change together or not at all, and a refused
drop leaves both as they were. The superseded raw versions are deleted after that write, as the
partition's are; ``sweep`` removes, by age, versions nobody published (a refused drop, a killed
copy). So raw and warehouse share one publish protocol, and a drop is copied once on either
backend (on S3 a server-side copy; before, a second copy promoted the staged folder, since a
bucket has no rename). Landing is only ever read; local files are opened without following links.

Raw written before versions (files directly in ``raw/<source>/<month>/``, a summary without
``raw_version``) is still read, and its files are removed once a new version is published. Its
staged copies (``raw/<source>/.<month>.staged/``, left by a refused drop) are read by nobody and
written by nothing any more: ``sweep_legacy_staged`` removes them by age.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from taxiflow.config import DATA_FILE_SUFFIXES, DataPaths, Partition
from taxiflow.data import folders, storage, versions
from taxiflow.data.landing import UnsafeDropError, data_files, has_data_file_name, is_data_file
from taxiflow.data.storage import DataPath, data_paths

STAGED_FILE = "_staged.json"
LEGACY_STAGED_NAME = re.compile(r"\.\d{4}-\d{2}\.staged")  # raw/<source>/.<YYYY-MM>.staged/, before versions

log = logging.getLogger(__name__)


def copy_to_raw(
    partition: Partition, paths: DataPaths | None = None, seen: Sequence[Mapping[str, Any]] | None = None
) -> list[DataPath]:
    """Copy the drop's data files into a fresh raw version, then name it in ``_staged.json``; return the copies.

    The month's raw copy changes only when ``process_partition`` publishes the partition built from
    this version. Local files are opened without following links (``UnsafeDropError`` otherwise,
    before anything is named). Landing is only read. ``seen``: the drop sensor's facts of the files
    (``lineage.drop_facts``); on S3 an object still as it hashed it is copied without a read.
    """
    paths = paths or data_paths()
    files = data_files(partition, paths)  # refuses links and paths outside landing/
    if not files:
        raise FileNotFoundError(
            f"no data files ({', '.join(DATA_FILE_SUFFIXES)}) in {paths.landing_dir(partition)} "
            f"for source {partition.source!r}, month {partition.month!r}"
        )
    raw_dir = paths.raw_dir(partition)
    version = versions.new_version()
    try:
        copies, facts = folders.copy_into(files, raw_dir / version, seen)
    except folders.NotARegularFile as err:
        _remove_unnamed(raw_dir / version)
        raise UnsafeDropError(f"refused {err.name}: {err.reason}. Nothing of it was copied.") from None
    except BaseException:
        _remove_unnamed(raw_dir / version)
        raise
    document = {"version": version, "files": [copy.name for copy in copies], "copied": facts,
                "staged_at": datetime.now(UTC).isoformat(timespec="seconds")}
    storage.write_bytes(raw_dir / STAGED_FILE, (json.dumps(document, indent=2) + "\n").encode("utf-8"))
    return copies


def copied_facts(
    partition: Partition, copies: list[DataPath], paths: DataPaths | None = None
) -> list[dict[str, Any]] | None:
    """``{"name", "bytes", "sha256"}`` of ``copies`` as ``copy_to_raw`` took them from the bytes it copied.

    None if ``_staged.json`` names another version now (a later copy) or holds no facts (written
    before they were recorded): then the copies are to be read for them.
    """
    marker = versions.read_marker((paths or data_paths()).raw_dir(partition), STAGED_FILE)
    if marker is None or not copies or marker.version != copies[0].parent.name:
        return None
    recorded = {facts.get("name"): facts for facts in marker.document.get("copied", [])}
    if not all(copy.name in recorded for copy in copies):
        return None
    return [recorded[copy.name] for copy in copies]


def _remove_unnamed(folder: DataPath) -> None:
    """Remove a copy nobody names, if the store lets us (else the next publish or the sweep does)."""
    try:
        storage.remove_tree(folder)
    except Exception as err:
        log.warning("left %s for the next publish or the sweep: %s", storage.url(folder), err)


def data_files_in(folder: DataPath) -> list[DataPath]:
    if storage.is_remote(folder):
        return [path for path in storage.list_dir(folder) if has_data_file_name(path.name) and path.is_file()]
    if not folder.is_dir():
        return []
    return sorted(path for path in folder.iterdir() if is_data_file(path))


def raw_version(summary: dict[str, Any] | None) -> str | None:
    """The raw version a partition's summary names; None for none or raw written before versions."""
    version = (summary or {}).get("raw_version")
    return version if isinstance(version, str) and versions.is_version(version) else None


def raw_files(
    partition: Partition, paths: DataPaths | None = None, summary: dict[str, Any] | None = None
) -> list[DataPath]:
    """The data files of the month's raw copy (the version its published partition names), sorted by name.

    ``summary``: the partition's ``_summary.json`` if the caller read it already.
    """
    paths = paths or data_paths()
    if summary is None:
        from taxiflow.data import warehouse

        published = warehouse.published_trips(partition, paths)
        if published is None:
            return []
        summary = published.summary
    version = raw_version(summary)
    return data_files_in(paths.raw_dir(partition) / version if version else paths.raw_dir(partition))


def staged_version(partition: Partition, paths: DataPaths, current: str | None) -> str | None:
    """The version ``_staged.json`` names if it is a new drop (not ``current``, the published raw version).

    Raises ``FileNotFoundError`` if it names a version whose files are gone (swept, or deleted by a
    concurrent publish), and ``versions.VersionTooOld`` for one copied more than
    ``versions.PUBLISH_DEADLINE`` ago (the sweep may delete it any time): copy the drop again.
    """
    marker = versions.read_marker(paths.raw_dir(partition), STAGED_FILE)
    version = marker.version if marker else None
    if version is None or version == current:
        return None
    age = datetime.now(UTC) - versions.version_time(version)
    if age > versions.PUBLISH_DEADLINE:
        raise versions.VersionTooOld(
            f"the drop staged as {storage.url(paths.raw_dir(partition) / version)} was copied {age} ago, "
            f"more than {versions.PUBLISH_DEADLINE}: run copy_to_raw again"
        )
    return version


def superseded(partition: Partition, paths: DataPaths, keep: str) -> list[str]:
    """What a publish naming raw version ``keep`` supersedes: the other versions there now, and
    files of the layout before versions. Listed before the publish, removed after it (``remove``)."""
    return [name for name in storage.names_in(paths.raw_dir(partition))
            if (versions.is_version(name) and name != keep) or has_data_file_name(name)]


def remove(partition: Partition, paths: DataPaths, names: list[str]) -> None:
    """Delete raw versions (and pre-version files) named by ``superseded``."""
    raw_dir = paths.raw_dir(partition)
    for name in names:
        if versions.is_version(name):
            storage.remove_tree(raw_dir / name)
        else:
            storage.remove(raw_dir / name)


def sweep(partition_dir: DataPath, keep: str | None, older_than: timedelta | None = None) -> list[str]:
    """Delete the raw versions of one month other than ``keep`` made ``older_than`` ago or more.

    ``keep`` is the version the partition's summary names. ``older_than`` defaults to
    ``versions.ORPHAN_AGE``, never less than ``versions.PUBLISH_DEADLINE``: ``process_partition``
    refuses to publish a staged version older than that. Returns what went.
    """
    age = max(older_than if older_than is not None else versions.ORPHAN_AGE, versions.PUBLISH_DEADLINE)
    cutoff = datetime.now(UTC) - age
    removed = []
    for name in storage.names_in(partition_dir):
        if versions.is_version(name) and name != keep and versions.version_time(name) < cutoff:
            storage.remove_tree(partition_dir / name)
            removed.append(name)
    return removed


def sweep_legacy_staged(source_dir: DataPath, older_than: timedelta | None = None) -> list[str]:
    """Delete the ``.<YYYY-MM>.staged/`` folders of one source whose newest file was written
    ``older_than`` ago or more (default ``versions.ORPHAN_AGE``); return their names.

    The layout before versions staged each drop there and left a refused one; nothing writes or
    reads them now, so the age only spares a folder an old worker might still be writing.
    """
    cutoff = datetime.now(UTC) - (older_than if older_than is not None else versions.ORPHAN_AGE)
    removed = []
    for entry in storage.list_dir(source_dir):
        if not LEGACY_STAGED_NAME.fullmatch(entry.name):
            continue
        names = storage.files_below(entry)
        if names and max(storage.info(entry / name)["modified"] for name in names) >= cutoff:
            continue
        storage.remove_tree(entry)
        removed.append(entry.name)
    return removed
