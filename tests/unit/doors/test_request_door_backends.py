"""The request-file door on both backends: a local folder and a real S3 server (SeaweedFS on loopback).

Request files in ``requests/`` are read, claimed only if unclaimed, and reported through the same
publish protocol as every report; error files are written back beside the outputs. The ``s3`` cases
start SeaweedFS: run them under the heavy lock.
"""

from __future__ import annotations

import asyncio
import io
import json
import threading

import pandas as pd
import pytest

from taxiflow.components.triggers import RequestFilesTrigger, folder_fingerprints
from taxiflow.config import Partition
from taxiflow.data import documents, ingest, metrics, storage, warehouse
from taxiflow.data.raw import copy_to_raw
from taxiflow.doors.request_claims import (
    CLAIM_TAKEOVER_AFTER,
    check_request_run,
    claim_new_requests,
    claim_path,
    read_claim,
)
from taxiflow.doors.request_files import scan_requests
from taxiflow.reports import outputs
from taxiflow.reports.render import render_report

JANUARY = Partition("green", "2024-01")
REQUEST = {"borough": "Manhattan", "start_date": "2024-01-01", "end_date": "2024-02-01", "sources": ["green"]}


def put_request(paths, name: str, content: bytes | dict) -> None:
    """What a user does: upload a request file into ``requests/`` (one PUT, or one file written)."""
    data = content if isinstance(content, bytes) else json.dumps(content).encode()
    storage.write_bytes(paths.requests / name, data)


def test_a_request_file_becomes_a_published_chart_and_csv(any_root):
    from taxiflow.demo.trips import generate_month

    generate_month("green", "2024-01", 400)  # a drop: data file, then _SUCCESS
    copy_to_raw(JANUARY)
    ingest.process_partition(JANUARY)
    metrics.build_metrics(JANUARY)
    put_request(any_root, "board.json", REQUEST)

    scan = scan_requests()
    assert [r.stem for r in scan.valid] == ["board"] and scan.rejected == []
    new, clashes = claim_new_requests(scan.valid, lambda ids: set(), claimer="scan-1")
    assert [r.run_id for r in new] == [scan.valid[0].run_id] and clashes == []
    check_request_run(new[0].run_id, new[0].conf)  # borough_report's check finds the door's claim
    render_report(new[0].request, run_id=new[0].run_id, owner="requests/board.json")

    report = outputs.read_report("board")  # through the manifest
    assert report is not None and report.manifest["run_id"] == new[0].run_id
    assert report.png.startswith(b"\x89PNG")
    trips = pd.read_parquet(io.BytesIO(documents.read_bytes(
        any_root.landing_dir(JANUARY) / "green_tripdata_2024-01.parquet")))
    zones = pd.read_csv(warehouse.PACKAGED_ZONE_TABLE)
    expected = int(trips.merge(zones, left_on="PULocationID", right_on="LocationID")["Borough"].eq("Manhattan").sum())
    assert pd.read_csv(io.BytesIO(report.csv))["num_trips"].sum() == report.manifest["total_trips"] == expected > 0
    assert documents.list_files(any_root.requests)[0][0].name == "board.json"  # the request file is left as it was


def test_a_bad_request_file_gets_an_error_document_naming_the_field(any_root):
    put_request(any_root, "narnia.json", {**REQUEST, "borough": "Narnia"})
    put_request(any_root, "good.json", REQUEST)
    put_request(any_root, ".hidden.json", b"{")
    put_request(any_root, "notes.txt", b"not a request")

    scan = scan_requests()
    assert [r.stem for r in scan.valid] == ["good"]
    [bad] = scan.rejected
    error = json.loads(documents.read_bytes(any_root.outputs / "narnia.error.json"))
    assert error["field"] == "borough" and error["value"] == "Narnia" and error["file"] == "requests/narnia.json"
    assert "Invalid input for param borough: 'Narnia'" in error["error"] and "Manhattan" in error["allowed"]
    assert bad.error_file == any_root.outputs / "narnia.error.json"
    assert {".hidden.json", "notes.txt"} <= set(scan.ignored)

    again = scan_requests()  # the same content: the error file is kept as it was
    assert json.loads(documents.read_bytes(any_root.outputs / "narnia.error.json")) == error
    put_request(any_root, "narnia.json", REQUEST)  # corrected: its stale error file goes
    fixed = scan_requests()
    assert sorted(r.stem for r in fixed.valid) == ["good", "narnia"] and again.removed_error_files == []
    assert [p.name for p in fixed.removed_error_files] == ["narnia.error.json"]
    assert documents.list_files(any_root.outputs)[0] == []


