"""Good data stays usable after a refused re-drop, and the Data quality page shows every month, on live Airflow.

Months of this module's own (no other module touches them): green 2022-09 is ingested from demo
data, then a corrupt re-drop of it is refused (the ingest run ends failed); green 2022-10 is only
ever dropped corrupt. Yellow gets demo data for both months, so no branch waits for a drop.

* A report on 2022-09 made after the refusal succeeds with the same numbers as one made before it,
  and its gate log, render log, manifest and Report tab say which partition it used and why;
* a report on 2022-10 fails in its gate, naming the month: it was never ingested;
* ``/taxiflow/quality`` and ``/taxiflow/quality.json`` show both months with the figures of their
  ``_summary.json`` and the refusal's reason, to a viewer; to nobody unauthenticated.
"""

from __future__ import annotations

import json
from html import escape

import pytest

from taxiflow.config import INGEST_DAG_ID, REPORT_DAG_ID, SUCCESS_MARKER, DataPaths, Partition
from taxiflow.data import ingest, warehouse
from taxiflow.reports.outputs import read_manifest, read_report

from .test_report_views import get, run_path, trigger
from .test_ui_browser import ingested_month

pytestmark = pytest.mark.e2e

KEPT, NEVER = "2022-09", "2022-10"
CORRUPT = b"this is no parquet file " * 64
REQUEST = {"borough": "Brooklyn", "start_date": f"{KEPT}-01", "end_date": f"{KEPT}-20", "sources": ["green"]}


def task_log(stack, dag_id: str, run_id: str, task_id: str) -> str:
    logs = stack.home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task_id}"
    return "\n".join(p.read_text(errors="replace") for p in sorted(logs.rglob("*.log")))


def report(stack, run_id: str, conf: dict) -> dict:
    trigger(stack, run_id, conf)
    return stack.wait_for_run(REPORT_DAG_ID, run_id, timeout=240)


@pytest.fixture(scope="module")
def refused(airflow_stack):
    """2022-09 ingested, reported on, then re-dropped corrupt and refused; 2022-10 refused from the start."""
    from taxiflow.demo.trips import generate_month

    stack = airflow_stack
    paths = DataPaths(stack.data_dir)
    generate_month("yellow", NEVER, trips=500, paths=paths)
    never = paths.landing_dir(Partition("green", NEVER))
    never.mkdir(parents=True)
    (never / f"green_tripdata_{NEVER}.parquet").write_bytes(CORRUPT)
    (never / SUCCESS_MARKER).touch()
    stack.airflow("dags", "trigger", INGEST_DAG_ID, "-l", f"{NEVER}-01T00:00:00+00:00")

    first = ingested_month(stack, KEPT)
    assert first["state"] == "success", stack.task_states(INGEST_DAG_ID, first["dag_run_id"])
    summary = ingest.read_summary(Partition("green", KEPT), paths)
    before = report(stack, "quality-before", {**REQUEST, "name": "quality-before"})
    assert before["state"] == "success"

    (paths.landing_dir(Partition("green", KEPT)) / f"green_tripdata_{KEPT}.parquet").write_bytes(CORRUPT)
    stack.airflow("tasks", "clear", INGEST_DAG_ID, "-s", f"{KEPT}-01", "-e", f"{KEPT}-01", "-t", "_green", "-y")
    run_id = first["dag_run_id"]
    assert stack.wait_for_task(INGEST_DAG_ID, run_id, "process_green", {"failed", "success"}) == "failed"
    assert stack.wait_for_run(INGEST_DAG_ID, run_id, timeout=120)["state"] == "failed"
    status, body = stack.api("GET", f"/api/v2/dags/{INGEST_DAG_ID}/dagRuns?logical_date_gte={NEVER}-01T00:00:00Z"
                                    f"&logical_date_lte={NEVER}-01T00:00:00Z")
    assert status == 200 and body["dag_runs"], body
    never_run = stack.wait_for_run(INGEST_DAG_ID, body["dag_runs"][0]["dag_run_id"], timeout=240)
    return {"stack": stack, "paths": paths, "summary": summary, "run_id": run_id, "never_run": never_run}


