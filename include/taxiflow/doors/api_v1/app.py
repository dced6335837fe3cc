"""The ``/api/v1`` FastAPI sub-app: routes, and errors as Airflow 2's problem JSON.

No answer carries an exception's text: an unexpected error is a 500 naming a reference that the
api-server log has next to the traceback; a busy or unreachable metadata database is a 503 with
``Retry-After``. ``/openapi.json`` and ``/docs`` need the same credentials as the rest.
"""

from __future__ import annotations

import json
import logging
import uuid

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from taxiflow.doors.api_v1.auth import authenticate, authorize_runs
from taxiflow.doors.api_v1.runs import airflow_health, get_run, trigger_run
from taxiflow.doors.api_v1.shapes import (
    URL_PREFIX,
    ApiV1Error,
    internal_error,
    parse_trigger_body,
    problem_response,
    unavailable,
)

log = logging.getLogger(__name__)

DESCRIPTION = (
    "Airflow 2's REST /api/v1 for DAG runs (trigger, poll, health) with HTTP basic auth or a JWT, served by "
    "Airflow 3's api-server through a taxiflow plugin; params are validated by Airflow's own trigger path, "
    "as on /api/v2. Reference: docs/doors.md."
)


def is_database_contention(err: BaseException) -> bool:
    """A metadata-database error that a retry will get through: locked, pool exhausted, connection lost."""
    from sqlalchemy import exc

    if isinstance(err, exc.DBAPIError) and err.connection_invalidated:
        return True
    return isinstance(err, (exc.OperationalError, exc.TimeoutError, exc.DisconnectionError, exc.InterfaceError))


def create_app() -> FastAPI:
    """The ``/api/v1`` sub-app the plugin mounts."""
    app = FastAPI(
        title="Airflow 2 REST API (/api/v1) compatibility for DAG runs",
        description=DESCRIPTION,
        version="1",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,  # served below, behind the same auth as the rest
    )

    @app.exception_handler(ApiV1Error)
    async def _api_error(request: Request, err: ApiV1Error) -> JSONResponse:
        return problem_response(err)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, err: StarletteHTTPException) -> JSONResponse:
        detail: str | None = err.detail if isinstance(err.detail, str) else json.dumps(err.detail)
        if err.status_code == 404:
            detail = (f"{request.url.path} is not served here: this /api/v1 serves "
                      "POST/GET dags/{dag_id}/dagRuns[/{dag_run_id}] and GET health; use /api/v2 for the rest")
        elif err.status_code >= 500:
            detail = None
        return problem_response(ApiV1Error(err.status_code, detail, headers=getattr(err, "headers", None)))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, err: RequestValidationError) -> JSONResponse:
        return problem_response(ApiV1Error(400, str(err.errors())))

    @app.exception_handler(Exception)
    async def _unexpected_error(request: Request, err: Exception) -> JSONResponse:
        if is_database_contention(err):
            log.warning("/api/v1 %s %s: metadata database busy (%s); answered 503",
                        request.method, request.url.path, type(err).__name__)
            return problem_response(unavailable())
        reference = uuid.uuid4().hex[:12]
        log.exception("/api/v1 %s %s failed (reference %s)", request.method, request.url.path, reference)
        return problem_response(internal_error(reference))

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

    @app.get("/openapi.json", include_in_schema=False)
    async def openapi(request: Request) -> JSONResponse:
        await authenticate(request)
        return JSONResponse(app.openapi())

    @app.get("/docs", include_in_schema=False)
    async def docs(request: Request) -> HTMLResponse:
        await authenticate(request)
        return get_swagger_ui_html(openapi_url=f"{URL_PREFIX}/openapi.json", title=app.title)

    return app
