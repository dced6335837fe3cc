"""Request-file run ids cannot be pre-claimed, and the folder watcher fires once per new content."""

from __future__ import annotations

import asyncio
import json
import os

import pytest

from taxiflow.components.triggers import RequestFilesTrigger, folder_fingerprints
from taxiflow.config import DataPaths
from taxiflow.doors.request_claims import (
    RequestRunRefused,
    check_request_run,
    claim_new_requests,
    read_claim,
)
from taxiflow.doors.request_files import scan_requests

VALID = {"borough": "Queens", "start_date": "2024-01-01", "end_date": "2024-01-08"}


@pytest.fixture
def paths(tmp_path) -> DataPaths:
    paths = DataPaths(tmp_path / "data")
    paths.requests.mkdir(parents=True)
    return paths


def test_the_door_claims_new_requests_and_reports_a_pre_claimed_run_id(paths):
    (paths.requests / "mine.json").write_text(json.dumps(VALID))
    (paths.requests / "taken.json").write_text(json.dumps(VALID))
    scan = scan_requests(paths)
    taken = next(r for r in scan.valid if r.stem == "taken")
    new, clashes = claim_new_requests(scan.valid, lambda ids: {taken.run_id}, paths)

    assert [r.stem for r in new] == ["mine"]
    assert read_claim(new[0].run_id, paths)["conf"] == new[0].conf
    assert [c.path.name for c in clashes] == ["taken.json"] and read_claim(taken.run_id, paths) is None
    error = json.loads((paths.outputs / "taken.error.json").read_text())
    assert error["field"] == "run_id" and error["value"] == taken.run_id
    assert "this request file did not start it" in error["error"]

    # The next scan keeps the clash's error file (same content), and claims nothing twice.
    again = scan_requests(paths)
    assert (paths.outputs / "taken.error.json").exists() and again.removed_error_files == []
    new, clashes = claim_new_requests(again.valid, lambda ids: {taken.run_id, new[0].run_id}, paths)
    assert new == [] and [c.path.name for c in clashes] == ["taken.json"]


def test_borough_report_refuses_request_runs_the_door_did_not_start(paths):
    (paths.requests / "mine.json").write_text(json.dumps(VALID))
    [request] = scan_requests(paths).valid
    with pytest.raises(RequestRunRefused, match="reserved for request files"):
        check_request_run(request.run_id, request.conf, paths)
    claim_new_requests([request], lambda ids: set(), paths)
    check_request_run(request.run_id, request.conf, paths)  # the door's own run passes
    with pytest.raises(RequestRunRefused, match="this run's conf differs"):
        check_request_run(request.run_id, {**request.conf, "borough": "Bronx"}, paths)
    check_request_run("manual__2024-01-01T00:00:00+00:00", {**VALID}, paths)  # other ids: not checked


async def _events(trigger: RequestFilesTrigger, actions: list, polls_per_action: int = 3) -> list[list[str]]:
    """Run the trigger, doing one action (a callable) every few polls; collect the files per event."""
    seen: list[list[str]] = []
    generator = trigger.run()

    async def collect():
        async for event in generator:
            seen.append(event.payload["files"])

    task = asyncio.create_task(collect())
    for action in actions:
        action()
        await asyncio.sleep(trigger.poll_interval * polls_per_action)
    task.cancel()
    return seen


def test_the_watcher_fires_once_per_new_or_changed_file_and_never_touches_it(paths):
    first, second = paths.requests / "a.json", paths.requests / "b.json"

    def before() -> dict[str, tuple[bytes, int]]:
        return {p.name: (p.read_bytes(), os.stat(p).st_mtime_ns) for p in paths.requests.iterdir()}

    trigger = RequestFilesTrigger(folder=str(paths.requests), poll_interval=0.05)
    actions = [
        lambda: first.write_text(json.dumps(VALID)),
        lambda: None,  # nothing changes: no event
        lambda: (second.write_text("{}"), os.utime(first, ns=(1, 1))),  # a new file and a touched one
        lambda: (paths.requests / ".hidden.json").write_text("{}"),  # hidden: ignored
    ]
    events = asyncio.run(_events(trigger, actions))
    assert events == [["a.json"], ["a.json", "b.json"]]
    assert set(before()) == {"a.json", "b.json", ".hidden.json"}
    assert folder_fingerprints(paths.requests).keys() == {"a.json", "b.json"}
    assert RequestFilesTrigger(folder="/x").serialize() == (
        "taxiflow.components.triggers.RequestFilesTrigger", {"folder": "/x", "poll_interval": None}
    )