def test_a_refused_redrop_keeps_the_month_usable_and_every_report_says_so(refused):
    stack, paths = refused["stack"], refused["paths"]
    log = task_log(stack, INGEST_DAG_ID, refused["run_id"], "process_green")
    assert "the new drop is refused: cannot read" in log and "are kept as they were" in log
    assert ingest.read_summary(Partition("green", KEPT), paths) == refused["summary"]  # the good partition

    after = report(stack, "quality-after", {**REQUEST, "name": "quality-after"})
    assert after["state"] == "success", stack.task_states(REPORT_DAG_ID, "quality-after")
    before_report, after_report = read_report("quality-before", paths), read_report("quality-after", paths)
    assert before_report is not None and after_report is not None
    assert after_report.csv == before_report.csv  # the same good partition, the same numbers
    con = warehouse.connect(paths)
    (expected,) = con.execute(
        "SELECT sum(trips) FROM hourly_borough WHERE source = 'green' AND month = ? AND borough = 'Brooklyn' "
        "AND pickup_date >= ? AND pickup_date < ?", [KEPT, REQUEST["start_date"], REQUEST["end_date"]]).fetchone()
    assert after_report.manifest["total_trips"] == expected > 0

    # The note: in the manifest, the gate's and the render's logs, and the Report tab.
    manifest = read_manifest("quality-after", paths)
    (note,) = manifest["ingest_notes"]
    ingested_at = refused["summary"]["written_at"].replace("T", " ").replace("+00:00", " UTC")
    assert note["source"] == "green" and note["month"] == KEPT
    assert note["note"].startswith(f"green {KEPT} as ingested at {ingested_at}; a re-drop at ")
    assert f"was refused: cannot read green_tripdata_{KEPT}.parquet as .parquet/.csv/.csv.gz" in note["note"]
    assert read_manifest("quality-before", paths)["ingest_notes"] == []
    assert f"Using a kept partition: {note['note']}" in task_log(stack, REPORT_DAG_ID, "quality-after",
                                                                 "wait_for_ingest")
    assert f"Note: {note['note']}" in task_log(stack, REPORT_DAG_ID, "quality-after", "render_report")
    status, page, _ = get(stack, run_path("quality-after"), token=stack.token("viewer"))
    assert status == 200 and "id=notes" in page.decode()
    assert escape(note["note"]) in page.decode()


def test_a_month_never_ingested_still_fails_its_report(refused):
    stack = refused["stack"]
    assert refused["never_run"]["state"] == "failed"
    failed = report(stack, "quality-never", {**REQUEST, "start_date": f"{NEVER}-01", "end_date": f"{NEVER}-08"})
    assert failed["state"] == "failed"
    assert stack.task_states(REPORT_DAG_ID, "quality-never")["wait_for_ingest"] == "failed"
    log = task_log(stack, REPORT_DAG_ID, "quality-never", "wait_for_ingest")
    assert f"The ingest this report needs failed: green {NEVER}" in log
    assert f"the drop was refused: cannot read green_tripdata_{NEVER}.parquet" in log
    status, page, _ = get(stack, run_path("quality-never"), token=stack.token("viewer"))
    assert status == 200 and "The ingest this report needs failed" in page.decode()
    assert "its drop was refused at " in page.decode() and "id=notes" not in page.decode()


def test_the_quality_page_and_its_json_show_every_month(refused):
    stack = refused["stack"]
    viewer = stack.token("viewer")
    for path in ("/taxiflow/quality", "/taxiflow/quality.json"):
        status, body, _ = get(stack, path)
        assert status == 401 and b"rows_read" not in body and KEPT.encode() not in body

    status, body, kind = get(stack, "/taxiflow/quality.json?source=green", token=viewer)
    assert status == 200 and kind.startswith("application/json")
    document = json.loads(body)
    assert document["rules"]["compared_months"] == 3
    months = {row["month"]: row for row in document["months"]}
    assert {row["source"] for row in document["months"]} == {"green"}
    kept, summary = months[KEPT], refused["summary"]
    assert kept["status"] == "kept" and kept["status_detail"].startswith(f"green {KEPT} as ingested at ")
    for field in ("rows_read", "rows_written", "rows_rejected", "rows_outside_month", "rows_unknown_zone"):
        assert kept[field] == summary[field], field
    assert kept["ingested_at"] == summary["written_at"]
    assert kept["unknown_zone_share"] == round(
        summary["rows_unknown_zone"] / (summary["rows_read"] - summary["rows_rejected"]), 6)
    assert kept["last_refusal"]["after_ingest"] is True
    assert kept["last_refusal"]["reason"].startswith(f"cannot read green_tripdata_{KEPT}.parquet")
    never = months[NEVER]
    assert never["status"] == "refused" and never["ingested"] is False and never["rows_written"] is None
    assert never["last_refusal"]["run_id"] == refused["never_run"]["dag_run_id"]

    status, body, kind = get(stack, "/taxiflow/quality?source=green", cookie=viewer)
    page = body.decode()
    assert status == 200 and kind.startswith("text/html")
    row = page[page.index(f"data-month='{KEPT}'"):]
    row = row[:row.index("</tr>")]
    assert f"<td data-field=rows_written>{summary['rows_written']:,}</td>" in row
    assert "re-drop refused, earlier ingest in use" in row and "cannot read green_tripdata_" in row
    assert f"data-month='{NEVER}'" in page and "refused, never ingested" in page
    status, body, _ = get(stack, "/taxiflow/quality.json?source=taxi", token=viewer)
    assert status == 400 and b"allowed values: yellow, green, fhv, fhvhv" in body
