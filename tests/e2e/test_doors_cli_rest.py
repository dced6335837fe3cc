"""Asking for a borough report through the CLI and REST v2 doors of a live Airflow, good input and bad.

A good request creates a run carrying exactly the conf that was sent. A bad one (unknown borough,
impossible or non-date dates, SQL in the borough, a path as the output name) is refused before any
run exists, with an error naming the param and what it allows. A reversed date range passes JSON
schema, so its run is created and fails in ``validate_request`` naming both dates, writing nothing.

Valid requests here ask for March 2019, which no test ingests, so their runs would only wait on the
ingest gate: once a test has seen what it needs, it marks its run failed through REST (what an
operator does to stop a run), keeping the shared deployment free for the other modules.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

from taxiflow.config import BOROUGHS, REPORT_DAG_ID
from taxiflow.reports.params import DATE_PATTERN, NAME_PATTERN

pytestmark = pytest.mark.e2e

RUNS = f"/api/v2/dags/{REPORT_DAG_ID}/dagRuns"
GOOD = {"borough": "Bronx", "start_date": "2019-03-04", "end_date": "2019-03-11"}

# Each bad request: (conf, the param Airflow must name, text of what that param allows).
BOROUGH_LIST = repr(list(BOROUGHS))  # how JSON schema's enum error lists them
DATE_RULE = "'format': 'date'"
REFUSED = {
    "unknown_borough": ({**GOOD, "borough": "Atlantis"}, "borough", BOROUGH_LIST),
    "impossible_date": ({**GOOD, "start_date": "2024-13-45"}, "start_date", DATE_RULE),
    "word_for_a_date": ({**GOOD, "end_date": "yesterday"}, "end_date", DATE_RULE),
    "sql_in_borough": ({**GOOD, "borough": "Manhattan'; DROP TABLE dag_run;--"}, "borough", BOROUGH_LIST),
    "path_as_name": ({**GOOD, "name": "../../etc/passwd"}, "name", NAME_PATTERN),
}


# --- helpers ----------------------------------------------------------------------------------

def report_runs(stack) -> tuple[int, set[str]]:
    """How many borough_report runs exist, and the ids of the newest 100."""
    status, body = stack.api("GET", f"{RUNS}?limit=100&order_by=-run_after")
    assert status == 200, body
    return body["total_entries"], {run["dag_run_id"] for run in body["dag_runs"]}


def post_json(url: str, body: object, token: str | None = None) -> tuple[int, dict]:
    """POST JSON the way curl would; returns (status, decoded body) for errors too."""
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=60) as resp:
            return resp.status, json.load(resp)
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"null")


def run_path(run_id: str) -> str:
    return f"{RUNS}/{urllib.parse.quote(run_id, safe='')}"


def stop_run(stack, run_id: str) -> None:
    """Mark a run failed, as an operator stops a run that would only wait."""
    status, body = stack.api("PATCH", run_path(run_id), {"state": "failed"})
    assert status == 200 and body["state"] == "failed", body


def task_log(stack, run_id: str, task_id: str) -> str:
    folder = stack.home / "logs" / f"dag_id={REPORT_DAG_ID}" / f"run_id={run_id}" / f"task_id={task_id}"
    return "\n".join(p.read_text(errors="replace") for p in sorted(folder.rglob("*.log")))


def assert_names_param_and_allowed(message: str, conf: dict, field: str, allowed: str) -> None:
    assert f"Invalid input for param {field}: {conf[field]!r}" in message, message
    assert allowed in message, message


# --- CLI: airflow dags trigger --conf ---------------------------------------------------------

def test_cli_trigger_creates_a_run_with_that_conf(airflow_stack):
    stack = airflow_stack
    conf = {**GOOD, "name": "cli_bronx_march"}
    result = stack.airflow(
        "dags", "trigger", REPORT_DAG_ID, "--conf", json.dumps(conf), "-r", "cli_valid", check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "cli_valid" in result.stdout

    status, run = stack.api("GET", run_path("cli_valid"))
    assert status == 200, run
    assert run["conf"] == conf
    assert run["run_type"] == "manual" and run["triggered_by"] == "cli"
    assert run["logical_date"] is None
    assert run["state"] in ("queued", "running")
    stop_run(stack, "cli_valid")


@pytest.fixture(scope="module")
def cli_refusals(airflow_stack):
    """Every bad conf through `airflow dags trigger`, a few at a time, between two run counts."""
    stack = airflow_stack
    before = report_runs(stack)

    def trigger(case: str):
        conf = REFUSED[case][0]
        return stack.airflow("dags", "trigger", REPORT_DAG_ID, "--conf", json.dumps(conf), check=False)

    with ThreadPoolExecutor(max_workers=3) as pool:  # each CLI start costs ~10 s; the machine has 2 cores
        results = dict(zip(REFUSED, pool.map(trigger, REFUSED), strict=True))
    return {"results": results, "before": before, "after": report_runs(stack)}


@pytest.mark.parametrize("case", list(REFUSED))
def test_cli_refuses_bad_conf_naming_the_param_and_creates_no_run(cli_refusals, case):
    conf, field, allowed = REFUSED[case]
    result = cli_refusals["results"][case]
    assert result.returncode != 0
    shown = result.stdout + result.stderr  # what the user sees in the terminal
    assert "ParamValidationError" in shown
    assert_names_param_and_allowed(shown, conf, field, allowed)
    if field in ("start_date", "end_date"):
        assert DATE_PATTERN in shown  # the schema Airflow prints says what a date looks like
    assert cli_refusals["after"] == cli_refusals["before"], "a refused conf must not create a run"


def test_cli_reversed_range_fails_in_validate_request_naming_both_dates(airflow_stack):
    stack = airflow_stack
    conf = {"borough": "Queens", "start_date": "2024-01-15", "end_date": "2024-01-08", "name": "cli_reversed"}
    stack.airflow("dags", "trigger", REPORT_DAG_ID, "--conf", json.dumps(conf), "-r", "cli_reversed")

    run = stack.wait_for_run(REPORT_DAG_ID, "cli_reversed", timeout=150)
    assert run["state"] == "failed"
    states = stack.task_states(REPORT_DAG_ID, "cli_reversed")
    assert states["validate_request"] == "failed"
    assert states["wait_for_ingest"] == states["render_report"] == "upstream_failed"
    log = task_log(stack, "cli_reversed", "validate_request")
    assert "end_date: '2024-01-08' is not after start_date '2024-01-15'" in log
    outputs = stack.data_dir / "outputs"
    assert not (outputs / "cli_reversed").exists()


# --- REST v2: POST /auth/token, POST/GET /api/v2/dags/borough_report/dagRuns -------------------

def test_rest_token_and_wrong_credentials(airflow_stack):
    url = f"{airflow_stack.base_url}/auth/token"
    status, body = post_json(url, {"username": "admin", "password": "admin"})
    assert status == 201 and body["access_token"]
    status, body = post_json(url, {"username": "admin", "password": "not-the-password"})
    assert status == 401, body
    assert body["detail"] == "Invalid credentials"


def test_rest_trigger_creates_the_run_and_its_state_can_be_polled(airflow_stack):
    stack = airflow_stack
    token = stack.token("admin")
    conf = {**GOOD, "borough": "Brooklyn", "name": "rest_brooklyn_march"}
    status, run = post_json(f"{stack.base_url}{RUNS}", {"logical_date": None, "conf": conf}, token)
    assert status == 200, run
    assert run["conf"] == conf and run["logical_date"] is None
    assert run["state"] == "queued" and run["triggered_by"] == "rest_api"

    # Poll like a client would: the run starts and validate_request accepts the conf.
    seen, deadline = [], time.monotonic() + 120
    while time.monotonic() < deadline:
        status, polled = stack.api("GET", run_path(run["dag_run_id"]), token=token)
        assert status == 200, polled
        seen.append(polled["state"])
        if stack.task_states(REPORT_DAG_ID, run["dag_run_id"]).get("validate_request") == "success":
            break
        time.sleep(2)
    assert polled["state"] == "running", seen
    assert polled["conf"] == conf
    stop_run(stack, run["dag_run_id"])


@pytest.mark.parametrize("case", list(REFUSED))
def test_rest_refuses_bad_conf_with_400_naming_the_param(airflow_stack, case):
    stack = airflow_stack
    conf, field, allowed = REFUSED[case]
    before = report_runs(stack)
    status, body = post_json(f"{stack.base_url}{RUNS}", {"logical_date": None, "conf": conf}, stack.token())
    assert status == 400, body
    assert_names_param_and_allowed(body["detail"], conf, field, allowed)
    assert report_runs(stack) == before


def test_rest_viewer_may_not_trigger_and_anonymous_is_not_let_in(airflow_stack):
    stack = airflow_stack
    before = report_runs(stack)
    body = {"logical_date": None, "conf": GOOD}
    status, answer = post_json(f"{stack.base_url}{RUNS}", body, stack.token("viewer"))
    assert status == 403, answer
    status, answer = post_json(f"{stack.base_url}{RUNS}", body)
    assert status == 401, answer
    status, _listed = stack.api("GET", f"{RUNS}?limit=1", token=stack.token("viewer"))
    assert status == 200  # the viewer can still read runs
    assert report_runs(stack) == before
