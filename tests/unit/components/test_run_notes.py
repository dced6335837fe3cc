"""The note that names the month an ingest run ingests, and how it reaches the run (``taxiflow.components.run_notes``).

``/api/v2`` is stood in for by a small in-memory API (httpx's MockTransport) that keeps runs and checks
tokens as the api-server does; tests/e2e/test_lineage.py sets notes on a live api-server.
"""

from __future__ import annotations

import json
import urllib.parse

import httpx
import pendulum
import pytest

from taxiflow.components import run_notes
from taxiflow.components.run_notes import RunNoteError, api_base_url, ingest_run_note, set_run_note

BASE = "http://127.0.0.1:8080"
RUN_ID = "backfill__2024-01-01T00:00:00+00:00"
NOTE = "Ingests 2023-12 (December 2023): yellow, green"


def test_the_note_names_the_month_of_the_logical_date_not_the_run_after():
    december = pendulum.datetime(2023, 12, 1, tz="UTC")  # its run id says backfill__2024-01-01...
    assert ingest_run_note(december, ("yellow", "green")) == NOTE


def test_a_run_without_a_month_gets_no_note():
    assert ingest_run_note(None, ("yellow",)) is None  # a manual run without a logical date fails anyway
    assert ingest_run_note(pendulum.datetime(2023, 12, 5, tz="UTC"), ("yellow",)) is None


class FakeApi:
    """The three calls ``set_run_note`` makes, answered the way the api-server answers them."""

    def __init__(self, runs: dict[str, str | None], users: dict[str, str], may_edit: bool = True) -> None:
        self.runs, self.users, self.may_edit = runs, users, may_edit

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/auth/token":
            body = json.loads(request.content)
            if self.users.get(body["username"]) != body["password"]:
                return httpx.Response(401, json={"detail": "Invalid credentials"})
            return httpx.Response(201, json={"access_token": f"token-{body['username']}"})
        if not request.headers.get("Authorization", "").startswith("Bearer token-"):
            return httpx.Response(401, json={"detail": "Not authenticated"})
        prefix = "/api/v2/dags/ingest_taxi_trips/dagRuns/"
        run_id = urllib.parse.unquote(request.url.raw_path.decode().split("?")[0].removeprefix(prefix))
        if run_id not in self.runs:
            return httpx.Response(404, json={"detail": f"The DagRun with run_id: `{run_id}` was not found"})
        if request.method == "PATCH":
            if not self.may_edit:
                return httpx.Response(403, json={"detail": "Forbidden"})
            assert request.url.params.get_list("update_mask") == ["note"]
            self.runs[run_id] = json.loads(request.content)["note"]
        return httpx.Response(200, json={"dag_run_id": run_id, "note": self.runs[run_id]})

    def set_note(self, login: str = "notes", password: str = "secret") -> str:
        return set_run_note(BASE, login, password, "ingest_taxi_trips", RUN_ID, NOTE,
                            transport=httpx.MockTransport(self))


def test_a_run_without_a_note_gets_one_under_its_own_run_id():
    api = FakeApi({RUN_ID: None}, {"notes": "secret"})
    assert api.set_note() == f"Run {RUN_ID}: note {NOTE!r}"
    assert api.runs[RUN_ID] == NOTE


def test_a_note_someone_wrote_is_kept():
    api = FakeApi({RUN_ID: "re-dropped by hand, see ticket 42"}, {"notes": "secret"})
    assert "keeps its note 're-dropped by hand, see ticket 42'" in api.set_note()
    assert api.runs[RUN_ID] == "re-dropped by hand, see ticket 42"


def test_wrong_credentials_name_the_connection_and_what_to_check(monkeypatch):
    monkeypatch.delenv(run_notes.API_CONN_ENV, raising=False)
    api = FakeApi({RUN_ID: None}, {"notes": "secret"})
    with pytest.raises(RunNoteError, match=r"POST .*/auth/token as 'notes': HTTP 401 .*connection 'taxiflow_api'"):
        api.set_note(password="wrong")
    assert api.runs[RUN_ID] is None


def test_a_user_who_may_not_edit_runs_is_told_which_role_is_needed():
    api = FakeApi({RUN_ID: None}, {"notes": "secret"}, may_edit=False)
    with pytest.raises(RunNoteError, match=r"PATCH .*HTTP 403 .*role User or above"):
        api.set_note()
    assert api.runs[RUN_ID] is None


def test_the_connection_host_may_be_a_url_or_a_host_and_port():
    assert api_base_url("http://api:8080/", None, None) == "http://api:8080"
    assert api_base_url("api", "https", 8443) == "https://api:8443"
    with pytest.raises(RunNoteError, match="has no host"):
        api_base_url(None, None, None)


def test_without_the_connection_the_run_keeps_its_id_and_the_log_says_why(monkeypatch):
    monkeypatch.setenv(run_notes.API_CONN_ENV, "taxiflow_api_unset_in_tests")
    with pytest.raises(run_notes.NoApiConnection, match="no Airflow connection 'taxiflow_api_unset_in_tests'"):
        run_notes.name_ingest_run("ingest_taxi_trips", RUN_ID, NOTE)


def test_a_connection_without_login_is_refused_naming_the_field(monkeypatch):
    monkeypatch.setenv(run_notes.API_CONN_ENV, "taxiflow_api_test")
    monkeypatch.setenv("AIRFLOW_CONN_TAXIFLOW_API_TEST", json.dumps({"conn_type": "http", "host": BASE}))
    with pytest.raises(RunNoteError, match="has no login"):
        run_notes.name_ingest_run("ingest_taxi_trips", RUN_ID, NOTE)
