"""A borough report asked for through the Airflow 3 web UI, in headless Chromium, on a live Airflow.

``tests/browser/trigger_report.mjs`` (playwright-core driving Debian's /usr/bin/chromium) logs in,
fills the trigger form, sees it refuse a garbage date and a path-like output name, triggers a Queens
report for 2024-01-08..2024-01-15, waits on the run page until the run succeeds, then opens the
run's **Report** tab (the plugin's view, in an iframe inside the UI): the chart image really loaded
(natural size = the PNG's), the numbers shown are the CSV's, and the CSV downloads; the
**Reports** page lists the run first with a loaded thumbnail; and the **Data quality** page shows
green's January with the figures of its ``_summary.json``. This side makes sure January 2024 is
ingested first, then checks what the user would: the run's conf through REST v2, the PNG and CSV
under the default name. Screenshots are kept in ``test-results/ui/`` (git-ignored).

Needs chromium and node >= 20: ``scripts/browser_deps.sh`` installs whatever is missing; the test
is skipped, saying why, only if they cannot be had.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import time
from datetime import date
from pathlib import Path
from urllib.parse import quote

import pytest
from PIL import Image

from taxiflow.config import (
    BOROUGHS,
    DEFAULT_REPORT_SOURCES,
    INGEST_DAG_ID,
    REPORT_DAG_ID,
    SUCCESS_MARKER,
    DataPaths,
    Partition,
)
from tests.support.live import PROJECT_DIR

pytestmark = pytest.mark.e2e

BROWSER_DIR = PROJECT_DIR / "tests" / "browser"
SCREENSHOTS = PROJECT_DIR / "test-results" / "ui"
REQUEST = {"borough": "Queens", "start_date": "2024-01-08", "end_date": "2024-01-15"}
INGESTED_MONTH = "2024-01"
DEMO_TRIPS = {"yellow": 6000, "green": 2000}


@pytest.fixture(scope="module")
def browser():
    """Chromium and the pinned playwright-core, installed by scripts/browser_deps.sh if missing."""
    try:
        result = subprocess.run(
            ["bash", str(PROJECT_DIR / "scripts" / "browser_deps.sh")],
            capture_output=True, text=True, timeout=900,
        )
    except FileNotFoundError as err:
        pytest.skip(f"cannot run scripts/browser_deps.sh: {err}")
    if result.returncode != 0:
        pytest.skip(f"no headless Chromium/node for the UI test: {result.stderr.strip()}")
    return BROWSER_DIR / "trigger_report.mjs"


def ingested_month(stack, month: str, timeout: float = 300) -> dict:
    """The finished ingest run for ``month``: reuse one or make it from demo data.

    January 2024 is also test_pipeline's month (real green files): a module that only needs *some*
    ingested month should take a month of its own, or the pipeline finds January already ingested
    from demo data when the suite runs it later.
    """
    logical = f"{month}-01T00:00:00Z"
    query = f"/api/v2/dags/{INGEST_DAG_ID}/dagRuns?logical_date_gte={logical}&logical_date_lte={logical}"
    status, body = stack.api("GET", query)
    assert status == 200, body
    if not body["dag_runs"]:
        from taxiflow.demo.trips import generate_month

        paths = DataPaths(stack.data_dir)
        for source in DEFAULT_REPORT_SOURCES:
            if not (paths.landing_dir(Partition(source, month)) / SUCCESS_MARKER).exists():
                generate_month(source, month, trips=DEMO_TRIPS[source], paths=paths)
        stack.airflow("dags", "trigger", INGEST_DAG_ID, "-l", f"{month}-01T00:00:00+00:00")
        deadline = time.monotonic() + 60
        while not body["dag_runs"] and time.monotonic() < deadline:
            time.sleep(1)
            status, body = stack.api("GET", query)
    return stack.wait_for_run(INGEST_DAG_ID, body["dag_runs"][0]["dag_run_id"], timeout=timeout)


def ingested_january(stack, timeout: float = 300) -> dict:
    """The finished ingest run for January 2024: reuse one (test_pipeline makes it) or make it."""
    return ingested_month(stack, INGESTED_MONTH, timeout)


def test_report_triggered_from_the_web_ui(browser, airflow_stack):
    stack = airflow_stack
    ingest = ingested_january(stack)
    assert ingest["state"] == "success", stack.task_states(INGEST_DAG_ID, ingest["dag_run_id"])

    status, body = stack.api("GET", f"/api/v2/dags/{REPORT_DAG_ID}/dagRuns?limit=100")
    runs_before = {run["dag_run_id"] for run in body["dag_runs"]}

    shots = SCREENSHOTS  # kept after the run: the test's artefacts (git-ignored)
    shutil.rmtree(shots, ignore_errors=True)
    proc = subprocess.run(
        ["node", str(browser), "--base-url", stack.base_url, "--user", "admin", "--screenshots", str(shots),
         "--report-tab",
         "--borough", REQUEST["borough"], "--start", REQUEST["start_date"], "--end", REQUEST["end_date"]],
        cwd=BROWSER_DIR,
        env={**os.environ, "AIRFLOW_UI_PASSWORD": stack.users["admin"]},
        capture_output=True, text=True, timeout=420,
    )
    assert proc.stdout.strip(), f"trigger_report.mjs printed nothing:\n{proc.stderr[-4000:]}"
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    assert proc.returncode == 0 and not seen.get("error"), f"{seen}\n{proc.stderr[-4000:]}"

    # What the form looked like and what it refused.
    assert seen["opens_empty"] == {"borough": "", "start": "", "end": "", "trigger_disabled": True}
    assert seen["borough_is_dropdown"] and seen["borough_options"] == list(BOROUGHS)
    assert seen["borough_chosen"] == REQUEST["borough"]
    assert seen["date_input_types"] == ["date", "date"]
    assert seen["refused"]["typed_letters_kept_value"] == REQUEST["end_date"]
    refused_date = seen["refused"]["impossible_date"]
    assert refused_date == {"value": "", "message": "This field is required", "trigger_disabled": True}
    assert seen["refused"]["bad_name"]["status"] == 400
    assert "Invalid input for param name: '../../etc/passwd'" in seen["refused"]["bad_name"]["message"]
    assert seen["trigger_status"] == 200 and seen["state"] == "success"

    # Exactly one run was created (the refused attempt made none), with the form's conf.
    status, body = stack.api("GET", f"/api/v2/dags/{REPORT_DAG_ID}/dagRuns?limit=100")
    assert {run["dag_run_id"] for run in body["dag_runs"]} - runs_before == {seen["run_id"]}
    status, run = stack.api("GET", f"/api/v2/dags/{REPORT_DAG_ID}/dagRuns/{quote(seen['run_id'], safe='')}")
    assert status == 200 and run["state"] == "success" and run["triggered_by"] == "ui"
    assert run["conf"] == {**REQUEST, "sources": list(DEFAULT_REPORT_SOURCES), "name": None}

    # The outputs, under the default name <borough>_<start>_<end>.
    from taxiflow.reports.request import default_name

    start, end = date.fromisoformat(REQUEST["start_date"]), date.fromisoformat(REQUEST["end_date"])
    stem = default_name(REQUEST["borough"], start, end)
    assert stem == "queens_2024-01-08_2024-01-15_yellow-green"
    from taxiflow.config import DataPaths
    from taxiflow.reports.outputs import read_report

    published = read_report(stem, DataPaths(stack.data_dir))  # through its manifest: one version's PNG and CSV
    assert published is not None
    with Image.open(io.BytesIO(published.png)) as image:
        image.verify()
        assert image.format == "PNG"
    rows = published.csv.decode().splitlines()
    assert rows[0] == "hour_of_day,day_of_week,num_trips" and len(rows) == 1 + 24 * 7
    assert sum(int(row.rsplit(",", 1)[1]) for row in rows[1:]) > 0

    for name in ("form", "form-refuses-bad-date", "form-refuses-bad-name", "success", "report-tab", "reports-page",
                 "quality-page"):
        with Image.open(shots / f"{name}.png") as image:
            assert image.size == (1400, 1400)

    # The run's Report tab, inside the UI: the chart really loaded, and its numbers are the CSV's.
    tab = seen["report_tab"]
    assert tab["url"].endswith("/plugin/report") and tab["state"] == "success"
    with Image.open(io.BytesIO(published.png)) as image:
        assert (tab["natural_width"], tab["natural_height"]) == image.size
    csv_cells = [(int(h), d, int(n)) for h, d, n in (row.split(",") for row in rows[1:])]
    assert sorted(map(tuple, tab["cells"])) == sorted(csv_cells)
    assert int(tab["total"].replace(",", "")) == sum(n for _, _, n in csv_cells)
    for text in ("Queens", "yellow, green", "trigger form (UI) by admin"):
        assert text in tab["request"]
    assert tab["csv_download"]["suggested"] == f"{stem}.csv"
    assert Path(tab["csv_download"]["path"]).read_bytes() == published.csv

    # The Reports page lists the run first, with a loaded thumbnail.
    listed = seen["reports_page"]
    assert listed["first_run_id"] == seen["run_id"] and listed["natural_width"] > 0
    assert "Queens" in listed["text"] and "success" in listed["text"]

    # The Data quality page, beside it in the navigation: green's January as its _summary.json says.
    from taxiflow.data.ingest import read_summary

    summary = read_summary(Partition("green", INGESTED_MONTH), DataPaths(stack.data_dir))
    quality = seen["quality_page"]
    assert quality["rows_read"] == f"{summary['rows_read']:,}"
    assert quality["rows_written"] == f"{summary['rows_written']:,}"
    assert quality["ingested_at"] == summary["written_at"].replace("T", " ").replace("+00:00", " UTC")
    assert "ingested" in quality["text"] and quality["json_link"] == "/taxiflow/quality.json"
