"""Airflow 2's REST ``/api/v1`` for DAG runs, served by Airflow 3's api-server through a plugin.

Airflow 3 removed ``/api/v1``. Scripts, CI/CD jobs and serverless functions written for Airflow 2
still call it with HTTP basic auth::

    curl -u admin:admin -H 'Content-Type: application/json' \\
      -X POST http://localhost:8080/api/v1/dags/borough_report/dagRuns \\
      -d '{"conf": {"borough": "Manhattan", "start_date": "2023-12-18", "end_date": "2024-01-08"}}'

``plugins/taxiflow_api_v1.py`` mounts :func:`create_app` at ``/api/v1`` and this module serves, for
every DAG, the three endpoints those clients use, with Airflow 2's request and response shapes:

* ``POST /api/v1/dags/{dag_id}/dagRuns``: trigger a run;
* ``GET  /api/v1/dags/{dag_id}/dagRuns/{dag_run_id}``: poll it;
* ``GET  /api/v1/health``: metadatabase and scheduler status (no auth, as in Airflow 2).

Decisions (what differs from Airflow 2, and why):

* **Runs are created by Airflow's own trigger path**, ``airflow.api.common.trigger_dag.trigger_dag``,
  so params are validated exactly as on ``/api/v2`` (JSON schema, before any run exists). A bad conf
  answers 400 whose detail names the param, the bad value and what the param allows.
* **No logical date given -> the run has none** (``logical_date``/``execution_date``/
  ``data_interval_*`` are ``null`` in the answer). Airflow 2 defaulted to "now"; in Airflow 3 a manual
  run without a logical date is the normal case (the UI, CLI and ``/api/v2`` all create them), and a
  "now" default would make two triggers in the same instant collide on the unique logical date.
  Clients that need one (e.g. ``ingest_taxi_trips``, which ingests the month of its logical date)
  send ``logical_date`` or the older ``execution_date``, exactly as in Airflow 2. A naive timestamp
  is read as UTC (Airflow 2 did the same); the run becomes runnable at that moment (``run_after``),
  so a future logical date waits, as it did in Airflow 2 unless ``allow_trigger_in_future`` was set.
* **Paused DAGs**: the run is created anyway and stays queued until the DAG is unpaused (Airflow 2).
* **Auth**: ``Authorization: Basic`` checked against the configured auth manager's users
  (SimpleAuthManager: its users and passwords file; FabAuthManager: its security manager, so DB and
  LDAP users work as with Airflow 2's ``basic_auth`` backend), or ``Authorization: Bearer <JWT>``
  from ``POST /auth/token``, as ``/api/v2`` accepts. Session cookies are not accepted: this door is
  for scripts. Authorization goes through ``get_auth_manager().is_authorized_dag`` with the same
  method and access entity (``RUN``) as ``/api/v2``: a viewer may poll but not trigger.
* **Errors** use Airflow 2's problem-JSON body and status codes: 401 (with ``WWW-Authenticate:
  Basic``), 403, 404, 400 (unknown body keys too, as marshmallow did), 409 (duplicate run id or
  logical date).
* Each trigger is written to Airflow's audit log (event ``trigger_dag_run``, ``extra.source``
  ``api_v1``), like the ``/api/v2`` trigger.

* **Limits and failures**: a ``dag_run_id`` longer than ``taxiflow.reports.run_ids.MAX_RUN_ID_LENGTH``
  (200) is a 400 naming the limit; a busy metadata database is a 503 with ``Retry-After``; no answer
  carries an exception's text (a 500 names a reference in the api-server log instead);
  ``/api/v1/openapi.json`` and ``/api/v1/docs`` need credentials like every other route.

Modules: :mod:`.shapes` (body parsing, problem JSON, Airflow 2's DAGRun JSON; pure Python, unit-tested
without a server), :mod:`.auth` (credentials and access checks), :mod:`.runs` (Airflow's trigger path)
and :mod:`.app` (the FastAPI sub-app). Airflow is imported inside the functions that need it, so
loading the plugin stays cheap in every Airflow process.
"""

from taxiflow.doors.api_v1.app import create_app, is_database_contention
from taxiflow.doors.api_v1.auth import (
    BasicCredentials,
    BearerToken,
    authenticate,
    authorize_runs,
    check_password,
    parse_authorization,
    password_matches,
)
from taxiflow.doors.api_v1.runs import CONF_CHECKS, check_report_conf, get_run, trigger_run
from taxiflow.doors.api_v1.shapes import (
    BODY_FIELDS,
    ERRORS_DOC,
    PROBLEM_MEDIA_TYPE,
    URL_PREFIX,
    ApiV1Error,
    TriggerRequest,
    dag_run_v1,
    describe_schema,
    explain_param_error,
    parse_datetime,
    parse_trigger_body,
    problem,
    problem_response,
    unauthenticated,
)

__all__ = [
    "BODY_FIELDS", "CONF_CHECKS", "ERRORS_DOC", "PROBLEM_MEDIA_TYPE", "URL_PREFIX", "ApiV1Error",
    "BasicCredentials", "BearerToken", "TriggerRequest", "authenticate", "authorize_runs",
    "check_password", "check_report_conf", "create_app", "dag_run_v1", "describe_schema",
    "explain_param_error", "get_run", "is_database_contention", "parse_authorization",
    "parse_datetime", "parse_trigger_body", "password_matches", "problem", "problem_response",
    "trigger_run", "unauthenticated",
]
