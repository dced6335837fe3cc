"""Airflow 2's /api/v1 on live Airflow 3, called the way Airflow 2 users call it.

``requests`` stands in for curl (``curl -u user:pass -H 'Content-Type: application/json' -d ...``),
and the official Airflow 2 Python client (apache-airflow-client 2.10) is used as its docs show.
``borough_report`` is paused for this module: Airflow 2 created runs of paused DAGs and left them
queued, which is what the tests check, and it keeps the shared machine quiet. The module deletes
the runs it created and restores the pause state when it ends.
"""

from __future__ import annotations

import time
import urllib.parse

import pytest
import requests

from taxiflow.config import REPORT_DAG_ID

pytestmark = pytest.mark.e2e

GOOD_CONF = {"borough": "Brooklyn", "start_date": "2019-03-01", "end_date": "2019-03-15", "sources": ["yellow"]}
JSON = {"Content-Type": "application/json"}
ADMIN = ("admin", "admin")
VIEWER = ("viewer", "viewer")


class V1:
    """The /api/v1 of one stack, plus the run ids this module created (deleted at the end)."""

    def __init__(self, stack):
        self.stack = stack
        self.base = f"{stack.base_url}/api/v1"
        self.created: list[str] = []

    def runs_url(self, dag_id: str = REPORT_DAG_ID) -> str:
        return f"{self.base}/dags/{dag_id}/dagRuns"

    def run_url(self, run_id: str, dag_id: str = REPORT_DAG_ID) -> str:
        return f"{self.runs_url(dag_id)}/{urllib.parse.quote(run_id, safe='')}"

    def trigger(self, body: object, auth=ADMIN, **kwargs) -> requests.Response:
        response = requests.post(self.runs_url(kwargs.pop("dag_id", REPORT_DAG_ID)), json=body, auth=auth,
                                 timeout=60, **kwargs)
        if response.status_code == 200:
            self.created.append(response.json()["dag_run_id"])
        return response

    def v2_run(self, run_id: str) -> tuple[int, dict]:
        return self.stack.api("GET", f"/api/v2/dags/{REPORT_DAG_ID}/dagRuns/{urllib.parse.quote(run_id, safe='')}")

    def v2_run_count(self) -> int:
        status, body = self.stack.api("GET", f"/api/v2/dags/{REPORT_DAG_ID}/dagRuns?limit=1")
        assert status == 200, body
        return body["total_entries"]


def api_committed(stack, method: str, path: str, body: object | None = None, token: str | None = None):
    """One /api/v2 call that must take effect: retried while the api-server answers 5xx.

    On SQLite the api-server can lose a write race to the scheduler ("database is locked", a 500).
    Unchecked, a lost pause left ``borough_report`` running this module's runs, and teardown then
    met a running run it may not delete (409 for ``v1-dated``, the run with the earliest run_after).
    """
    for _ in range(10):
        status, answer = stack.api(method, path, body, token=token)
        if status < 500:
            return status, answer
        time.sleep(2)
    return status, answer


def set_paused(stack, paused: bool, token: str | None = None) -> None:
    """Pause or unpause ``borough_report`` and check that the scheduler will see it so."""
    path = f"/api/v2/dags/{REPORT_DAG_ID}"
    status, answer = api_committed(stack, "PATCH", path, {"is_paused": paused}, token=token)
    assert status == 200, answer
    status, dag = stack.api("GET", path, token=token)
    assert (status, dag["is_paused"]) == (200, paused), dag


@pytest.fixture(scope="module")
def v1(airflow_stack):
    stack = airflow_stack
    status, dag = stack.api("GET", f"/api/v2/dags/{REPORT_DAG_ID}")
    assert status == 200, dag
    was_paused = dag["is_paused"]
    set_paused(stack, True)
    api = V1(stack)
    try:
        yield api
    finally:
        token = stack.token()
        for run_id in api.created:
            path = f"/api/v2/dags/{REPORT_DAG_ID}/dagRuns/{urllib.parse.quote(run_id, safe='')}"
            status, answer = api_committed(stack, "DELETE", path, token=token)
            assert status == 204, f"could not delete run {run_id}: {status} {answer}"
        set_paused(stack, was_paused, token=token)


