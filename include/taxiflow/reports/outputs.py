"""Where a report's outputs live, and how they are published so nobody sees half of them.

Layout (the one place it is defined; readers such as UI views use the functions below)::

    outputs/<name>/                       one folder (a key prefix in a bucket) per report
        v-<time>-<token>/<name>.png       the chart      } one version: written first, never
        v-<time>-<token>/<name>.csv       the numbers    } changed afterwards
        manifest.json                     which version is current, and what produced it: name,
                                          request (conf), run_id, owner, total_trips, version,
                                          written_at, each file's key, bytes and sha256, and
                                          ingest_notes: the kept partitions the numbers come from
                                          (a month whose latest re-drop was refused), one note each

**One publish protocol, on local disk and in an object store.** Neither has to rename a folder:
the PNG and CSV go under a fresh version prefix, then ``manifest.json`` is written **last** with a
conditional write (``conditional.replace_if_match``): ``If-None-Match: *`` for a new name, ``If-Match``
on the ETag of the manifest this publish read otherwise (on disk: create with ``O_EXCL``, or
compare-and-rename under a lock on the folder). Of two publishers racing for one name exactly one
wins; the other re-reads the manifest, re-checks the name rule and tries again (or is refused).
Once the new manifest is in place, every version listed before it was written is deleted: the
superseded one, and any a publisher left behind (it died before its manifest, or lost the race).
Safe by construction: a publisher reads the manifest before it uploads anything and a lost
conditional write makes it start over under a fresh version, so a version listed before a
successful manifest write can never be named afterwards. A version of a report nobody publishes
again is removed by ``sweep_report`` (the maintenance step) once ``ORPHAN_AGE`` old: a publisher
never names a version older than ``PUBLISH_DEADLINE``. docs/object-storage.md has the rules.

**Readers follow the manifest** (``read_report``): read it, then the two files it names. A version
is never changed, so that is one version's PNG and CSV; a reader that finds its version deleted
under it (a newer publish cleaned up) reads the new manifest and starts over. ``published_report``
(what the report views, benchmarks and tests use) adds that the report must be *this* request's.

A name belongs to one request: a folder whose manifest records a different request is never
replaced (``InvalidRequest`` on ``name``); the same request is refreshed in place. Request files
pass an ``owner`` (the file), so editing a request file replaces its own report. Default names
contain every field that changes the numbers, so they can only clash with the same request. A
folder that holds anything but versions and no manifest is not ours: it is left alone.

The manifest is a plain JSON object: readers use the keys above and ignore others, so a field can
be added (``report_manifest``) without breaking one. Reports published before versions existed
(``files.<kind>.name`` directly in the folder, no ``key``) are still read, and replaced like any.

Pure data: no Airflow import.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import re
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from taxiflow.config import DataPaths
from taxiflow.data import conditional, documents, storage
from taxiflow.data.storage import DataPath, data_paths
from taxiflow.reports.request import NAME_ALLOWED, InvalidRequest

if TYPE_CHECKING:
    from taxiflow.reports.request import ReportRequest

log = logging.getLogger(__name__)

MANIFEST_FILE = "manifest.json"
VERSION_PREFIX = "v-"
VERSION_TIME_FORMAT = "%Y%m%dT%H%M%S"
_VERSION_RE = re.compile(r"v-([0-9]{8}T[0-9]{6})-[0-9a-f]{8,32}")
# A publisher names its version within PUBLISH_DEADLINE of making it (seconds, normally), or starts
# over; so a version no manifest names, ORPHAN_AGE old, is abandoned (``sweep_report`` deletes it).
# The 50 minutes between them cover clocks of two hosts that disagree.
PUBLISH_DEADLINE = timedelta(minutes=10)
ORPHAN_AGE = timedelta(hours=1)
# How often a reader starts over when the version it read was cleaned up under it.
READ_ATTEMPTS = 20
PUBLISH_ATTEMPTS = 10


def report_dir(name: str, paths: DataPaths | None = None) -> DataPath:
    """``outputs/<name>/``: the folder (key prefix) one report is published in."""
    return (paths or data_paths()).outputs / name


def manifest_path(name: str, paths: DataPaths | None = None) -> DataPath:
    return report_dir(name, paths) / MANIFEST_FILE


def read_manifest(name: str, paths: DataPaths | None = None) -> dict[str, Any] | None:
    """The manifest of ``outputs/<name>/``, or None if there is no published report of that name."""
    folder = report_dir(name, paths)
    if documents.is_link(folder):
        return None
    try:
        document = json.loads(documents.read_bytes(folder / MANIFEST_FILE))
    except (FileNotFoundError, NotADirectoryError):
        return None
    return document if isinstance(document, dict) else None


@dataclass(frozen=True)
class PublishedReport:
    """One report as ``read_report`` saw it: the manifest and the bytes of its files, together."""

    manifest: dict[str, Any]
    png: bytes
    csv: bytes


def read_report(name: str, paths: DataPaths | None = None) -> PublishedReport | None:
    """Read a report's manifest, then the PNG and CSV it names: always one version's pair.

    None if there is no report of that name. A publish that cleans up the version while it is read
    makes the read start over from the new manifest.
    """
    folder = report_dir(name, paths)
    for _ in range(READ_ATTEMPTS):
        manifest = read_manifest(name, paths)
        if manifest is None:
            return None
        try:
            png, csv_bytes = (documents.read_bytes(folder / file_key(manifest, kind, name)) for kind in ("png", "csv"))
        except FileNotFoundError:
            storage.refresh(folder)
            continue  # superseded and cleaned up while we read: follow the new manifest
        return PublishedReport(manifest, png, csv_bytes)
    return None


def file_key(manifest: dict[str, Any], kind: str, name: str) -> str:
    """Where the manifest's ``kind`` file is, relative to the report folder; only names ours can have.

    ``v-<time>-<token>/<name>.<kind>``, or ``<name>.<kind>`` for a report published before
    versions existed. Anything else (a hand-edited manifest) is refused with a ValueError.
    """
    entry = manifest["files"][kind]
    key = str(entry.get("key") or entry["name"])
    version, _, file = key.rpartition("/")
    if file != f"{name}.{kind}" or (version and not _VERSION_RE.fullmatch(version)):
        raise ValueError(f"outputs/{name}/{MANIFEST_FILE} names {key!r} for its {kind}: not a report file")
    return key


def published_report(request: ReportRequest, paths: DataPaths | None = None) -> PublishedReport | None:
    """The request's published report (manifest, PNG and CSV read together), or None.

    None too when ``outputs/<name>/`` holds some other request's report: a reader never shows a
    chart for a request it was not made for.
    """
    report = read_report(str(request.name), paths)
    if report is None or report.manifest.get("request") != request.to_conf():
        return None
    return report


@dataclass(frozen=True)
class ReportNumbers:
    """The CSV's cells: ``(hour_of_day, day_of_week, num_trips)`` rows and their total."""

    rows: list[tuple[int, str, int]]

    @property
    def total(self) -> int:
        return sum(count for _, _, count in self.rows)


