"""Each ingest run says which month it ingests, beside its run id, in the UI.

An ``ingest_taxi_trips`` run's logical date is the first day of the month it ingests, but its run id
and its *Run After* are the moment the month ended: Airflow names backfill runs after ``run_after``
(``backfill__2024-01-01T00:00:00+00:00`` ingests December 2023). A custom timetable cannot change
that: Airflow 3.3 calls ``Timetable.generate_run_id`` for scheduled runs only, never for a backfill
of a non-partitioned DAG (``airflow/models/backfill.py``; apache/airflow#56374).

So the run's first task, ``name_run``, gives it a DAG run note, e.g. ``Ingests 2023-12 (December
2023): yellow, green``, through Airflow's public REST API (``PATCH /api/v2/dags/{dag_id}/dagRuns/
{run_id}``), as the UI's own note editor does. The UI shows the note in the run's header and marks
the run in the grid; ``/api/v2`` returns it (``note``). The API is reached with the HTTP connection
``TAXIFLOW_API_CONN_ID`` (default ``taxiflow_api``): host = the api-server's base URL, login and
password of a user allowed to edit DAG runs (the simple auth manager's ``User`` role is enough); the
token comes from ``POST /auth/token`` (simple and FAB auth managers alike).

A note someone already wrote is never replaced, and a cleared run keeps its note. Without the
connection the task is skipped, saying so: the run keeps its id only.
"""

from __future__ import annotations

import os
import urllib.parse
from typing import Any

import httpx

from taxiflow.config import month_of_logical_date, parse_month

API_CONN_ENV = "TAXIFLOW_API_CONN_ID"
DEFAULT_API_CONN_ID = "taxiflow_api"
API_TIMEOUT = 30.0


class NoApiConnection(Exception):
    """The deployment defines no connection to its own REST API: runs are not given notes."""


class RunNoteError(Exception):
    """The REST API refused or failed a call; the message names the connection, call and answer."""


def api_conn_id() -> str:
    return os.environ.get(API_CONN_ENV, "").strip() or DEFAULT_API_CONN_ID


def ingest_run_note(logical_date: Any, sources: tuple[str, ...]) -> str | None:
    """``Ingests 2023-12 (December 2023): yellow, green``; None for a run that names no month."""
    try:
        month = month_of_logical_date(logical_date)
    except ValueError:
        return None  # the run fails on its own, saying why
    return f"Ingests {month} ({parse_month(month):%B %Y}): {', '.join(sources)}"


def api_base_url(host: str | None, schema: str | None, port: int | None) -> str:
    """The api-server's base URL an HTTP connection names (host may be a whole URL)."""
    if not host:
        raise RunNoteError(f"connection {api_conn_id()!r} has no host: set it to the api-server's base URL")
    url = host if "://" in host else f"{schema or 'http'}://{host}"
    if port and "://" not in host:
        url = f"{url}:{port}"
    return url.rstrip("/")


def _checked(response: httpx.Response, what: str) -> httpx.Response:
    """``response`` if it succeeded; else a RunNoteError saying which call failed and how."""
    if response.is_success:
        return response
    hint = ""
    if response.status_code in (401, 403):
        hint = (f"; check the login and password of connection {api_conn_id()!r} and that its user may "
                "edit DAG runs (simple auth manager: role User or above)")
    raise RunNoteError(f"{what}: HTTP {response.status_code} {response.text[:300]}{hint}")


def set_run_note(base_url: str, login: str, password: str, dag_id: str, run_id: str, note: str,
                 transport: httpx.BaseTransport | None = None) -> str:
    """Give run ``run_id`` the note ``note`` unless it has one; a line saying what happened."""
    run_path = f"/api/v2/dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id, safe='')}"
    with httpx.Client(base_url=base_url, timeout=API_TIMEOUT, transport=transport) as client:
        token = _checked(client.post("/auth/token", json={"username": login, "password": password}),
                         f"POST {base_url}/auth/token as {login!r}").json()["access_token"]
        client.headers["Authorization"] = f"Bearer {token}"
        current = _checked(client.get(run_path), f"GET {run_path}").json().get("note")
        if current:
            return f"Run {run_id} keeps its note {current!r}"
        _checked(client.patch(run_path, params={"update_mask": "note"}, json={"note": note}),
                 f"PATCH {run_path}")
    return f"Run {run_id}: note {note!r}"


def name_ingest_run(dag_id: str, run_id: str, note: str) -> str:
    """Set ``note`` on the run through the connection ``api_conn_id()``; NoApiConnection without it."""
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    conn_id = api_conn_id()
    try:
        conn = BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        raise NoApiConnection(
            f"no Airflow connection {conn_id!r} to this deployment's REST API: run {run_id} keeps its id "
            f"only (would be noted {note!r}); see docs/lineage.md"
        ) from None
    if not conn.login:
        raise RunNoteError(f"connection {conn_id!r} has no login: set the user that writes run notes")
    return set_run_note(api_base_url(conn.host, conn.schema, conn.port), conn.login, conn.password or "",
                        dag_id, run_id, note)
