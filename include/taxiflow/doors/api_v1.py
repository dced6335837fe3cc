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

The first half of this module (body parsing, problem JSON, header parsing, serialisation) is pure
Python and is unit-tested without a server; everything that touches Airflow is imported inside the
functions that need it, so loading the plugin stays cheap in every Airflow process.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from taxiflow.config import REPORT_DAG_ID

if TYPE_CHECKING:
    from airflow.api_fastapi.auth.managers.base_auth_manager import BaseAuthManager
    from airflow.api_fastapi.auth.managers.models.base_user import BaseUser

log = logging.getLogger(__name__)

URL_PREFIX = "/api/v1"
PROBLEM_MEDIA_TYPE = "application/problem+json"
ERRORS_DOC = "https://airflow.apache.org/docs/apache-airflow/2.10.5/stable-rest-api-ref.html#section/Errors/"

# status -> (default title, the Errors section Airflow 2's problem "type" links to)
PROBLEMS: dict[int, tuple[str, str]] = {
    400: ("Bad Request", "BadRequest"),
    401: ("Unauthorized", "Unauthenticated"),
    403: ("Forbidden", "PermissionDenied"),
    404: ("Not Found", "NotFound"),
    405: ("Method Not Allowed", "MethodNotAllowed"),
    409: ("Conflict", "AlreadyExists"),
    500: ("Internal Server Error", "Unknown"),
}

# The keys Airflow 2's DAGRun schema accepted in a POST body; every other key was "Unknown field."
BODY_FIELDS = (
    "dag_run_id", "logical_date", "execution_date", "data_interval_start", "data_interval_end",
    "conf", "note",
)

# Airflow 3 run types as Airflow 2 clients know them (their client validates the enum).
V1_RUN_TYPES = {
    "manual": "manual",
    "scheduled": "scheduled",
    "backfill": "backfill",
    "asset_triggered": "dataset_triggered",
    "operator_triggered": "manual",  # TriggerDagRunOperator made "manual" runs in Airflow 2
    "asset_materialization": "manual",
}


# --- Errors as Airflow 2 wrote them ----------------------------------------------------------------