def read_numbers(report: PublishedReport) -> ReportNumbers:
    """The report's CSV as typed rows (``hour_of_day,day_of_week,num_trips``)."""
    reader = csv.DictReader(io.StringIO(report.csv.decode("utf-8")))
    return ReportNumbers(
        rows=[(int(row["hour_of_day"]), row["day_of_week"], int(row["num_trips"])) for row in reader]
    )


def _describe(conf: dict[str, Any]) -> str:
    sources = ", ".join(conf.get("sources") or [])
    return f"{conf.get('borough')} {conf.get('start_date')} .. {conf.get('end_date')} ({sources})"


def _check_not_taken(
    request: ReportRequest, folder: DataPath, existing: dict[str, Any] | None, owner: str | None
) -> None:
    """Refuse to publish into a folder that is not this request's report (the manifest decides)."""
    name = str(request.name)
    if existing is None:
        foreign = documents.is_link(folder) or (not storage.is_remote(folder) and folder.is_file()) or [
            entry.name for entry in storage.list_dir(folder) if not entry.name.startswith((VERSION_PREFIX, "."))
        ]
        if foreign:
            raise InvalidRequest(
                "name", name, NAME_ALLOWED,
                problem=f"outputs/{name} exists and is not a taxiflow report folder (no {MANIFEST_FILE}); "
                        "it is left alone: choose another name or move it away",
            )
        return
    _check_same_request(request, existing, owner)