def assert_problem(response: requests.Response, status: int, *in_detail: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert set(body) == {"detail", "status", "title", "type"}
    assert body["status"] == status
    assert body["type"].startswith("https://airflow.apache.org/docs/apache-airflow/2.10.5/stable-rest-api-ref.html#section/Errors/")
    for text in in_detail:
        assert text in (body["detail"] or ""), body
    return body


def test_health_needs_no_auth(v1):
    response = requests.get(f"{v1.base}/health", timeout=30)
    assert response.status_code == 200
    health = response.json()
    assert health["metadatabase"] == {"status": "healthy"}
    assert health["scheduler"]["status"] == "healthy"
    assert health["scheduler"]["latest_scheduler_heartbeat"]


def test_trigger_with_basic_auth_then_poll(v1):
    response = v1.trigger({"conf": GOOD_CONF, "note": "from an Airflow 2 script"})
    assert response.status_code == 200, response.text
    run = response.json()
    assert set(run) == {
        "dag_run_id", "dag_id", "logical_date", "execution_date", "data_interval_start", "data_interval_end",
        "last_scheduling_decision", "state", "conf", "start_date", "end_date", "external_trigger", "run_type", "note",
    }
    assert run["dag_id"] == REPORT_DAG_ID
    assert run["conf"] == GOOD_CONF
    assert (run["run_type"], run["external_trigger"], run["state"]) == ("manual", True, "queued")
    assert run["logical_date"] is None and run["execution_date"] is None
    assert run["note"] == "from an Airflow 2 script"

    status, in_v2 = v1.v2_run(run["dag_run_id"])
    assert status == 200, in_v2
    assert in_v2["conf"] == GOOD_CONF
    assert (in_v2["triggered_by"], in_v2["triggering_user_name"]) == ("rest_api", "admin")
    quoted = urllib.parse.quote(run["dag_run_id"], safe="")
    status, audit = v1.stack.api("GET", f"/api/v2/eventLogs?event=trigger_dag_run&run_id={quoted}")
    assert status == 200 and audit["total_entries"] == 1, audit
    assert audit["event_logs"][0]["owner"] == "admin" and '"api_v1"' in audit["event_logs"][0]["extra"]

    polled = requests.get(v1.run_url(run["dag_run_id"]), auth=ADMIN, timeout=30)
    assert polled.status_code == 200
    assert polled.json()["dag_run_id"] == run["dag_run_id"]
    assert polled.json()["state"] == "queued"  # the DAG is paused: created anyway, waits (Airflow 2)


def test_curl_style_empty_body_and_airflow2_keys(v1):
    # curl -u admin:admin -H 'Content-Type: application/json' -X POST .../dagRuns -d '{}'
    # borough_report's borough and dates are required: an empty body is refused, it never defaults.
    before = v1.v2_run_count()
    response = requests.post(v1.runs_url(), data="{}", headers=JSON, auth=ADMIN, timeout=60)
    assert_problem(response, 400, "Invalid input for param borough", "no value given")
    assert v1.v2_run_count() == before

    dated = v1.trigger({"conf": GOOD_CONF, "execution_date": "2019-06-01T00:00:00+00:00", "dag_run_id": "v1-dated"})
    assert dated.status_code == 200, dated.text
    assert dated.json()["dag_run_id"] == "v1-dated"
    assert dated.json()["logical_date"] == dated.json()["execution_date"] == "2019-06-01T00:00:00+00:00"

    again = v1.trigger({"conf": GOOD_CONF, "execution_date": "2019-06-01T00:00:00Z"})
    assert_problem(again, 409, "logical date")


@pytest.mark.parametrize(
    ("conf", "field"),
    [
        ({"borough": "Atlantis"}, "borough"),
        ({"borough": "Manhattan'; DROP TABLE dag_run;--"}, "borough"),
        ({"start_date": "2024-02-30"}, "start_date"),
        ({"end_date": "01/02/2024"}, "end_date"),
    ],
    ids=["unknown-borough", "sql-injection", "impossible-date", "us-date"],
)
def test_invalid_conf_is_400_naming_the_param_and_creates_no_run(v1, conf, field):
    before = v1.v2_run_count()
    response = v1.trigger({"conf": {**GOOD_CONF, **conf}})
    body = assert_problem(response, 400, f"Invalid input for param {field}:", repr(conf[field]))
    enum_error = "is not one of ['Manhattan', 'Brooklyn', 'Queens', 'Bronx', 'Staten Island']"
    assert "Allowed:" in body["detail"] or enum_error in body["detail"]
    assert v1.v2_run_count() == before


def test_reversed_range_is_400_naming_both_dates_and_creates_no_run(v1):
    """JSON schema cannot compare two params; this door refuses the range before a run exists."""
    before = v1.v2_run_count()
    conf = {**GOOD_CONF, "start_date": "2019-03-15", "end_date": "2019-03-01"}
    body = assert_problem(v1.trigger({"dag_run_id": "v1_reversed", "conf": conf}), 400, "end_date", "2019-03-15")
    assert "start_date" in body["detail"]
    assert v1.v2_run_count() == before
    assert v1.v2_run("v1_reversed")[0] == 404


def test_unknown_body_key_is_400(v1):
    assert_problem(v1.trigger({"conf": {}, "state": "running"}), 400, "state: Unknown field")


@pytest.mark.parametrize(
    "auth", [("admin", "wrong"), ("nobody", "admin"), None], ids=["bad-password", "no-user", "none"]
)
def test_bad_or_missing_credentials_are_401(v1, auth):
    response = v1.trigger({"conf": {}}, auth=auth)
    assert_problem(response, 401)
    assert response.headers["www-authenticate"] == "Basic"


def test_viewer_may_poll_but_not_trigger(v1):
    assert_problem(v1.trigger({"conf": GOOD_CONF}, auth=VIEWER), 403, "viewer")
    run_id = v1.trigger({"conf": GOOD_CONF}).json()["dag_run_id"]
    polled = requests.get(v1.run_url(run_id), auth=VIEWER, timeout=30)
    assert polled.status_code == 200 and polled.json()["conf"] == GOOD_CONF


def test_bearer_token_from_auth_token_works(v1):
    token = v1.stack.token("admin")
    bearer = {"Authorization": f"Bearer {token}"}
    response = requests.post(v1.runs_url(), json={"conf": GOOD_CONF}, headers=bearer, timeout=60)
    assert response.status_code == 200, response.text
    v1.created.append(response.json()["dag_run_id"])
    garbage = requests.post(v1.runs_url(), json={}, headers={"Authorization": "Bearer not-a-jwt"}, timeout=60)
    assert_problem(garbage, 401)


def test_unknown_dag_or_run_is_404(v1):
    assert_problem(v1.trigger({"conf": {}}, dag_id="no_such_dag"), 404, "no_such_dag")
    assert_problem(requests.get(v1.run_url("nope"), auth=ADMIN, timeout=30), 404, "nope")
    assert_problem(requests.get(v1.run_url("x", dag_id="no_such_dag"), auth=ADMIN, timeout=30), 404)


def test_duplicate_dag_run_id_is_409(v1):
    first = v1.trigger({"dag_run_id": "v1-duplicate", "conf": GOOD_CONF})
    assert first.status_code == 200, first.text
    assert_problem(v1.trigger({"dag_run_id": "v1-duplicate", "conf": GOOD_CONF}), 409, "v1-duplicate")


def test_official_airflow2_python_client(v1):
    airflow_client = pytest.importorskip("airflow_client.client")
    from airflow_client.client.api import dag_run_api
    from airflow_client.client.model.dag_run import DAGRun

    configuration = airflow_client.Configuration(host=v1.base, username="admin", password="admin")
    with airflow_client.ApiClient(configuration) as api_client:
        api = dag_run_api.DAGRunApi(api_client)
        run = api.post_dag_run(REPORT_DAG_ID, DAGRun(conf=GOOD_CONF))
        v1.created.append(run.dag_run_id)
        # The generated client turns date-like strings in conf into dates when it reads the answer
        # (it did so against Airflow 2 too); what Airflow stored is checked through /api/v2.
        assert run.conf["borough"] == GOOD_CONF["borough"]
        assert v1.v2_run(run.dag_run_id)[1]["conf"] == GOOD_CONF
        assert str(run.state) == "queued"
        assert api.get_dag_run(REPORT_DAG_ID, run.dag_run_id).dag_run_id == run.dag_run_id

        before = v1.v2_run_count()
        with pytest.raises(airflow_client.ApiException) as caught:
            api.post_dag_run(REPORT_DAG_ID, DAGRun(conf={**GOOD_CONF, "borough": "Atlantis"}))
        assert caught.value.status == 400
        assert "param borough" in caught.value.body
        assert v1.v2_run_count() == before
