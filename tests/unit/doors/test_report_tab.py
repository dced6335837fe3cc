"""The Report tab (taxiflow.doors.report_views): who asked, which families a report counts, its data notes."""

from __future__ import annotations

from datetime import UTC, datetime

from taxiflow.config import Partition
from taxiflow.data.refusals import KeptPartition, Refusal
from taxiflow.doors.report_views.pages import run_page
from taxiflow.doors.report_views.runs import ReportRun
from taxiflow.doors.request_files import request_run_id
from taxiflow.reports.ingest_status import IngestStatus
from taxiflow.reports.request import ReportRequest

CONF = {"borough": "Brooklyn", "start_date": "2023-12-01", "end_date": "2023-12-10", "sources": ["green"]}
KEPT = KeptPartition(Partition("green", "2023-12"), datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC),
                     Refusal("green", "2023-12", datetime(2024, 1, 9, 10, 0, tzinfo=UTC), "cannot read <f>.parquet"))
URLS = {"csv": "c", "png": "p"}


def run(state: str, ingest: list[IngestStatus]) -> ReportRun:
    return ReportRun("borough_report", "r1", state, None, None, None, CONF, "rest_api", "admin",
                     request=ReportRequest.from_conf(CONF), ingest=ingest)


def test_a_waiting_run_names_the_kept_partition_its_gate_uses():
    kept = IngestStatus("2023-12", "green", "kept", "upstream_failed", True, "failed", KEPT, KEPT.refusal)
    page = run_page(run("running", [kept]), None, URLS)
    assert "id=notes" in page
    assert ("green 2023-12 as ingested at 2024-01-02 03:04:05 UTC; a re-drop at 2024-01-09 10:00:00 UTC was "
            "refused: cannot read &lt;f&gt;.parquet") in page


def test_a_rendered_report_shows_its_manifests_notes_and_a_plain_one_none():
    assert "id=notes" not in run_page(run("success", []), None, URLS, notes=[])
    page = run_page(run("success", []), None, URLS, notes=[KEPT.note])
    assert "id=notes" in page and "Data notes:" in page and "cannot read &lt;f&gt;.parquet" in page


def test_the_report_tab_says_which_families_the_report_counts():
    request = ReportRequest.from_conf({**CONF, "sources": ["yellow", "fhvhv"]})
    report_run = ReportRun("borough_report", "r1", "running", None, None, None, request.to_conf(), "cli", None,
                           request=request)
    page = run_page(report_run, None, {})
    assert "<dt>Sources</dt><dd>yellow, fhvhv: counts yellow taxi + high-volume for-hire vehicle (not counted: " \
           "green taxi, for-hire vehicle)</dd>" in page


def test_the_report_tab_names_the_request_file_a_run_came_from_and_only_that():
    from_file = request_run_id("jan__staten", "ab" * 32)
    assert ReportRun("borough_report", from_file, "success", None, None, None, CONF, "operator",
                     None).trigger_source == "request file requests/jan__staten.json"
    by_hand = ReportRun("borough_report", from_file, "failed", None, None, None, CONF, "rest_api", "admin")
    assert by_hand.trigger_source == "REST API by admin"  # the claim check refuses such a run; the tab says who
    assert run("running", []).trigger_source == "REST API by admin"
