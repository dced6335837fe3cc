"""Where a report's outputs live, and how they are published so nobody sees half of them.

Layout (the one place it is defined; readers such as UI views use the functions below)::

    outputs/<name>/                 one folder per report, replaced whole
        <name>.png                  the chart
        <name>.csv                  the numbers behind it (hour_of_day,day_of_week,num_trips)
        manifest.json               what produced them: name, request (conf), run_id, owner,
                                    total_trips, written_at, each file's bytes and sha256, and
                                    ingest_notes: the kept partitions the numbers come from (a
                                    month whose latest re-drop was refused), one note each

Publishing writes a complete new folder under a hidden name (``outputs/.<name>.<token>.new``)
and swaps it in with one ``renameat2(RENAME_EXCHANGE)`` (two renames where the kernel lacks it),
so ``outputs/<name>/`` always holds one report's PNG, CSV and manifest together. A reader that
wants a consistent pair opens the folder once and reads inside it: ``read_report`` does, and
``published_report`` (what the report views, benchmarks and tests use) adds that the folder must
hold *this* request's report.

In an object store (``s3://`` data root) there is no rename: the PNG and CSV go under a fresh
versioned prefix (``outputs/<name>/v-<time>-<token>/``), then ``manifest.json`` is written last
with a conditional PUT (``If-Match`` on the manifest this publish read, ``If-None-Match: *`` for
a new name), so of two publishers racing for one name exactly one wins and the other re-checks
and retries; the superseded version is deleted afterwards. Every reader follows the manifest
(``files.<png|csv>.key`` names the object), so it sees one version's PNG and CSV, never a mix.

A name belongs to one request: a folder whose manifest records a different request is never
replaced (``InvalidRequest`` on ``name``); the same request is refreshed in place. Request files
pass an ``owner`` (the file), so editing a request file replaces its own report. Default names
contain every field that changes the numbers, so they can only clash with the same request.

Pure data: no Airflow import.
"""

from __future__ import annotations

import csv
import ctypes
import ctypes.util
import fcntl
import hashlib
import io
import json
import os
import shutil
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from taxiflow.config import DataPaths
from taxiflow.data import storage
from taxiflow.data.storage import data_paths
from taxiflow.reports.request import NAME_ALLOWED, InvalidRequest

if TYPE_CHECKING:
    from collections.abc import Generator

    from taxiflow.reports.request import ReportRequest

MANIFEST_FILE = "manifest.json"
LOCKS_DIR = ".locks"


def report_dir(name: str, paths: DataPaths | None = None) -> Path:
    """``outputs/<name>/``: the folder one report is published as."""
    return (paths or data_paths()).outputs / name


def manifest_path(name: str, paths: DataPaths | None = None) -> Path:
    return report_dir(name, paths) / MANIFEST_FILE


