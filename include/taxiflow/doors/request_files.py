"""Request files: a JSON file in ``<data root>/requests/`` asks for one borough report.

The data root is a local folder or an S3 prefix: request files, error files and claims are read
and written through ``taxiflow.data.storage``, the same way on both.

Dagster calls this a sensor with a cursor; here the "cursor" is the DAG run id. Each valid file
maps to the run id ``request__<file stem>__<sha256 of its bytes, first 16 hex digits>``, so the same
file always asks for the same run and Airflow itself refuses to create it twice, whatever state
the watcher kept or lost. A changed file has a new hash, hence a new run id, hence exactly one new
run. The report is published as ``outputs/<file stem>/`` (see ``taxiflow.reports.outputs``).

A bad file gets ``outputs/<file stem>.error.json`` naming the field, the bad value and what is
allowed, with the same message the trigger form, the CLI and REST give for the same input: the
``borough_report`` param JSON schemas (validated by Airflow's own ``ParamsDict``) first, then
``ReportRequest.from_conf`` for what a schema cannot say. Request files are only ever read: never
written, moved or deleted.

No Airflow import at module level: the param check imports ``airflow.sdk`` when it first runs.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from taxiflow.config import BOROUGHS, REQUEST_SUFFIX, DataPaths, is_request_file_name
from taxiflow.data import documents
from taxiflow.data.files import write_json_atomically
from taxiflow.data.storage import DataPath, data_paths
from taxiflow.reports.params import report_param_schemas
from taxiflow.reports.request import (
    DATE_ALLOWED,
    NAME_ALLOWED,
    REQUEST_KEYS,
    SOURCES_ALLOWED,
    InvalidRequest,
    ReportRequest,
    check_limits,
)

log = logging.getLogger(__name__)

ERROR_SUFFIX = ".error.json"
RUN_ID_PREFIX = "request"
HASH_CHARS = 16  # of the sha256 in the run id: 64 bits, plenty for one file's edit history
MAX_REQUEST_BYTES = 64 * 1024

# What a person may put right, per field, when the JSON schema is what refused the value. The same
# wording ``ReportRequest.from_conf`` uses, so "allowed" reads the same whichever check caught it.
_ALLOWED: dict[str, Sequence[str] | str] = {
    "borough": BOROUGHS,
    "start_date": DATE_ALLOWED,
    "end_date": DATE_ALLOWED,
    "sources": SOURCES_ALLOWED,
    "name": NAME_ALLOWED,
}


class RequestFileError(ValueError):
    """Why one request file cannot become a report run: the field, its value, what is allowed."""

    def __init__(self, field: str, value: Any, allowed: Sequence[str] | str, message: str) -> None:
        self.field = field
        self.value = value
        self.allowed = allowed if isinstance(allowed, str) else list(allowed)
        self.message = message
        super().__init__(message)

    @classmethod
    def from_invalid_request(cls, err: InvalidRequest) -> RequestFileError:
        return cls(err.field, err.value, err.allowed, str(err))


@dataclass(frozen=True)
class RequestFile:
    """A valid request file: which report it asks for and the run id that report gets."""

    path: DataPath
    sha256: str
    request: ReportRequest

    @property
    def stem(self) -> str:
        return self.path.name[: -len(REQUEST_SUFFIX)]

    @property
    def run_id(self) -> str:
        return request_run_id(self.stem, self.sha256)

    @property
    def conf(self) -> dict[str, Any]:
        """The ``borough_report`` conf: the validated request, named after the file."""
        return self.request.to_conf()


@dataclass(frozen=True)
class RejectedFile:
    """A request file that cannot become a run, and the error file that says why."""

    path: DataPath
    sha256: str
    error: RequestFileError
    error_file: DataPath | None  # None when no error file could be written (name too long, disk)


@dataclass
class ScanResult:
    valid: list[RequestFile] = field(default_factory=list)
    rejected: list[RejectedFile] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)  # names skipped: hidden, not .json, links, folders
    removed_error_files: list[DataPath] = field(default_factory=list)


def request_run_id(stem: str, sha256: str) -> str:
    """``request__<stem>__<first 16 hex digits of the content's sha256>``."""
    return f"{RUN_ID_PREFIX}__{stem}__{sha256[:HASH_CHARS]}"


