"""The pure parts of the /api/v1 plugin: body parsing, problem JSON, credentials, DAGRun shape.

No Airflow process: the few HTTP checks use FastAPI's TestClient on paths that answer before any
Airflow state is touched (no credentials, unknown route, health is not among them).
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from fastapi.testclient import TestClient

from taxiflow.doors.api_v1 import (
    ERRORS_DOC,
    PROBLEM_MEDIA_TYPE,
    ApiV1Error,
    BasicCredentials,
    BearerToken,
    create_app,
    dag_run_v1,
    describe_schema,
    explain_param_error,
    parse_authorization,
    parse_trigger_body,
    password_matches,
    problem,
)
from taxiflow.reports.params import report_param_schemas

UTC = UTC


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


# --- body -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("raw", [b"{}", b'{"conf": {}}', b'{"conf": null}'])
def test_minimal_bodies_mean_empty_conf_and_no_logical_date(raw):
    request = parse_trigger_body(raw)
    assert request.conf == {} and request.logical_date is None and request.run_id is None


def test_full_airflow2_body():
    request = parse_trigger_body(
        b'{"dag_run_id": "nightly-42", "conf": {"borough": "Bronx"}, "note": "from CI",'
        b' "logical_date": "2024-01-01T00:00:00Z"}'
    )
    assert request.run_id == "nightly-42"
    assert request.conf == {"borough": "Bronx"}
    assert request.note == "from CI"
    assert request.logical_date == datetime(2024, 1, 1, tzinfo=UTC)


def test_execution_date_is_the_older_name_and_naive_means_utc():
    request = parse_trigger_body('{"execution_date": "2024-02-01T06:30:00"}')
    assert request.logical_date == datetime(2024, 2, 1, 6, 30, tzinfo=UTC)


def test_data_interval_needs_both_ends_and_a_logical_date():
    ok = parse_trigger_body(
        '{"logical_date": "2024-01-01T00:00:00+00:00", "data_interval_start": "2023-12-01T00:00:00+00:00",'
        ' "data_interval_end": "2024-01-01T00:00:00+00:00"}'
    )
    assert ok.data_interval == (datetime(2023, 12, 1, tzinfo=UTC), datetime(2024, 1, 1, tzinfo=UTC))
    with pytest.raises(ApiV1Error, match="given together"):
        parse_trigger_body('{"logical_date": "2024-01-01T00:00:00Z", "data_interval_start": "2024-01-01T00:00:00Z"}')
    with pytest.raises(ApiV1Error, match="need a logical_date"):
        parse_trigger_body(
            '{"data_interval_start": "2024-01-01T00:00:00Z", "data_interval_end": "2024-01-02T00:00:00Z"}'
        )


@pytest.mark.parametrize(
    ("raw", "names"),
    [
        ('{"conf": {}, "state": "running"}', ["state: Unknown field", "Allowed fields: dag_run_id"]),
        ('{"dag_id": "x"}', ["dag_id: Unknown field"]),
        ('{"conf": ["Manhattan"]}', ["conf: must be a JSON object", "got list"]),
        ('{"conf": "{\\"a\\": 1}"}', ["conf: must be a JSON object", "got str"]),
        ('{"logical_date": "yesterday"}', ["logical_date: not a valid datetime", "'yesterday'"]),
        ('{"execution_date": 20240101}', ["execution_date: not a valid datetime"]),
        ('{"logical_date": "2024-01-01T00:00:00Z", "execution_date": "2024-01-02T00:00:00Z"}',
         ["logical_date conflicts with execution_date"]),
        ('{"dag_run_id": ""}', ["dag_run_id: must be a non-empty string"]),
        ('{"dag_run_id": 7}', ["dag_run_id: must be a non-empty string"]),
        ('{"note": 5}', ["note: must be a string"]),
        ("[]", ["must be a JSON object, got list"]),
        ("", ["must be a JSON object"]),
        ("{conf: {}}", ["not valid JSON"]),
    ],
)
def test_bad_bodies_are_400_naming_the_field(raw, names):
    with pytest.raises(ApiV1Error) as caught:
        parse_trigger_body(raw)
    assert caught.value.status == 400
    for name in names:
        assert name in caught.value.detail


def test_every_problem_in_a_body_is_reported_at_once():
    with pytest.raises(ApiV1Error) as caught:
        parse_trigger_body('{"foo": 1, "conf": [], "logical_date": "x"}')
    assert {"foo:", "conf:", "logical_date:"} <= set(caught.value.detail.split())


# --- param errors -------------------------------------------------------------------------------------


def test_param_error_names_the_param_the_value_and_what_is_allowed():
    airflow_message = (
        "Invalid input for param borough: \"Manhattan'; DROP TABLE dag_run;--\" is not one of "
        "['Manhattan', 'Brooklyn']\n\nFailed validating 'enum' in schema:\n    {...}\n\nOn instance:\n    '...'"
    )
    text = explain_param_error(airflow_message, report_param_schemas())
    assert text.startswith("Invalid input for param borough: \"Manhattan'; DROP TABLE dag_run;--\" is not one of")
    assert "Failed validating" not in text and "Allowed:" not in text  # the reason lists them already
    other = explain_param_error("Invalid input for param borough: No value passed", report_param_schemas())
    assert other.startswith("Invalid input for param borough: no value given and the param has no default.")
    assert "Allowed: one of 'Manhattan', 'Brooklyn', 'Queens', 'Bronx', 'Staten Island'." in other


def test_param_error_for_a_date_says_the_format():
    text = explain_param_error(
        "Invalid input for param start_date: '2024-02-30' is not a 'date'\n\nFailed validating ...",
        report_param_schemas(),
    )
    assert "param start_date: '2024-02-30' is not a 'date'." in text
    assert "a date YYYY-MM-DD" in text


def test_describe_schema_of_each_report_param():
    schemas = report_param_schemas()
    assert describe_schema(schemas["sources"]) == (
        "array, items from 'yellow', 'green', 'fhv', 'fhvhv', at least 1 item(s), no repeats"
    )
    assert describe_schema(schemas["name"]).startswith("null or string, matching ^(?!trips_by_week_)[A-Za-z0-9]")


def test_unrecognised_messages_keep_only_their_first_paragraph():
    assert explain_param_error("boom\n\ndetails", {}) == "boom"


# --- problem JSON and credentials -------------------------------------------------------------------


def test_problem_has_airflow2_shape():
    assert problem(409, "dup") == {
        "detail": "dup",
        "status": 409,
        "title": "Conflict",
        "type": ERRORS_DOC + "AlreadyExists",
    }
    assert problem(401, None)["type"].endswith("#section/Errors/Unauthenticated")
    assert problem(404, "x", title="DAG not found")["title"] == "DAG not found"


def test_authorization_header_parsing():
    assert parse_authorization(None) is None
    assert parse_authorization(basic("admin", "s3:cr:et")) == BasicCredentials("admin", "s3:cr:et")
    assert parse_authorization("bearer abc.def.ghi") == BearerToken("abc.def.ghi")
    for bad in ("Basic !!!", "Basic " + base64.b64encode(b"no-colon").decode(), "Digest x", "Bearer "):
        with pytest.raises(ApiV1Error) as caught:
            parse_authorization(bad)
        assert caught.value.status == 401
        assert caught.value.headers == {"WWW-Authenticate": "Basic"}


def test_password_matches():
    assert password_matches("admin", "admin")
    assert not password_matches("admin", "Admin")
    assert not password_matches(None, "")


# --- DAGRun shape -------------------------------------------------------------------------------------


def test_dag_run_v1_shape():
    start = datetime(2024, 3, 1, 12, tzinfo=UTC)
    run = SimpleNamespace(
        run_id="manual__x", dag_id="borough_report", logical_date=None, start_date=start, end_date=None,
        data_interval_start=None, data_interval_end=None, last_scheduling_decision=None,
        run_type=SimpleNamespace(value="manual"), state=SimpleNamespace(value="queued"), conf=None, note=None,
    )
    assert dag_run_v1(run) == {
        "dag_run_id": "manual__x", "dag_id": "borough_report", "logical_date": None, "execution_date": None,
        "start_date": "2024-03-01T12:00:00+00:00", "end_date": None, "data_interval_start": None,
        "data_interval_end": None, "last_scheduling_decision": None, "run_type": "manual", "state": "queued",
        "external_trigger": True, "conf": {}, "note": None,
    }
    run.run_type, run.logical_date = "asset_triggered", start
    shown = dag_run_v1(run)
    assert (shown["run_type"], shown["external_trigger"]) == ("dataset_triggered", False)
    assert shown["logical_date"] == shown["execution_date"] == "2024-03-01T12:00:00+00:00"


# --- the sub-app, where it answers without Airflow -------------------------------------------------


def test_no_credentials_is_401_problem_json_with_basic_challenge():
    client = TestClient(create_app())
    response = client.post("/dags/borough_report/dagRuns", json={"conf": {}})
    assert response.status_code == 401
    assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE
    assert response.headers["www-authenticate"] == "Basic"
    assert response.json()["type"].endswith("Unauthenticated")


def test_unknown_route_and_method_are_problem_json():
    client = TestClient(create_app())
    assert client.get("/dags").json()["status"] == 404
    response = client.delete("/dags/x/dagRuns/y")
    assert response.status_code == 405
    assert response.json()["title"] == "Method Not Allowed"
