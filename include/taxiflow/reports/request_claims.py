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

Only the door and the workers write the data root; Airflow users cannot, so they cannot forge a claim.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from taxiflow.config import REPORT_DAG_ID, DataPaths
from taxiflow.data.files import write_json_atomically
from taxiflow.data.storage import data_paths
from taxiflow.reports.request import ReportRequest
from taxiflow.reports.request_files import (
    RUN_ID_PREFIX,
    RejectedFile,
    RequestFile,
    RequestFileError,
    error_document,
    error_file_for,
    records_clash,
    utcnow,
)

CLAIMS_FOLDER = ("state", "request-claims")
CLASH_ALLOWED = "a run id that no other door has used: edit the file (any change gives a new run id)"


class RequestRunRefused(ValueError):
    """A ``request__`` run that the request-file door did not start with this conf."""


def claims_dir(paths: DataPaths) -> Path:
    return paths.root.joinpath(*CLAIMS_FOLDER)


def claim_path(run_id: str, paths: DataPaths) -> Path:
    """Where the claim for ``run_id`` lives (named by a digest: no run id text reaches a path)."""
    return claims_dir(paths) / f"{hashlib.sha256(run_id.encode()).hexdigest()[:32]}.json"


def read_claim(run_id: str, paths: DataPaths) -> dict[str, Any] | None:
    try:
        claim = json.loads(claim_path(run_id, paths).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return claim if isinstance(claim, dict) and claim.get("run_id") == run_id else None


def write_claim(request: RequestFile, paths: DataPaths, now: Callable[[], str] = utcnow) -> Path:
    """Record that the door is about to start ``request.run_id`` with ``request.conf``."""
    target = claim_path(request.run_id, paths)
    write_json_atomically(target, {
        "run_id": request.run_id, "file": request.path.name, "sha256": request.sha256,
        "conf": request.conf, "claimed_at": now(),
    })
    return target


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
) -> tuple[list[RequestFile], list[RejectedFile]]:
    """Claim the requests whose run does not exist yet; report those whose id another door took.

    ``existing_run_ids(run_ids)`` returns which of them exist as ``borough_report`` runs. Returns
    (requests to trigger now, clashes with their error file written).
    """
    paths = paths or data_paths()
    requests = list(valid)
    existing = existing_run_ids([r.run_id for r in requests]) if requests else set()
    new: list[RequestFile] = []
    clashes: list[RejectedFile] = []
    for request in requests:
        claimed = read_claim(request.run_id, paths) is not None
        if request.run_id not in existing:
            if not claimed:
                write_claim(request, paths, now)
            stale = error_file_for(request.stem, paths.outputs)
            if records_clash(stale, request.sha256):  # the clashing run was deleted: run it after all
                stale.unlink(missing_ok=True)
            new.append(request)
        elif not claimed:
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
    try:
        previous = json.loads(target.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        previous = None
    if not (isinstance(previous, dict) and previous.get("field") == "run_id"
            and previous.get("sha256") == request.sha256):
        write_json_atomically(target, document)
    return RejectedFile(request.path, request.sha256, error, target)
