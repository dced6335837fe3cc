"""Request-file run ids belong to the request-file door: a claim proves which runs it started.

A request file's run id (``request__<stem>__<sha256[:16]>``) can be computed by anyone who can see
the file, and every door (form, CLI, REST) lets a user choose a run id. Without a check, a user could
create that run first, with any conf, and the file would then be skipped as "already run".

So the request-file door writes a *claim* (``<data root>/state/request-claims/<digest>.json``: the
run id, the file, its sha256 and the exact conf) before it asks for the run, and:

* ``borough_report`` refuses, at once, a ``request__`` run that has no claim or whose conf is not
  the claimed one (:func:`check_request_run`), so a pre-claimed run renders nothing;
* the door, finding a run with its id that it never claimed, writes ``outputs/<stem>.error.json``
  saying so (field ``run_id``); any edit of the file gives a new run id to ask again with.

Claims are created only if absent (``conditional.create_exclusive``: ``If-None-Match: *`` in a bucket,
``O_EXCL`` on disk), so of two scans that see one new file at the same moment (two hosts, two
deployments sharing a bucket) exactly one claims it and asks for its run; the other leaves it to
that claimer. A claim names its claimer (the scan's run), so a retry of the winning scan still
asks for the run; a claim whose run still does not exist after ``CLAIM_TAKEOVER_AFTER`` (its
claimer died for good) is taken over by one later scan, again conditionally (``If-Match``).

Only the door and the workers write the data root; Airflow users cannot, so they cannot forge a claim.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from taxiflow.config import REPORT_DAG_ID, DataPaths
from taxiflow.data import conditional, documents
from taxiflow.data.files import write_json_atomically
from taxiflow.data.storage import DataPath, data_paths
from taxiflow.doors.request_files import (
    RUN_ID_PREFIX,
    RejectedFile,
    RequestFile,
    RequestFileError,
    error_document,
    error_file_for,
    records_clash,
    utcnow,
)
from taxiflow.reports.request import ReportRequest

log = logging.getLogger(__name__)

CLASH_ALLOWED = "a run id that no other door has used: edit the file (any change gives a new run id)"
# A claim whose run does not exist this long after it was made lost its claimer (a scan that died
# between claiming and asking for the run, and whose retries failed): a later scan takes it over.
CLAIM_TAKEOVER_AFTER = timedelta(minutes=15)


class RequestRunRefused(ValueError):
    """A ``request__`` run that the request-file door did not start with this conf."""


def claim_path(run_id: str, paths: DataPaths) -> DataPath:
    """Where the claim for ``run_id`` lives (named by a digest: no run id text reaches a path)."""
    return paths.request_claims / f"{hashlib.sha256(run_id.encode()).hexdigest()[:32]}.json"


def read_claim(run_id: str, paths: DataPaths) -> dict[str, Any] | None:
    try:
        claim = json.loads(documents.read_bytes(claim_path(run_id, paths)))
    except (OSError, ValueError):
        return None
    return claim if isinstance(claim, dict) and claim.get("run_id") == run_id else None


def _claim_document(request: RequestFile, claimer: str, now: Callable[[], str]) -> bytes:
    return (json.dumps({
        "run_id": request.run_id, "file": request.path.name, "sha256": request.sha256,
        "conf": request.conf, "claimed_by": claimer, "claimed_at": now(),
    }, indent=2) + "\n").encode()


def write_claim(
    request: RequestFile, paths: DataPaths, now: Callable[[], str] = utcnow, claimer: str | None = None
) -> bool:
    """Claim ``request.run_id`` for ``claimer`` if nobody has (on any host); True if this call did."""
    return conditional.create_exclusive(
        claim_path(request.run_id, paths), _claim_document(request, claimer or _new_claimer(), now)
    )


def _new_claimer() -> str:
    return f"scan-{uuid.uuid4().hex[:12]}"


def _take_over_if_abandoned(
    request: RequestFile, claim: dict[str, Any], paths: DataPaths, now: Callable[[], str], claimer: str
) -> bool:
    """Take over another claimer's claim whose run never appeared; conditional, so one scan wins."""
    try:
        claimed_at = datetime.fromisoformat(str(claim.get("claimed_at")))
    except ValueError:
        claimed_at = datetime.min.replace(tzinfo=UTC)
    if claimed_at.tzinfo is None:
        claimed_at = claimed_at.replace(tzinfo=UTC)
    if datetime.now(UTC) - claimed_at < CLAIM_TAKEOVER_AFTER:
        return False  # its claimer is probably still asking for the run
    target = claim_path(request.run_id, paths)
    version = conditional.etag(target)
    if version is None:
        return write_claim(request, paths, now, claimer)
    try:
        conditional.replace_if_match(target, _claim_document(request, claimer, now), version)
    except conditional.PreconditionFailed:
        return False
    log.warning("Took over the claim of %s from %s (claimed at %s; its run never appeared)",
                request.run_id, claim.get("claimed_by"), claim.get("claimed_at"))
    return True


