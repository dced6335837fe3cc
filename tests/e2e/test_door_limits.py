"""Door hygiene on live Airflow: documented length limits refused at the door, docs behind auth."""

from __future__ import annotations

import json
import urllib.parse

import pytest
import requests

from taxiflow.config import REPORT_DAG_ID
from taxiflow.reports.run_ids import MAX_RUN_ID_LENGTH

pytestmark = pytest.mark.e2e

CONF = {"borough": "Queens", "start_date": "2024-01-01", "end_date": "2024-01-08"}


def test_api_v1_openapi_and_docs_need_the_same_credentials(airflow_stack):
    base = f"{airflow_stack.base_url}/api/v1"
    for path in ("/openapi.json", "/docs"):
        assert requests.get(base + path, timeout=30).status_code == 401, path
        assert requests.get(base + path, auth=("admin", "wrong"), timeout=30).status_code == 401, path
    response = requests.get(base + "/openapi.json", auth=("admin", "admin"), timeout=30)
    assert response.status_code == 200 and "/dags/{dag_id}/dagRuns" in response.json()["paths"]


def test_a_too_long_run_id_is_refused_by_both_rest_doors_naming_the_limit(airflow_stack):
    stack = airflow_stack
    long_id = "r" * (MAX_RUN_ID_LENGTH + 1)
    status, body = stack.api("POST", f"/api/v2/dags/{REPORT_DAG_ID}/dagRuns",
                             {"dag_run_id": long_id, "logical_date": None, "conf": CONF})
    assert status == 400 and f"at most {MAX_RUN_ID_LENGTH} characters" in body["detail"]
    response = requests.post(f"{stack.base_url}/api/v1/dags/{REPORT_DAG_ID}/dagRuns", auth=("admin", "admin"),
                             json={"dag_run_id": long_id, "conf": CONF}, timeout=30)
    assert response.status_code == 400 and f"at most {MAX_RUN_ID_LENGTH} characters" in response.json()["detail"]
    status, _ = stack.api("GET", f"/api/v2/dags/{REPORT_DAG_ID}/dagRuns/{urllib.parse.quote(long_id)}")
    assert status == 404, "no run may exist"


def test_a_too_long_report_name_is_refused_naming_the_limit(airflow_stack):
    response = requests.post(f"{airflow_stack.base_url}/api/v1/dags/{REPORT_DAG_ID}/dagRuns", auth=("admin", "admin"),
                             json={"conf": {**CONF, "name": "n" * 81}}, timeout=30)
    assert response.status_code == 400
    assert "1-80" in response.json()["detail"] and "name" in response.json()["detail"]


def test_the_cli_run_with_a_too_long_id_fails_in_its_first_task_naming_the_limit(airflow_stack):
    stack = airflow_stack
    run_id = "c" * (MAX_RUN_ID_LENGTH + 5)
    stack.airflow("dags", "trigger", REPORT_DAG_ID, "--conf", json.dumps(CONF), "-r", run_id)
    run = stack.wait_for_run(REPORT_DAG_ID, run_id, timeout=240)
    assert run["state"] == "failed"
    assert stack.task_states(REPORT_DAG_ID, run_id)["validate_request"] == "failed"
    status, body = stack.api("GET", f"/api/v2/dags/{REPORT_DAG_ID}/dagRuns/{urllib.parse.quote(run_id)}"
                                    "/taskInstances/validate_request/logs/1?full_content=true")
    assert status == 200 and f"at most {MAX_RUN_ID_LENGTH} characters" in json.dumps(body)