def request_file_stem(run_id: str | None) -> str | None:
    """The file stem a ``request_run_id`` was made from; None for a run id of another shape."""
    if not run_id or not run_id.startswith(f"{RUN_ID_PREFIX}__"):
        return None
    stem, _, digest = run_id[len(RUN_ID_PREFIX) + 2:].rpartition("__")
    return stem if stem and len(digest) == HASH_CHARS else None


def request_file_owner(run_id: str | None, name: str | None) -> str | None:
    """``requests/<name>.json`` when the run came from that request file (so its edits replace the report)."""
    stem = request_file_stem(run_id)
    return f"requests/{stem}{REQUEST_SUFFIX}" if stem is not None and stem == name else None


def error_file_for(stem: str, outputs: DataPath) -> DataPath:
    """``outputs/<stem>.error.json``, refusing any stem that would land outside ``outputs``.

    A plain stem (no separator, no leading dot, no NUL) names a file directly in ``outputs`` on
    every backend; nothing else is accepted.
    """
    if not stem or stem.startswith(".") or "/" in stem or "\\" in stem or "\x00" in stem:
        raise ValueError(f"not a plain file stem: {stem!r}")
    return outputs / f"{stem}{ERROR_SUFFIX}"


# --- Validation -----------------------------------------------------------------------------------


def _first_paragraph(message: str) -> str:
    # Airflow appends jsonschema's dump of the whole schema; the first paragraph is the message.
    return message.split("\n\n", 1)[0].strip()


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    duplicates = sorted({key for key in keys if keys.count(key) > 1})
    if duplicates:
        raise RequestFileError(
            "file",
            duplicates,
            "a JSON object with each key once",
            f"file: key {', '.join(repr(k) for k in duplicates)} appears more than once",
        )
    return dict(pairs)


def check_params(conf: Mapping[str, Any]) -> None:
    """Validate each present key against the ``borough_report`` param JSON schemas, as Airflow does.

    Uses Airflow's own ``ParamsDict`` so the message is exactly the one the CLI and REST v2 give
    (``Invalid input for param borough: 'Narnia' is not one of [...]``).
    """
    # airflow.sdk exports ParamsDict (it is in its __all__), but its __init__.pyi stub omits it.
    from airflow.sdk import Param, ParamsDict  # type: ignore[attr-defined]
    from airflow.sdk.exceptions import ParamValidationError

    schemas = report_param_schemas()
    params = ParamsDict({name: Param(**schema) for name, schema in schemas.items()})
    for key in schemas:
        if key not in conf:
            continue
        try:
            params[key] = conf[key]
        except ParamValidationError as err:
            raise RequestFileError(
                key, conf[key], _ALLOWED.get(key, str(schemas[key].get("description", ""))),
                _first_paragraph(str(err)),
            ) from None


def parse_request(stem: str, content: bytes) -> ReportRequest:
    """The report a request file's bytes ask for, named ``stem``; ``RequestFileError`` otherwise."""
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise RequestFileError(
            "file", None, "UTF-8 JSON text", f"file: is not UTF-8 text ({err.reason} at byte {err.start})"
        ) from None
    try:
        data = json.loads(text, object_pairs_hook=_reject_duplicate_keys)
    except RequestFileError:
        raise
    except (ValueError, RecursionError) as err:
        raise RequestFileError("file", None, "a JSON object", f"file: is not valid JSON ({err})") from None
    if not isinstance(data, dict):
        raise RequestFileError.from_invalid_request(
            InvalidRequest(
                "conf", data, REQUEST_KEYS,
                problem=f"{data!r} is not an object", allowed_label="allowed keys",
            )
        )
    if "name" in data:
        raise RequestFileError(
            "name",
            data["name"],
            "leave 'name' out: the file name names the outputs",
            f"name: a request file cannot set 'name'; its outputs are named after the file "
            f"({stem}.png, {stem}.csv)",
        )
    conf = {**data, "name": stem}
    check_params(conf)
    try:
        return check_limits(ReportRequest.from_conf(conf))
    except InvalidRequest as err:
        raise RequestFileError.from_invalid_request(err) from None


# --- Reading the folder ---------------------------------------------------------------------------