def is_request_run_id(run_id: str) -> bool:
    return run_id.startswith(f"{RUN_ID_PREFIX}__")


def check_request_run(run_id: str, conf: Mapping[str, Any], paths: DataPaths | None = None) -> None:
    """Refuse a ``request__`` run the request-file door did not start with exactly this request."""
    if not is_request_run_id(run_id):
        return
    paths = paths or data_paths()
    claim = read_claim(run_id, paths)
    if claim is None:
        raise RequestRunRefused(
            f"run_id: {run_id!r} is reserved for request files, and no request file started this run "
            f"(it was created by hand with that id). Nothing is rendered; the request file, if any, is "
            f"told so in outputs/<file>.error.json. Trigger reports with another run id."
        )
    wanted = ReportRequest.from_conf(claim["conf"]).to_conf()
    if ReportRequest.from_conf(dict(conf)).to_conf() != wanted:
        raise RequestRunRefused(
            f"run_id: {run_id!r} belongs to request file requests/{claim['file']}, which asked for "
            f"{wanted}; this run's conf differs, so nothing is rendered."
        )


def claim_new_requests(
    valid: Iterable[RequestFile],
    existing_run_ids: Callable[[list[str]], set[str]],
    paths: DataPaths | None = None,
    now: Callable[[], str] = utcnow,
    claimer: str | None = None,
) -> tuple[list[RequestFile], list[RejectedFile]]:
    """Claim the requests whose run does not exist yet; report those whose id another door took.

    ``existing_run_ids(run_ids)`` returns which of them exist as ``borough_report`` runs.
    ``claimer`` names this scan (its run, so a retry of it is recognised); a fresh name if None.
    Returns (requests this claimer must trigger now, clashes with their error file written).
    A request another claimer holds is in neither list: that claimer triggers it.
    """
    paths = paths or data_paths()
    claimer = claimer or _new_claimer()
    requests = list(valid)
    existing = existing_run_ids([r.run_id for r in requests]) if requests else set()
    new: list[RequestFile] = []
    clashes: list[RejectedFile] = []
    for request in requests:
        claim = read_claim(request.run_id, paths)
        if request.run_id not in existing:
            if claim is None:
                mine = write_claim(request, paths, now, claimer)
            else:
                mine = claim.get("claimed_by") == claimer or _take_over_if_abandoned(
                    request, claim, paths, now, claimer
                )
            if not mine:
                log.info("%s is claimed by %s: that scan asks for its run",
                         request.run_id, (read_claim(request.run_id, paths) or {}).get("claimed_by"))
                continue
            stale = error_file_for(request.stem, paths.outputs)
            if records_clash(stale, request.sha256):  # the clashing run was deleted: run it after all
                documents.remove_file(stale)
            new.append(request)
        elif claim is None:
            clashes.append(_write_clash(request, paths, now))
    return new, clashes


def _write_clash(request: RequestFile, paths: DataPaths, now: Callable[[], str]) -> RejectedFile:
    error = RequestFileError(
        "run_id", request.run_id, CLASH_ALLOWED,
        f"run_id: a {REPORT_DAG_ID} run with this file's run id {request.run_id!r} already exists, "
        f"and this request file did not start it (someone triggered it by hand with that id). That "
        f"run is refused and renders nothing; this file was not run. Edit the file (any change "
        f"gives a new run id) to ask again.",
    )
    target = error_file_for(request.stem, paths.outputs)
    document = error_document(request.path, paths, request.sha256, error, now())
    if not records_clash(target, request.sha256):
        write_json_atomically(target, document)
    return RejectedFile(request.path, request.sha256, error, target)