def test_of_two_concurrent_claimers_exactly_one_wins(any_root):
    """Two scans (two hosts) see one new file at once: one claims it and asks for the run, the other not."""
    put_request(any_root, "race.json", REQUEST)
    [request] = scan_requests().valid
    barrier = threading.Barrier(2)
    won: dict[str, list[str]] = {}

    def scan(claimer: str) -> None:
        barrier.wait()
        new, _clashes = claim_new_requests([request], lambda ids: set(), claimer=claimer)
        won[claimer] = [r.run_id for r in new]

    threads = [threading.Thread(target=scan, args=(f"host-{n}",)) for n in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [claimer for claimer, run_ids in won.items() if run_ids]
    assert len(winners) == 1 and won[winners[0]] == [request.run_id]
    assert read_claim(request.run_id, storage.data_paths())["claimed_by"] == winners[0]
    # A retry of the winning scan asks again (its run may not have been created); the loser never does.
    assert claim_new_requests([request], lambda ids: set(), claimer=winners[0])[0] == [request]
    loser = next(c for c in won if c not in winners)
    assert claim_new_requests([request], lambda ids: set(), claimer=loser)[0] == []


def test_an_abandoned_claim_is_taken_over_by_one_later_scan(any_root):
    from datetime import UTC, datetime

    put_request(any_root, "lost.json", REQUEST)
    [request] = scan_requests().valid
    long_ago = (datetime.now(UTC) - CLAIM_TAKEOVER_AFTER * 2).isoformat(timespec="seconds")
    assert claim_new_requests([request], lambda ids: set(), now=lambda: long_ago, claimer="died")[0] == [request]
    results = [claim_new_requests([request], lambda ids: set(), claimer=f"later-{n}")[0] for n in (1, 2)]
    assert results == [[request], []]  # the first later scan takes it over; the claim is then fresh
    assert read_claim(request.run_id, storage.data_paths())["claimed_by"] == "later-1"
    assert storage.files_below(claim_path(request.run_id, storage.data_paths()).parent) == [
        claim_path(request.run_id, storage.data_paths()).name
    ]


def test_the_watcher_sees_new_and_changed_files_and_nothing_else(any_root):
    assert folder_fingerprints(any_root.requests) == {}
    put_request(any_root, "a.json", REQUEST)
    put_request(any_root, ".hidden.json", REQUEST)
    put_request(any_root, "b.txt", b"x")
    first = folder_fingerprints(any_root.requests)
    assert list(first) == ["a.json"]
    put_request(any_root, "a.json", {**REQUEST, "borough": "Queens"})
    assert folder_fingerprints(any_root.requests)["a.json"] != first["a.json"]

    async def first_event() -> dict:
        trigger = RequestFilesTrigger(folder=storage.url(any_root.requests), poll_interval=0.05)
        events = trigger.run()
        try:
            event = await asyncio.wait_for(anext(events), timeout=30)
        finally:
            await events.aclose()
        return event.payload

    payload = asyncio.run(first_event())
    assert payload == {"folder": storage.url(any_root.requests), "files": ["a.json"]}
    assert documents.read_bytes(any_root.requests / "a.json") == json.dumps({**REQUEST, "borough": "Queens"}).encode()


def test_the_watcher_fires_an_object_on_its_first_listing_and_a_local_file_once_settled(any_root, monkeypatch):
    """An object is listed only once its upload is complete, so one listing that shows it is enough
    (a second would cost one more poll interval of latency); a local file may still be being
    written, so it fires only after two listings in a row showed it unchanged."""
    from taxiflow.components import triggers

    put_request(any_root, "a.json", REQUEST)
    listings: list[dict[str, str]] = []

    def counted(folder):
        listings.append(folder_fingerprints(folder))
        return listings[-1]

    monkeypatch.setattr(triggers, "folder_fingerprints", counted)

    async def first_event() -> dict:
        events = RequestFilesTrigger(folder=storage.url(any_root.requests), poll_interval=0.01).run()
        try:
            return (await asyncio.wait_for(anext(events), timeout=30)).payload
        finally:
            await events.aclose()

    assert asyncio.run(first_event())["files"] == ["a.json"]
    expected = 1 if storage.is_remote(any_root.requests) else 2
    assert len(listings) == expected and all("a.json" in listing for listing in listings)


@pytest.mark.parametrize("any_root", ["local"], indirect=True)
def test_a_link_in_requests_is_ignored(any_root, tmp_path):
    secret = tmp_path / "secret.json"
    secret.write_text(json.dumps(REQUEST))
    any_root.requests.mkdir(parents=True)
    (any_root.requests / "link.json").symlink_to(secret)
    scan = scan_requests()
    assert scan.valid == [] and "link.json" in scan.ignored
    assert folder_fingerprints(any_root.requests) == {}
