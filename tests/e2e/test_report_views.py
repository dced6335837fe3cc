"""The report views on live Airflow: who may see a report, and what a run without a chart says.

The browser test (test_ui_browser.py) opens the Report tab inside the UI; this one calls the
plugin's routes the way a browser or a script would: with the UI's ``_token`` cookie, a bearer
token, or nothing.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from urllib.parse import quote

import pytest

from taxiflow.config import REPORT_DAG_ID, DataPaths
from taxiflow.reports.outputs import published_report, read_numbers
from taxiflow.reports.request import ReportRequest

from .test_ui_browser import ingested_january

pytestmark = pytest.mark.e2e

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def get(stack, path: str, token: str | None = None, cookie: str | None = None) -> tuple[int, bytes, str]:
    headers = {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if cookie:
        headers["Cookie"] = f"_token={cookie}"
    request = urllib.request.Request(f"{stack.base_url}{path}", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=60) as resp:
            return resp.status, resp.read(), resp.headers.get("Content-Type", "")
    except urllib.error.HTTPError as err:
        return err.code, err.read(), err.headers.get("Content-Type", "")


def trigger(stack, run_id: str, conf: dict) -> None:
    status, body = stack.api("POST", f"/api/v2/dags/{REPORT_DAG_ID}/dagRuns",
                             {"logical_date": None, "dag_run_id": run_id, "conf": conf})
    assert status == 200, body


def run_path(run_id: str, dag_id: str = REPORT_DAG_ID) -> str:
    return f"/taxiflow/runs/{dag_id}/{quote(run_id, safe='')}"


def wait_for_text(stack, path: str, text: str, token: str, timeout: float = 120) -> str:
    deadline = time.monotonic() + timeout
    page = ""
    while time.monotonic() < deadline:
        status, body, _ = get(stack, path, token=token)
        page = body.decode()
        if status == 200 and text in page:
            return page
        time.sleep(1)
    raise AssertionError(f"{text!r} not on {path} within {timeout}s:\n{page[-2000:]}")


def test_report_views_need_access_and_serve_only_the_runs_own_files(airflow_stack):
    stack = airflow_stack
    assert ingested_january(stack)["state"] == "success"
    conf = {"borough": "Brooklyn", "start_date": "2024-01-01", "end_date": "2024-01-08", "name": "views-brooklyn"}
    trigger(stack, "views-ok", conf)
    assert stack.wait_for_run(REPORT_DAG_ID, "views-ok")["state"] == "success"
    admin, viewer = stack.token("admin"), stack.token("viewer")
    base = run_path("views-ok")
    files = (base, f"{base}/chart.png", f"{base}/thumb.png", f"{base}/report.csv", "/taxiflow/reports")

    # Nobody unauthenticated sees anything: not the page, not the image, not the numbers.
    for path in files:
        status, body, _ = get(stack, path)
        assert status == 401 and PNG_MAGIC not in body and b"num_trips" not in body, (path, status, body[:200])
        status, body, _ = get(stack, path, cookie="not-a-token")
        assert status in (401, 403) and PNG_MAGIC not in body, (path, status)

    # A viewer may look, through the UI's cookie as well as a bearer token.
    status, page, kind = get(stack, base, cookie=viewer)
    assert status == 200 and kind.startswith("text/html")
    published = published_report(ReportRequest.from_conf(conf), DataPaths(stack.data_dir))
    assert published is not None
    total = read_numbers(published).total
    assert f'<span id=total>{total:,}</span>' in page.decode() and total > 0
    status, png, kind = get(stack, f"{base}/chart.png", token=viewer)
    assert status == 200 and kind == "image/png" and png == published.png
    status, thumb, _ = get(stack, f"{base}/thumb.png", cookie=viewer)
    assert status == 200 and thumb.startswith(PNG_MAGIC) and len(thumb) < len(png)
    status, csv, _ = get(stack, f"{base}/report.csv", token=viewer)
    assert status == 200 and csv == published.csv
    status, listing, _ = get(stack, "/taxiflow/reports?borough=Brooklyn", cookie=viewer)
    assert status == 200 and 'data-run-id=\'views-ok\'' in listing.decode()
    status, listing, _ = get(stack, "/taxiflow/reports?borough=Queens", token=admin)
    assert status == 200 and "views-ok" not in listing.decode()
    status, body, _ = get(stack, "/taxiflow/reports?borough=Narnia", token=admin)
    assert status == 400 and b"allowed values" in body

    # File routes serve nothing outside the report's own outputs.
    for path in (f"{base}/../../../etc/passwd", f"{base}/..%2F..%2Fetc%2Fpasswd",
                 run_path("..%2F..%2Fetc%2Fpasswd") + "/chart.png", f"{base}/views-brooklyn.csv",
                 run_path("views-ok", dag_id="ingest_taxi_trips") + "/chart.png",
                 run_path("no-such-run") + "/chart.png"):
        status, body, _ = get(stack, path, token=admin)
        assert status == 404 and PNG_MAGIC not in body and b"root:" not in body, (path, status)
    status, body, _ = get(stack, run_path("views-ok", dag_id="ingest_taxi_trips"), token=admin)
    assert status == 404 and b"only <code>borough_report</code> runs draw charts" in body


def test_report_tab_says_why_there_is_no_chart(airflow_stack):
    stack = airflow_stack
    admin = stack.token("admin")
    # An end date before the start passes the form's schema and fails validate_request.
    trigger(stack, "views-invalid", {"borough": "Bronx", "start_date": "2024-01-10", "end_date": "2024-01-03"})
    # A month nobody ingested: the run waits in its gate.
    trigger(stack, "views-waiting", {"borough": "Bronx", "start_date": "2016-05-01", "end_date": "2016-05-08",
                                     "sources": ["green"]})
    page = wait_for_text(stack, run_path("views-invalid"), "The request is invalid", admin)
    assert "end_date: &#x27;2024-01-03&#x27; is not after start_date &#x27;2024-01-10&#x27;" in page
    assert "REST API by admin" in page and "id=chart" not in page
    page = wait_for_text(stack, run_path("views-waiting"), "Waiting for the ingest of 1 month/source pair", admin)
    assert "green 2016-05: no ingest_taxi_trips run for 2016-05 yet" in page
    status, _, _ = get(stack, run_path("views-waiting") + "/chart.png", token=admin)
    assert status == 404


def test_a_request_file_becomes_a_chart_and_its_tab_names_the_file(airflow_stack):
    stack = airflow_stack
    assert ingested_january(stack)["state"] == "success"
    requests_dir = stack.data_dir / "requests"
    requests_dir.mkdir(exist_ok=True)
    content = '{"borough": "Manhattan", "start_date": "2024-01-02", "end_date": "2024-01-09"}'
    (requests_dir / "views-from-file.json").write_text(content)
    request = ReportRequest.from_conf({**json.loads(content), "name": "views-from-file"})
    deadline = time.monotonic() + 120
    while published_report(request, DataPaths(stack.data_dir)) is None and time.monotonic() < deadline:
        time.sleep(0.5)
    published = published_report(request, DataPaths(stack.data_dir))
    assert published is not None, stack.tail_logs("triggerer", lines=20)
    assert (requests_dir / "views-from-file.json").read_text() == content  # read, never changed

    _, body = stack.api("GET", f"/api/v2/dags/{REPORT_DAG_ID}/dagRuns?limit=200")
    run_id = next(r["dag_run_id"] for r in body["dag_runs"] if r["dag_run_id"].startswith("request__views-from-file__"))
    page = wait_for_text(stack, run_path(run_id), "id=chart", stack.token("admin"))
    assert "request file requests/views-from-file.json" in page
    assert f'<span id=total>{read_numbers(published).total:,}</span>' in page
