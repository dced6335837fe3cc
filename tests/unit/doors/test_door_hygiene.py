"""Door hygiene without a server: run-id limits, no exception text in 5xx, busy database -> 503."""

from __future__ import annotations

import asyncio
import json

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.exc import OperationalError

import taxiflow.doors.api_v1.app as app_module
from taxiflow.doors.api_v1 import ApiV1Error, create_app, parse_trigger_body
from taxiflow.doors.core_guard import CoreApiGuard
from taxiflow.reports.run_ids import MAX_RUN_ID_LENGTH, run_id_problem


def test_run_ids_up_to_the_limit_pass_and_longer_ones_are_refused_naming_it():
    assert run_id_problem("r" * MAX_RUN_ID_LENGTH) is None
    problem = run_id_problem("r" * (MAX_RUN_ID_LENGTH + 1))
    assert f"at most {MAX_RUN_ID_LENGTH} characters" in problem and "dag_run_id" in problem
    assert run_id_problem("é" * 130) is not None  # 260 bytes: one path component is 255 bytes


def test_api_v1_refuses_a_long_run_id_in_the_body():
    with pytest.raises(ApiV1Error) as err:
        parse_trigger_body(json.dumps({"dag_run_id": "x" * 201}))
    assert err.value.status == 400 and f"at most {MAX_RUN_ID_LENGTH}" in err.value.detail


@pytest.fixture
def signed_in(monkeypatch):
    """The /api/v1 app with auth passed, so a route's own failure can be provoked."""
    async def authenticate(request):  # ruff: ignore[unused-async] - Starlette awaits it
        return object()

    monkeypatch.setattr(app_module, "authenticate", authenticate)
    monkeypatch.setattr(app_module, "authorize_runs", lambda user, method, dag_id: None)
    return TestClient(create_app(), raise_server_exceptions=False)


def test_a_busy_database_is_503_with_retry_after(signed_in, monkeypatch):
    def locked(dag_id, run_id):
        raise OperationalError("UPDATE dag_run SET ...", {}, Exception("database is locked"))

    monkeypatch.setattr(app_module, "get_run", locked)
    response = signed_in.get("/dags/borough_report/dagRuns/x")
    assert response.status_code == 503
    assert int(response.headers["retry-after"]) > 0
    assert "locked" not in response.text and "UPDATE" not in response.text


def test_an_unexpected_error_is_500_without_its_text(signed_in, monkeypatch):
    def broken(dag_id, run_id):
        raise KeyError("secret internal detail /etc/airflow")

    monkeypatch.setattr(app_module, "get_run", broken)
    response = signed_in.get("/dags/borough_report/dagRuns/x")
    assert response.status_code == 500
    assert "secret" not in response.text and "KeyError" not in response.text
    assert "reference" in response.json()["detail"]


def test_openapi_and_docs_need_credentials():
    client = TestClient(create_app())
    for path in ("/openapi.json", "/docs"):
        response = client.get(path)
        assert response.status_code == 401, path
        assert response.headers["www-authenticate"] == "Basic"


def test_openapi_is_served_to_a_signed_in_caller(signed_in):
    response = signed_in.get("/openapi.json")
    assert response.status_code == 200
    assert "/dags/{dag_id}/dagRuns" in response.json()["paths"]


# --- the /api/v2 guard, as ASGI ---------------------------------------------------------------------


def call(guard, method, path, body: bytes = b""):
    sent = []
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive():  # ruff: ignore[unused-async] - the ASGI protocol awaits it
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message):  # ruff: ignore[unused-async] - the ASGI protocol awaits it
        sent.append(message)

    asyncio.run(guard({"type": "http", "method": method, "path": path, "headers": []}, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], dict(start.get("headers", [])), body


def airflow_answering(status, payload):
    """A stand-in for Airflow's app that records what body reached it."""
    seen = {}

    async def app(scope, receive, send):
        seen["body"] = (await receive())["body"]
        body = json.dumps(payload).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    return app, seen


DB_ERROR = {"detail": {"reason": "Database error", "statement": "hidden", "orig_error": "hidden",
                       "message": "Serious error ... look for ID abc"}}


def test_v2_database_error_becomes_503_with_retry_after_and_the_same_body():
    app, _ = airflow_answering(500, DB_ERROR)
    status, headers, body = call(CoreApiGuard(app), "POST", "/api/v2/dags/d/dagRuns", b'{"logical_date": null}')
    assert status == 503 and headers[b"retry-after"] == b"2"
    assert json.loads(body) == DB_ERROR and headers[b"content-length"] == str(len(body)).encode()


def test_v2_other_errors_and_successes_are_untouched():
    app, seen = airflow_answering(500, {"detail": "something else"})
    assert call(CoreApiGuard(app), "GET", "/api/v2/dags", b"")[0] == 500
    app, seen = airflow_answering(200, {"dag_run_id": "ok"})
    status, _, _ = call(CoreApiGuard(app), "POST", "/api/v2/dags/d/dagRuns", b'{"dag_run_id": "ok"}')
    assert status == 200 and seen["body"] == b'{"dag_run_id": "ok"}'  # the body still reaches Airflow


def test_v2_trigger_with_a_too_long_run_id_is_refused_before_airflow_sees_it():
    app, seen = airflow_answering(200, {})
    status, _, body = call(CoreApiGuard(app), "POST", "/api/v2/dags/d/dagRuns",
                           json.dumps({"dag_run_id": "x" * 201, "logical_date": None}).encode())
    assert status == 400 and f"at most {MAX_RUN_ID_LENGTH}" in json.loads(body)["detail"]
    assert "body" not in seen