def request_files(requests_dir: DataPath) -> tuple[list[DataPath], list[str]]:
    """Regular ``*.json`` files directly in ``requests_dir``, by name; and the names ignored.

    Hidden files, other suffixes, symlinks (whatever they point at), folders and special files
    are ignored, so no file name or link can steer reading or writing elsewhere.
    """
    files, others = documents.list_files(requests_dir)
    found, ignored = [], list(others)
    for entry in files:
        if not is_request_file_name(entry.name):
            ignored.append(entry.name)
            continue
        found.append(entry.path)
    return found, sorted(ignored)


def read_request_file(path: DataPath, limit: int = MAX_REQUEST_BYTES) -> tuple[bytes | None, str, int]:
    """``(content or None if larger than limit, sha256 of all of it, size)``; read-only, no links.

    Locally a file swapped for a link or a FIFO between listing and opening is refused, not
    followed or blocked on (``documents.read_capped``).
    """
    return documents.read_capped(path, limit)


def error_document(
    path: DataPath, paths: DataPaths, sha256: str, error: RequestFileError, checked_at: str
) -> dict[str, Any]:
    value = error.value
    if isinstance(value, (date, datetime)):
        value = value.isoformat()
    elif not isinstance(value, (str, int, float, bool, type(None), list, dict)):
        value = repr(value)
    file = f"{paths.requests.name}/{path.name}"  # request files lie directly in requests/
    return {
        "file": file,
        "error": error.message,
        "field": error.field,
        "value": value,
        "allowed": error.allowed,
        "sha256": sha256,
        "checked_at": checked_at,
    }


def _same_error_recorded(target: DataPath, document: Mapping[str, Any]) -> bool:
    """True when ``target`` already reports this error for this content (keeps ``checked_at``)."""
    try:
        content, _digest, _size = documents.read_capped(target, MAX_REQUEST_BYTES)
        existing = json.loads(content or b"")
    except (OSError, ValueError):
        return False
    keys = ("file", "error", "field", "sha256")
    return isinstance(existing, dict) and all(existing.get(k) == document.get(k) for k in keys)


def records_clash(error_file: DataPath, sha256: str) -> bool:
    """True when ``error_file`` reports a run-id clash for this content (a scan must keep it)."""
    try:
        document = json.loads(documents.read_bytes(error_file))
    except (OSError, ValueError):
        return False
    return isinstance(document, dict) and document.get("field") == "run_id" and document.get("sha256") == sha256


def utcnow() -> str:
    """Now, as the ``checked_at``/``claimed_at`` of error files and claims write it."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def scan_requests(paths: DataPaths | None = None, now: Callable[[], str] = utcnow) -> ScanResult:
    """Check every request file: valid ones are returned, bad ones get ``outputs/<stem>.error.json``.

    Idempotent: an error file that already reports the same error for the same content is left as
    it is (its ``checked_at`` says when that content was first refused); a valid file's old error
    file is removed. One bad or unreadable file never stops the others.
    """
    paths = paths or data_paths()
    result = ScanResult()
    files, result.ignored = request_files(paths.requests)
    for path in files:
        stem = path.name[: -len(REQUEST_SUFFIX)]
        try:
            target = error_file_for(stem, paths.outputs)
        except ValueError:
            result.ignored.append(path.name)
            continue
        try:
            content, sha256, size = read_request_file(path)
        except OSError as err:  # vanished, swapped for a link, unreadable: try again next poll
            log.warning("Skipping request file %s: %s", path, err)
            result.ignored.append(path.name)
            continue
        try:
            if content is None:
                raise RequestFileError(
                    "file", size, f"at most {MAX_REQUEST_BYTES} bytes",
                    f"file: is {size} bytes; request files may be at most {MAX_REQUEST_BYTES} bytes",
                )
            request = parse_request(stem, content)
        except RequestFileError as err:
            document = error_document(path, paths, sha256, err, now())
            written: DataPath | None = target
            if not _same_error_recorded(target, document):
                try:
                    write_json_atomically(target, document)
                except OSError as write_err:
                    log.error("Cannot write %s for %s: %s", target, path, write_err)
                    written = None
            result.rejected.append(RejectedFile(path, sha256, err, written))
            continue
        if not records_clash(target, sha256) and documents.remove_file(target):
            result.removed_error_files.append(target)
        result.valid.append(RequestFile(path, sha256, request))
    return result
