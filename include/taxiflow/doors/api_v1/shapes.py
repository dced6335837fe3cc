"""Airflow 2's request and response shapes for ``/api/v1``: problem JSON, trigger bodies, DAGRun JSON.

Pure Python (no Airflow import): unit-tested without a server.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from fastapi.responses import JSONResponse

from taxiflow.reports.run_ids import run_id_problem

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
    503: ("Service Unavailable", "Unknown"),
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
    """The error as an HTTP answer (``application/problem+json``, with its headers)."""
    return JSONResponse(
        problem(err.status, err.detail, err.title),
        status_code=err.status,
        headers=err.headers,
        media_type=PROBLEM_MEDIA_TYPE,
    )


def unauthenticated(detail: str) -> ApiV1Error:
    """A 401 with Airflow 2's ``WWW-Authenticate: Basic`` challenge."""
    return ApiV1Error(401, detail, headers={"WWW-Authenticate": "Basic"})


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
    elif isinstance(run_id, str) and run_id_problem(run_id):
        errors.append(run_id_problem(run_id) or "")

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


RETRY_AFTER_SECONDS = 2


def unavailable() -> ApiV1Error:
    """503 + Retry-After: the metadata database is busy; the same request will work shortly."""
    return ApiV1Error(503, "The metadata database is busy; retry this request after the Retry-After seconds",
                      headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


def internal_error(reference: str) -> ApiV1Error:
    """500 without the exception's text: only a reference to find it in the api-server log."""
    return ApiV1Error(500, f"Internal error; the api-server log has the details under reference {reference}")