class ApiV1Error(Exception):
    """An error answered as Airflow 2's problem JSON."""

    def __init__(self, status: int, detail: str | None, title: str | None = None,
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.title = title
        self.headers = dict(headers or {})


def problem(status: int, detail: str | None, title: str | None = None) -> dict[str, Any]:
    """Airflow 2's error body: ``{"detail", "status", "title", "type"}``."""
    default_title, section = PROBLEMS.get(status, PROBLEMS[500])
    return {"detail": detail, "status": status, "title": title or default_title, "type": ERRORS_DOC + section}


def problem_response(err: ApiV1Error) -> JSONResponse:
    return JSONResponse(
        problem(err.status, err.detail, err.title),
        status_code=err.status,
        headers=err.headers,
        media_type=PROBLEM_MEDIA_TYPE,
    )


def unauthenticated(detail: str) -> ApiV1Error:
    return ApiV1Error(401, detail, headers={"WWW-Authenticate": "Basic"})


# --- Credentials -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class BasicCredentials:
    username: str
    password: str


@dataclass(frozen=True)
class BearerToken:
    token: str


def parse_authorization(header: str | None) -> BasicCredentials | BearerToken | None:
    """The credentials in an ``Authorization`` header; None if absent, a 401 if unusable."""
    if not header or not header.strip():
        return None
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer":
        if not value:
            raise unauthenticated("Empty Bearer token")
        return BearerToken(value)
    if scheme.lower() != "basic":
        raise unauthenticated(f"Unsupported authorization scheme {scheme!r}: use Basic or Bearer")
    try:
        decoded = base64.b64decode(value, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        raise unauthenticated("Malformed Basic credentials: expected base64 of username:password") from None
    username, sep, password = decoded.partition(":")
    if not sep or not username:
        raise unauthenticated("Malformed Basic credentials: expected base64 of username:password")
    return BasicCredentials(username, password)


def password_matches(expected: str | None, given: str) -> bool:
    """Constant-time comparison, also when the user has no password."""
    return hmac.compare_digest((expected or "").encode(), given.encode()) and expected is not None


# --- Request body ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TriggerRequest:
    """A validated ``POST .../dagRuns`` body."""

    conf: dict[str, Any] = field(default_factory=dict)
    run_id: str | None = None
    logical_date: datetime | None = None
    data_interval: tuple[datetime, datetime] | None = None
    note: str | None = None


def parse_datetime(value: Any, name: str) -> datetime | None:
    """ISO 8601 -> aware datetime (naive means UTC, as in Airflow 2); ValueError naming the field."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"{name}: not a valid datetime, expected an ISO 8601 string such as "
                         f"2024-01-01T00:00:00+00:00, got {value!r}")
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(f"{name}: not a valid datetime, expected ISO 8601 such as "
                         f"2024-01-01T00:00:00+00:00, got {value!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def parse_trigger_body(raw: bytes | str | None) -> TriggerRequest:
    """Parse and check a trigger body as Airflow 2 accepted it; ApiV1Error(400) listing every problem."""
    text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else (raw or "")
    if not text.strip():
        raise ApiV1Error(400, "Request body must be a JSON object, e.g. {} or {\"conf\": {}}")
    try:
        body = json.loads(text)
    except json.JSONDecodeError as err:
        raise ApiV1Error(400, f"Request body is not valid JSON: {err}") from None
    if not isinstance(body, dict):
        raise ApiV1Error(400, f"Request body must be a JSON object, got {type(body).__name__}")

    errors: list[str] = []
    for key in body:
        if key not in BODY_FIELDS:
            errors.append(f"{key}: Unknown field. Allowed fields: {', '.join(BODY_FIELDS)}")

    conf = body.get("conf")
    if conf is None:
        conf = {}
    elif not isinstance(conf, dict):
        errors.append(f"conf: must be a JSON object mapping param names to values, got {type(conf).__name__}")

    run_id = body.get("dag_run_id")
    if run_id is not None and (not isinstance(run_id, str) or not run_id.strip()):
        errors.append(f"dag_run_id: must be a non-empty string, got {run_id!r}")

    note = body.get("note")
    if note is not None and not isinstance(note, str):
        errors.append(f"note: must be a string, got {type(note).__name__}")

    dates: dict[str, datetime | None] = {}
    for name in ("logical_date", "execution_date", "data_interval_start", "data_interval_end"):
        try:
            dates[name] = parse_datetime(body.get(name), name)
        except ValueError as err:
            errors.append(str(err))

    logical_date = dates.get("logical_date") or dates.get("execution_date")
    if dates.get("logical_date") and dates.get("execution_date") and dates["logical_date"] != dates["execution_date"]:
        errors.append("logical_date conflicts with execution_date: send one of them, or the same value in both")

    start, end = dates.get("data_interval_start"), dates.get("data_interval_end")
    data_interval = None
    if ("data_interval_start" in body) != ("data_interval_end" in body) or (start is None) != (end is None):
        errors.append("data_interval_start and data_interval_end must be given together")
    elif start is not None and end is not None:
        if end < start:
            errors.append("data_interval_end must not be before data_interval_start")
        elif logical_date is None:
            errors.append("data_interval_start/data_interval_end need a logical_date (or execution_date)")
        else:
            data_interval = (start, end)

    if errors:
        raise ApiV1Error(400, "; ".join(errors))
    return TriggerRequest(conf=conf, run_id=run_id, logical_date=logical_date,
                          data_interval=data_interval, note=note)


# --- Param errors that say what is allowed -----------------------------------------------------------

_PARAM_ERROR = re.compile(r"^Invalid input for param (?P<name>[^:]+): (?P<reason>.*)$", re.DOTALL)


def describe_schema(schema: Mapping[str, Any]) -> str:
    """What a param's JSON schema allows, in words: ``one of 'Manhattan', 'Brooklyn'``."""
    parts: list[str] = []
    if "enum" in schema:
        parts.append("one of " + ", ".join(repr(v) for v in schema["enum"]))
    else:
        types = schema.get("type")
        if types:
            names = [types] if isinstance(types, str) else list(types)
            parts.append(" or ".join(names))
        items = schema.get("items") or {}
        if "enum" in items:
            parts.append("items from " + ", ".join(repr(v) for v in items["enum"]))
        if "minItems" in schema:
            parts.append(f"at least {schema['minItems']} item(s)")
        if schema.get("uniqueItems"):
            parts.append("no repeats")
        if schema.get("format") == "date":
            parts.append("a date YYYY-MM-DD")
        elif schema.get("format") == "date-time":
            parts.append("a date-time such as 2024-01-01T00:00:00+00:00")
        elif "pattern" in schema:
            parts.append(f"matching {schema['pattern']}")
        for key, word in (("minimum", ">="), ("maximum", "<="), ("minLength", "length >="), ("maxLength", "length <=")):
            if key in schema:
                parts.append(f"{word} {schema[key]}")
    return ", ".join(parts) or "any value"


def explain_param_error(message: str, schemas: Mapping[str, Mapping[str, Any]]) -> str:
    """Airflow's ``Invalid input for param X: ...`` without the schema dump, plus what X allows."""
    match = _PARAM_ERROR.match(message)
    if not match:
        return message.split("\n\n", 1)[0]
    name, reason = match["name"], match["reason"].split("\n\n", 1)[0].strip()
    if reason == "No value passed":
        reason = "no value given and the param has no default"
    text = f"Invalid input for param {name}: {reason}."
    schema = schemas.get(name)
    if schema is not None and not ("enum" in schema and "is not one of" in reason):  # already listed
        text += f" Allowed: {describe_schema(schema)}."
        if schema.get("description"):
            text += f" ({schema['description']})"
    return text


# --- Airflow 2's DAGRun shape --------------------------------------------------------------------------


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def dag_run_v1(run: Any) -> dict[str, Any]:
    """A DagRun (or anything with its attributes) as Airflow 2's ``DAGRun`` JSON."""
    run_type = str(getattr(run.run_type, "value", run.run_type))
    v1_type = V1_RUN_TYPES.get(run_type, "manual")
    state = getattr(run.state, "value", run.state)
    return {
        "dag_run_id": run.run_id,
        "dag_id": run.dag_id,
        "logical_date": _iso(run.logical_date),
        "execution_date": _iso(run.logical_date),
        "start_date": _iso(run.start_date),
        "end_date": _iso(run.end_date),
        "data_interval_start": _iso(run.data_interval_start),
        "data_interval_end": _iso(run.data_interval_end),
        "last_scheduling_decision": _iso(run.last_scheduling_decision),
        "run_type": v1_type,
        "state": str(state) if state is not None else None,
        "external_trigger": v1_type == "manual",
        "conf": dict(run.conf or {}),
        "note": run.note,
    }


# --- Airflow-bound part: users, permissions, runs ---------------------------------------------------------


def _auth_manager() -> BaseAuthManager:
    # Inside a plugin sub-app request.app.state is the sub-app's: use the global one.
    from airflow.api_fastapi.app import get_auth_manager

    return get_auth_manager()


def check_password(username: str, password: str) -> BaseUser | None:
    """The user these credentials identify for the configured auth manager, or None."""
    from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager
    from airflow.configuration import conf

    manager = _auth_manager()
    if isinstance(manager, SimpleAuthManager):
        from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

        if conf.getboolean("core", "simple_auth_manager_all_admins"):
            return SimpleAuthManagerUser(username="Anonymous", role="ADMIN")
        passwords = SimpleAuthManager.get_passwords()
        for user in SimpleAuthManager.get_users():
            if user.username == username and password_matches(passwords.get(username), password):
                return user
        return None

    fab_manager = _fab_auth_manager_class()
    if fab_manager is not None and isinstance(manager, fab_manager):
        return _check_fab_password(manager, username, password)

    raise unauthenticated(
        f"HTTP Basic auth is not supported with {type(manager).__name__}: send "
        "'Authorization: Bearer <token>' with a token from POST /auth/token"
    )


def _fab_auth_manager_class() -> type | None:
    try:
        from airflow.providers.fab.auth_manager.fab_auth_manager import FabAuthManager
    except ImportError:
        return None
    return FabAuthManager


def _check_fab_password(manager: Any, username: str, password: str) -> BaseUser | None:
    """FAB's own login (DB users, LDAP if configured), as its POST /auth/token does it."""
    flask_app = manager.flask_app
    if flask_app is None:
        with manager._flask_app_lock:
            if manager.flask_app is None:
                from airflow.providers.fab.www.app import create_app as create_flask_app

                manager.flask_app = create_flask_app(enable_plugins=False)
            flask_app = manager.flask_app
    with flask_app.app_context():
        try:
            user = manager.create_token(headers={}, body={"username": username, "password": password})
        except ValueError:
            return None
        if user is None:
            return None
        # The same detached, re-checked user a Bearer token for this account would give.
        return manager.deserialize_user(manager.serialize_user(user))


async def authenticate(request: Request) -> BaseUser:
    """The caller, from HTTP Basic or a Bearer JWT; ApiV1Error(401) otherwise."""
    credentials = parse_authorization(request.headers.get("authorization"))
    if credentials is None:
        raise unauthenticated("No credentials: use HTTP Basic auth (curl -u user:password) or a Bearer token")
    if isinstance(credentials, BasicCredentials):
        user = await run_in_threadpool(check_password, credentials.username, credentials.password)
        if user is None:
            raise unauthenticated("Invalid username or password")
        return user
    from jwt import InvalidTokenError

    try:
        return await _auth_manager().get_user_from_token(credentials.token)
    except InvalidTokenError as err:  # ExpiredSignatureError is one too
        raise unauthenticated(f"Invalid or expired token: {err}") from None


def authorize_runs(user: BaseUser, method: str, dag_id: str) -> None:
    """The access check ``/api/v2`` makes for a DAG's runs; ApiV1Error(403) if refused."""
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails
    from airflow.models.dag import DagModel

    allowed = _auth_manager().is_authorized_dag(
        method=method,  # type: ignore[arg-type]
        access_entity=DagAccessEntity.RUN,
        details=DagDetails(id=dag_id, team_name=DagModel.get_team_name(dag_id)),
        user=user,
    )
    if not allowed:
        action = "trigger" if method == "POST" else "read the runs of"
        raise ApiV1Error(403, f"User {user.get_name()!r} is not allowed to {action} DAG {dag_id!r}")


def _param_schemas(dag_id: str, session: Any) -> dict[str, Mapping[str, Any]]:
    from airflow.models.dagbag import DBDagBag

    dag = DBDagBag().get_latest_version_of_dag(dag_id, session=session)
    if dag is None:
        return {}
    return {name: {**param.schema, "description": param.description} for name, param in dag.params.items()}


def check_report_conf(conf: Mapping[str, Any]) -> None:
    """What JSON schema cannot say about a ``borough_report`` conf (start before end, range limits), as 400.

    Runs after Airflow validated the params, so a schema error keeps Airflow's own wording (the
    same as the CLI and /api/v2); this door, unlike those, can also refuse a reversed range before a
    run exists, with the message ``validate_request`` would fail with.
    """
    from taxiflow.reports.params import report_param_schemas
    from taxiflow.reports.request import InvalidRequest, ReportRequest, check_limits

    merged = {name: schema.get("default") for name, schema in report_param_schemas().items()}
    merged.update(conf)
    try:
        check_limits(ReportRequest.from_conf(merged))
    except InvalidRequest as err:
        raise ApiV1Error(400, str(err)) from None


# DAG-specific checks a conf must pass beyond its params' JSON schema, by dag_id.
CONF_CHECKS: dict[str, Any] = {REPORT_DAG_ID: check_report_conf}


def trigger_run(dag_id: str, request: TriggerRequest, user: BaseUser) -> dict[str, Any]:
    """Create a run through Airflow's trigger path; Airflow 2's DAGRun JSON, or ApiV1Error."""
    from airflow.api.common.trigger_dag import trigger_dag
    from airflow.exceptions import DagNotFound, DagRunAlreadyExists, ParamValidationError
    from airflow.models.dag import DagModel
    from airflow.models.dagrun import DagRun
    from airflow.models.log import Log
    from airflow.utils.session import create_session
    from airflow.utils.types import DagRunTriggeredByType
    from sqlalchemy import select

    with create_session() as session:
        dag_model = session.scalar(select(DagModel).where(DagModel.dag_id == dag_id))
        if dag_model is None or dag_model.is_stale:
            raise ApiV1Error(404, f"DAG with dag_id: '{dag_id}' not found", title="DAG not found")
        if dag_model.has_import_errors:
            raise ApiV1Error(400, f"DAG with dag_id: '{dag_id}' has import errors",
                             title="DAG cannot be triggered")
        if request.logical_date is not None:
            clash = session.scalar(
                select(DagRun.run_id)
                .where(DagRun.dag_id == dag_id, DagRun.logical_date == request.logical_date)
                .limit(1)
            )
            if clash is not None:
                raise ApiV1Error(409, f"DAGRun with DAG ID: '{dag_id}' and DAGRun logical date: "
                                      f"'{request.logical_date.isoformat(sep=' ')}' already exists")
        try:
            run = trigger_dag(
                dag_id,
                triggered_by=DagRunTriggeredByType.REST_API,
                triggering_user_name=user.get_name(),
                run_id=request.run_id,
                conf=request.conf,
                logical_date=request.logical_date,
                # A run with a logical date may start at that moment (and its data interval is
                # inferred from it, as in Airflow 2); one without may start now.
                run_after=request.logical_date,
                replace_microseconds=False,
                session=session,
            )
        except DagRunAlreadyExists:
            raise ApiV1Error(409, f"DAGRun with DAG ID: '{dag_id}' and DAGRun ID: "
                                  f"'{request.run_id}' already exists") from None
        except DagNotFound:
            raise ApiV1Error(404, f"DAG with dag_id: '{dag_id}' not found", title="DAG not found") from None
        except ParamValidationError as err:
            raise ApiV1Error(400, explain_param_error(str(err), _param_schemas(dag_id, session))) from None
        except ValueError as err:
            raise ApiV1Error(400, str(err)) from None
        if run is None:  # trigger_dag's signature allows it; it never happens for a manual run
            raise ApiV1Error(500, f"Airflow created no run for DAG {dag_id!r}")
        if dag_id in CONF_CHECKS:
            CONF_CHECKS[dag_id](request.conf)  # raising rolls the session back: no run is kept
        if request.data_interval is not None:
            run.data_interval_start, run.data_interval_end = request.data_interval
        if request.note:
            run.note = (request.note, user.get_id())
        session.add(Log(
            event="trigger_dag_run",
            dag_id=dag_id,
            run_id=run.run_id,
            owner=user.get_name(),
            extra=json.dumps({"source": "api_v1", "method": "POST", "conf": request.conf}),
        ))
        session.flush()
        return dag_run_v1(run)


def get_run(dag_id: str, run_id: str) -> dict[str, Any]:
    """One run as Airflow 2's DAGRun JSON; ApiV1Error(404) if the DAG has no such run."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        run = session.scalar(select(DagRun).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id))
        if run is None:
            raise ApiV1Error(404, f"DAGRun with DAG ID: '{dag_id}' and DagRun ID: '{run_id}' not found",
                             title="DAGRun not found")
        return dag_run_v1(run)


def airflow_health() -> dict[str, Any]:
    from airflow.api.common.airflow_health import get_airflow_health

    return get_airflow_health()


# --- The FastAPI sub-app ------------------------------------------------------------------------------------


def create_app() -> FastAPI:
    """The ``/api/v1`` sub-app the plugin mounts."""
    app = FastAPI(
        title="Airflow 2 REST API (/api/v1) compatibility for DAG runs",
        description=__doc__,
        version="1",
        docs_url=None,
        redoc_url=None,
    )

    @app.exception_handler(ApiV1Error)
    async def _api_error(request: Request, err: ApiV1Error) -> JSONResponse:
        return problem_response(err)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, err: StarletteHTTPException) -> JSONResponse:
        detail = err.detail if isinstance(err.detail, str) else json.dumps(err.detail)
        if err.status_code == 404:
            detail = (f"{request.url.path} is not served here: this /api/v1 serves "
                      "POST/GET dags/{dag_id}/dagRuns[/{dag_run_id}] and GET health; use /api/v2 for the rest")
        return problem_response(ApiV1Error(err.status_code, detail, headers=getattr(err, "headers", None)))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, err: RequestValidationError) -> JSONResponse:
        return problem_response(ApiV1Error(400, str(err.errors())))

    @app.exception_handler(Exception)
    async def _unexpected_error(request: Request, err: Exception) -> JSONResponse:
        log.exception("/api/v1 %s %s failed", request.method, request.url.path)
        return problem_response(ApiV1Error(500, f"{type(err).__name__}: {err}"))

    @app.get("/health")
    async def health() -> JSONResponse:
        return JSONResponse(await run_in_threadpool(airflow_health))

    @app.post("/dags/{dag_id}/dagRuns")
    async def post_dag_run(dag_id: str, request: Request) -> JSONResponse:
        user = await authenticate(request)
        await run_in_threadpool(authorize_runs, user, "POST", dag_id)
        body = parse_trigger_body(await request.body())
        return JSONResponse(await run_in_threadpool(trigger_run, dag_id, body, user))

    @app.get("/dags/{dag_id}/dagRuns/{dag_run_id}")
    async def get_dag_run(dag_id: str, dag_run_id: str, request: Request) -> JSONResponse:
        user = await authenticate(request)
        await run_in_threadpool(authorize_runs, user, "GET", dag_id)
        return JSONResponse(await run_in_threadpool(get_run, dag_id, dag_run_id))

    return app