def _check_same_request(request: ReportRequest, existing: dict[str, Any], owner: str | None) -> None:
    """A published report may be replaced by its own request (or owner) only."""
    if existing.get("request") == request.to_conf() or (owner is not None and existing.get("owner") == owner):
        return
    name = str(request.name)
    raise InvalidRequest(
        "name", name, "a name no other request's report uses",
        problem=(
            f"outputs/{name}/ already holds the report for a different request "
            f"({_describe(existing.get('request') or {})}, run {existing.get('run_id')}); it is not "
            f"overwritten: choose another name, or remove outputs/{name}/ to reuse this one"
        ),
    )


@dataclass(frozen=True)
class Publication:
    """What ``publish_report`` published: the report folder, its new version and the manifest written."""

    folder: DataPath
    version: str
    manifest: dict[str, Any]

    def file(self, kind: str) -> DataPath:
        return self.folder / self.manifest["files"][kind]["key"]


def new_version(now: datetime | None = None) -> str:
    """``v-<UTC time>-<random token>``: a prefix no other publish of any name ever uses."""
    return f"{VERSION_PREFIX}{(now or datetime.now(UTC)):{VERSION_TIME_FORMAT}}-{uuid.uuid4().hex[:12]}"


def report_manifest(
    request: ReportRequest, version: str, files: dict[str, dict[str, Any]], total_trips: int,
    run_id: str | None, owner: str | None, ingest_notes: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The manifest document: a plain dict, so another field is one more key here."""
    return {
        "name": str(request.name), "request": request.to_conf(), "run_id": run_id, "owner": owner,
        "total_trips": total_trips, "version": version, "files": files,
        "written_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "ingest_notes": list(ingest_notes or []),
    }


def publish_report(
    request: ReportRequest,
    png: bytes,
    csv: bytes,
    total_trips: int,
    paths: DataPaths | None = None,
    run_id: str | None = None,
    owner: str | None = None,
    ingest_notes: list[dict[str, Any]] | None = None,
) -> Publication:
    """Publish the PNG and CSV of ``request`` as one new version of ``outputs/<name>/``, manifest last.

    ``ingest_notes``: ``KeptPartition.to_json()`` of each kept partition the numbers come from.
    The manifest is read before anything is uploaded; if another publish replaced it meanwhile,
    this one removes its version, checks the name rule again and starts over with a fresh version.
    """
    paths = paths or data_paths()
    name = str(request.name)
    folder = report_dir(name, paths)
    manifest_file = folder / MANIFEST_FILE
    for _ in range(PUBLISH_ATTEMPTS):
        previous, existing = _current_manifest(manifest_file)
        _check_not_taken(request, folder, existing, owner)  # before writing anything
        version = new_version()
        started = time.monotonic()
        files = {}
        try:
            for kind, content in (("png", png), ("csv", csv)):
                file = f"{name}.{kind}"
                storage.write_bytes(folder / version / file, content)
                files[kind] = {"name": file, "key": f"{version}/{file}", "bytes": len(content),
                               "sha256": hashlib.sha256(content).hexdigest()}
            listed = [old for old in storage.names_in(folder) if _VERSION_RE.fullmatch(old) and old != version]
        except FileNotFoundError:
            _discard(folder, version)
            if storage.is_remote(folder):
                raise
            continue  # locally: a publish that won meanwhile removed our version's folder under us
        except BaseException:
            _discard(folder, version)
            raise
        if time.monotonic() - started > PUBLISH_DEADLINE.total_seconds():
            _discard(folder, version)  # the sweep may take it any time now: start over with a fresh one
            continue
        manifest = report_manifest(request, version, files, total_trips, run_id, owner, ingest_notes)
        try:
            conditional.replace_if_match(manifest_file, (json.dumps(manifest, indent=2) + "\n").encode(), previous)
        except conditional.PreconditionFailed:
            _discard(folder, version)  # another publish of this name won in between: never named, and may be
            continue  # deleted by that publish already; check the name rule again and start over
        except BaseException:
            _discard(folder, version, unless_named=True)  # the write's answer was lost: it may have landed
            raise
        break
    else:
        raise RuntimeError(f"could not publish {storage.url(manifest_file)}: it kept changing "
                           f"({PUBLISH_ATTEMPTS} tries)")
    _clean_up(folder, name, listed, existing)
    return Publication(folder, version, manifest)


def _discard(folder: DataPath, version: str, unless_named: bool = False) -> None:
    """Remove this publish's own version, as well as the store lets us; what stays is swept later.

    ``unless_named``: keep it if the manifest names it (a write whose answer was lost), or if the
    manifest cannot be read to tell.
    """
    try:
        if unless_named and read_manifest_version(folder) == version:
            return
        storage.remove_tree(folder / version)
    except Exception as err:
        log.warning("left %s for the sweep: cannot remove it now (%s)", storage.url(folder / version), err)


def read_manifest_version(folder: DataPath) -> str | None:
    """The version the manifest of ``folder`` names now, or None (no manifest, or one from before versions)."""
    try:
        document = json.loads(documents.read_bytes(folder / MANIFEST_FILE))
    except (FileNotFoundError, NotADirectoryError):
        return None
    version = document.get("version") if isinstance(document, dict) else None
    return version if isinstance(version, str) and _VERSION_RE.fullmatch(version) else None


def _current_manifest(manifest_file: DataPath) -> tuple[str | None, dict[str, Any] | None]:
    """(ETag, document) of the manifest as one version (``conditional.read_tagged``); (None, None) if absent."""
    found = conditional.read_tagged(manifest_file, attempts=PUBLISH_ATTEMPTS)
    if found is None:
        return None, None
    tag, data = found
    document = json.loads(data)
    return tag, document if isinstance(document, dict) else {}


def _clean_up(folder: DataPath, name: str, listed: list[str], superseded: dict[str, Any] | None) -> None:
    """Delete the versions listed before the new manifest was written, and a pre-version report's files."""
    if superseded:
        for kind in ("png", "csv"):
            try:
                key = file_key(superseded, kind, name)
            except (KeyError, ValueError, TypeError):
                continue
            if "/" not in key:  # a report from before versions: its files lie in the folder itself
                documents.remove_file(folder / key)
    for version in listed:  # their publishers read the manifest before ours was written: never named now
        storage.remove_tree(folder / version)


def sweep_report(name: str, paths: DataPaths | None = None, older_than: timedelta = ORPHAN_AGE) -> list[str]:
    """Delete the versions of ``outputs/<name>/`` its manifest does not name, made ``older_than`` ago or more.

    For reports nobody publishes again (a publish does this itself, for any age). Never anything
    younger than ``PUBLISH_DEADLINE``; a folder that is not a report folder (see
    ``_check_not_taken``) loses only old ``v-...`` prefixes. Returns what went.
    """
    folder = report_dir(name, paths)
    if documents.is_link(folder):
        return []
    keep = read_manifest_version(folder)
    cutoff = datetime.now(UTC) - max(older_than, PUBLISH_DEADLINE)
    removed = []
    for old in storage.names_in(folder):
        match = _VERSION_RE.fullmatch(old)
        if match and old != keep and _made_at(match.group(1)) < cutoff:
            storage.remove_tree(folder / old)
            removed.append(old)
    return removed


def _made_at(version_time: str) -> datetime:
    return datetime.strptime(version_time, VERSION_TIME_FORMAT).replace(tzinfo=UTC)