def read_manifest(name: str, paths: DataPaths | None = None) -> dict[str, Any] | None:
    """The manifest of ``outputs/<name>/``, or None if there is no published report of that name."""
    try:
        return json.loads(manifest_path(name, paths).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None


@dataclass(frozen=True)
class PublishedReport:
    """One report as ``read_report`` saw it: the manifest and the bytes of its files, together."""

    manifest: dict[str, Any]
    png: bytes
    csv: bytes


def read_report(name: str, paths: DataPaths | None = None) -> PublishedReport | None:
    """Read a report's manifest, PNG and CSV through one folder handle (never a mix of two versions).

    None if there is no report of that name. A publish that retires the folder while it is read
    makes the read start over on the new folder.
    """
    folder = report_dir(name, paths)
    if storage.is_remote(folder):
        return _read_object_report(folder)
    for _ in range(20):
        try:
            fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        except FileNotFoundError:
            if not any(folder.parent.glob(f".{name}.*")):
                return None  # no report, and none being published
            continue
        try:
            manifest = json.loads(_read_in(fd, MANIFEST_FILE))
            return PublishedReport(manifest, _read_in(fd, manifest["files"]["png"]["name"]),
                                   _read_in(fd, manifest["files"]["csv"]["name"]))
        except FileNotFoundError:
            continue  # this version was retired while we read it: read the current one
        finally:
            os.close(fd)
    return None


def _read_object_report(folder: Any) -> PublishedReport | None:
    """``read_report`` in an object store: the manifest, then the objects it names (retried if retired)."""
    for _ in range(20):
        storage.refresh(folder)
        try:
            manifest = json.loads((folder / MANIFEST_FILE).read_bytes())
        except FileNotFoundError:
            return None
        files = manifest["files"]
        try:
            return PublishedReport(manifest, (folder / _key(files["png"])).read_bytes(),
                                   (folder / _key(files["csv"])).read_bytes())
        except FileNotFoundError:
            continue  # superseded and cleaned up while we read: follow the new manifest
    return None


def _key(entry: dict[str, Any]) -> str:
    """Where a manifest's file is, relative to the report folder (``key`` in object stores)."""
    return str(entry.get("key") or entry["name"])


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


def _read_in(folder_fd: int, file: str) -> bytes:
    """The bytes of ``file`` inside the folder open as ``folder_fd`` (no links followed)."""
    inner = os.open(file, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=folder_fd)
    with os.fdopen(inner, "rb") as handle:
        return handle.read()


@contextmanager
def _locked(name: str, paths: DataPaths) -> Generator[None, None, None]:
    locks = paths.outputs / LOCKS_DIR
    locks.mkdir(parents=True, exist_ok=True)
    with open(locks / f"{name}.lock", "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _describe(conf: dict[str, Any]) -> str:
    sources = ", ".join(conf.get("sources") or [])
    return f"{conf.get('borough')} {conf.get('start_date')} .. {conf.get('end_date')} ({sources})"


def _check_not_taken(request: ReportRequest, folder: Path, owner: str | None) -> None:
    """Refuse to replace a folder that is not this request's report."""
    name = str(request.name)
    if not folder.exists() and not folder.is_symlink():
        return
    if folder.is_symlink() or not folder.is_dir() or not (folder / MANIFEST_FILE).is_file():
        raise InvalidRequest(
            "name", name, NAME_ALLOWED,
            problem=f"outputs/{name} exists and is not a taxiflow report folder (no {MANIFEST_FILE}); "
                    "it is left alone: choose another name or move it away",
        )
    _check_same_request(request, json.loads((folder / MANIFEST_FILE).read_text(encoding="utf-8")), owner)


def _check_same_request(request: ReportRequest, existing: dict[str, Any], owner: str | None) -> None:
    """A published report may be replaced by its own request (or owner) only, on disk and in a store."""
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


def _file_entry(folder: Path, file: str, content: bytes) -> dict[str, Any]:
    path = folder / file
    path.write_bytes(content)
    os.chmod(path, 0o644)
    return {"name": file, "bytes": len(content), "sha256": hashlib.sha256(content).hexdigest()}


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux ``renameat2``); False where the system cannot."""
    libc_name = ctypes.util.find_library("c")
    if not libc_name:
        return False
    libc = ctypes.CDLL(libc_name, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:
        return False
    result = renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    return result == 0


def publish_report(
    request: ReportRequest,
    png: bytes,
    csv: bytes,
    total_trips: int,
    paths: DataPaths | None = None,
    run_id: str | None = None,
    owner: str | None = None,
    ingest_notes: list[dict[str, Any]] | None = None,
) -> Path:
    """Publish the PNG and CSV of ``request`` as ``outputs/<name>/``, whole; returns the folder.

    ``ingest_notes``: ``KeptPartition.to_json()`` of each kept partition the numbers come from.
    """
    paths = paths or data_paths()
    name = str(request.name)
    folder = report_dir(name, paths)
    notes = list(ingest_notes or [])
    if storage.is_remote(folder):
        return _publish_objects(request, png, csv, total_trips, folder, run_id, owner, notes)
    paths.outputs.mkdir(parents=True, exist_ok=True)
    token = uuid.uuid4().hex
    staged = paths.outputs / f".{name}.{token}.new"
    staged.mkdir()
    try:
        files = {"png": _file_entry(staged, f"{name}.png", png), "csv": _file_entry(staged, f"{name}.csv", csv)}
        manifest = {
            "name": name,
            "request": request.to_conf(),
            "run_id": run_id,
            "owner": owner,
            "total_trips": total_trips,
            "files": files,
            "written_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "ingest_notes": notes,
        }
        (staged / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        os.chmod(staged, 0o755)
        with _locked(name, paths):
            _check_not_taken(request, folder, owner)
            if folder.exists() and _exchange(staged, folder):
                pass  # staged now holds the previous report; removed below
            else:
                if folder.exists():
                    os.rename(folder, paths.outputs / f".{name}.{token}.old")
                os.rename(staged, folder)
    finally:
        shutil.rmtree(staged, ignore_errors=True)
        shutil.rmtree(paths.outputs / f".{name}.{token}.old", ignore_errors=True)
    return folder


VERSION_PREFIX = "v-"


def _publish_objects(
    request: ReportRequest, png: bytes, csv: bytes, total_trips: int, folder: Any,
    run_id: str | None, owner: str | None, notes: list[dict[str, Any]],
) -> Any:
    """``publish_report`` in an object store; returns the version folder now published."""
    name = str(request.name)
    version = f"{VERSION_PREFIX}{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
    files = {}
    for kind, content in (("png", png), ("csv", csv)):
        file = f"{name}.{kind}"
        storage.write_bytes(folder / version / file, content)
        files[kind] = {"name": file, "key": f"{version}/{file}", "bytes": len(content),
                       "sha256": hashlib.sha256(content).hexdigest()}
    manifest_file = folder / MANIFEST_FILE
    for _ in range(10):
        previous, existing = _current_manifest(manifest_file)
        try:
            _check_not_taken_in_store(request, folder, existing, owner)
        except InvalidRequest:
            storage.remove_tree(folder / version)  # never published: leave nothing behind
            raise
        manifest = {
            "name": name, "request": request.to_conf(), "run_id": run_id, "owner": owner,
            "total_trips": total_trips, "files": files, "version": version,
            "written_at": datetime.now(UTC).isoformat(timespec="seconds"), "ingest_notes": notes,
        }
        try:
            storage.replace_if_match(manifest_file, (json.dumps(manifest, indent=2) + "\n").encode(), previous)
        except storage.PreconditionFailed:
            continue  # another publish of this name won in between: check ownership again, retry
        break
    else:
        storage.remove_tree(folder / version)
        raise RuntimeError(f"could not publish {storage.url(manifest_file)}: it kept changing (10 tries)")
    superseded = (existing or {}).get("version")
    if superseded and superseded != version:
        storage.remove_tree(folder / superseded)
    return folder / version


def _current_manifest(manifest_file: Any) -> tuple[str | None, dict[str, Any] | None]:
    """(ETag, document) of the manifest as one version: re-read until the ETag is the same before and after."""
    for _ in range(10):
        before = storage.etag(manifest_file)
        if before is None:
            return None, None
        try:
            document = json.loads(manifest_file.read_bytes())
        except FileNotFoundError:
            continue
        if storage.etag(manifest_file) == before:
            return before, document
    raise RuntimeError(f"{storage.url(manifest_file)} kept changing while it was read")


def _check_not_taken_in_store(
    request: ReportRequest, folder: Any, existing: dict[str, Any] | None, owner: str | None
) -> None:
    """``_check_not_taken`` for an object store: the manifest decides; other objects there refuse."""
    name = str(request.name)
    if existing is None:
        others = [p.name for p in storage.list_dir(folder) if not p.name.startswith(VERSION_PREFIX)]
        if others:
            raise InvalidRequest(
                "name", name, NAME_ALLOWED,
                problem=f"outputs/{name} exists and is not a taxiflow report folder (no {MANIFEST_FILE}); "
                        "it is left alone: choose another name or move it away",
            )
        return
    _check_same_request(request, existing, owner)
