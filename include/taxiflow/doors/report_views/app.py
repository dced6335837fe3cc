"""The report views' FastAPI app, mounted by ``plugins/taxiflow_report_views.py`` at ``/taxiflow``.

* ``GET /taxiflow/runs/{dag_id}/{run_id}``: the *Report* tab of a ``borough_report`` run;
* ``GET /taxiflow/runs/{dag_id}/{run_id}/chart.png`` | ``thumb.png`` | ``report.csv``: its files;
* ``GET /taxiflow/reports?borough=&page=``: the *Reports* page (recent reports, newest first);
* ``GET /taxiflow/quality?source=&flagged=``: the *Data quality* page (every source × month), and
  ``GET /taxiflow/quality.json`` the same figures for scripts.

Every route checks access with Airflow's own dependency ``requires_access_dag`` (read access to
the DAG's runs; ``dag_id`` from the path, ``borough_report`` for the list, ``ingest_taxi_trips``
for the quality page and its JSON), which accepts the
UI's ``_token`` cookie (so the tabs work inside the UI's iframes) as well as a bearer token:
viewers may look, unauthenticated callers get 401 and nothing else. Files are served only for
runs of ``borough_report`` whose ``render_report`` succeeded, and only the two files
``taxiflow.reports.outputs.published_report`` names for the run's validated request: nothing a
caller types becomes part of a path.
"""

from __future__ import annotations

import io
import threading
from collections import OrderedDict
from typing import Any
from urllib.parse import quote, urlparse

from fastapi import Depends, FastAPI, HTTPException, Query
from fastapi.responses import HTMLResponse, JSONResponse, Response

from taxiflow.config import BOROUGHS, INGEST_DAG_ID, REPORT_DAG_ID, SOURCE_NAMES
from taxiflow.doors.report_views import pages
from taxiflow.doors.report_views.quality import QualityRow, quality_json, quality_rows, select_rows
from taxiflow.doors.report_views.runs import ReportRun, get_report_run, list_report_runs
from taxiflow.reports.outputs import PublishedReport, published_report, read_numbers

URL_PREFIX = "/taxiflow"
PER_PAGE = 12
THUMB_SIZE = (480, 280)
_NO_STORE = {"Cache-Control": "no-store"}  # a re-run can replace a report under the same name

EXTERNAL_VIEWS = [
    {"name": "Report", "href": f"{URL_PREFIX.lstrip('/')}/runs/{{DAG_ID}}/{{RUN_ID}}",
     "destination": "dag_run", "url_route": "report"},
    {"name": "Reports", "href": f"{URL_PREFIX.lstrip('/')}/reports", "destination": "nav",
     "url_route": "reports", "nav_top_level": True},
    {"name": "Data quality", "href": f"{URL_PREFIX.lstrip('/')}/quality", "destination": "nav",
     "url_route": "data-quality", "nav_top_level": True},
]


def _requires(param_dag_id: str | None = None) -> Any:
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
    from airflow.api_fastapi.core_api.security import requires_access_dag

    return Depends(requires_access_dag("GET", DagAccessEntity.RUN, param_dag_id=param_dag_id))


def _ui_base() -> str:
    from airflow.configuration import conf

    return urlparse(conf.get("api", "base_url", fallback="") or "").path.rstrip("/")


def _load(dag_id: str, run_id: str) -> ReportRun | None:
    from airflow.utils.session import create_session

    if dag_id != REPORT_DAG_ID:
        return None
    with create_session() as session:
        return get_report_run(session, run_id)


def _outputs(run: ReportRun | None) -> PublishedReport | None:
    if run is None or run.request is None or not run.rendered:
        return None
    return published_report(run.request)


def run_urls(run: ReportRun) -> dict[str, str]:
    base = f"{URL_PREFIX}/runs/{quote(run.dag_id, safe='')}/{quote(run.run_id, safe='')}"
    return {"report": base, "png": f"{base}/chart.png", "thumb": f"{base}/thumb.png",
            "csv": f"{base}/report.csv", "ui": pages.run_ui_url(_ui_base(), run)}


_thumbs: OrderedDict[str, bytes] = OrderedDict()
_thumbs_lock = threading.Lock()


def _thumbnail(report: PublishedReport) -> bytes:
    """A small copy of the chart for the reports page, cached by the chart's checksum."""
    from PIL import Image

    key = report.manifest["files"]["png"]["sha256"]
    with _thumbs_lock:
        if key in _thumbs:
            return _thumbs[key]
    with Image.open(io.BytesIO(report.png)) as image:
        image.thumbnail(THUMB_SIZE)
        buffer = io.BytesIO()
        image.save(buffer, format="PNG", optimize=True)
    with _thumbs_lock:
        _thumbs[key] = buffer.getvalue()
        while len(_thumbs) > 256:
            _thumbs.popitem(last=False)
    return buffer.getvalue()


def create_app() -> FastAPI:
    """The app the plugin mounts; routes are sync so DB and file work runs in FastAPI's threadpool."""
    app = FastAPI(title="taxiflow report views", docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/runs/{dag_id}/{run_id}", response_class=HTMLResponse, dependencies=[_requires()])
    def report_tab(dag_id: str, run_id: str) -> HTMLResponse:
        """The chart, request, total and CSV of one report run, or why it has none yet."""
        if dag_id != REPORT_DAG_ID:
            return HTMLResponse(pages.not_a_report_page(dag_id), status_code=404, headers=_NO_STORE)
        run = _load(dag_id, run_id)
        if run is None:
            raise HTTPException(404, f"{dag_id} has no run {run_id!r}")
        outputs = _outputs(run)
        numbers = read_numbers(outputs) if outputs else None
        notes = [item["note"] for item in outputs.manifest.get("ingest_notes") or []] if outputs else None
        return HTMLResponse(pages.run_page(run, numbers, run_urls(run), notes), headers=_NO_STORE)

    def _file(dag_id: str, run_id: str) -> tuple[ReportRun, PublishedReport]:
        run = _load(dag_id, run_id)
        outputs = _outputs(run)
        if run is None or outputs is None:
            raise HTTPException(404, "no published report for this run")
        return run, outputs

    @app.get("/runs/{dag_id}/{run_id}/chart.png", dependencies=[_requires()])
    def chart(dag_id: str, run_id: str) -> Response:
        """The run's chart."""
        _, outputs = _file(dag_id, run_id)
        return Response(outputs.png, media_type="image/png", headers=_NO_STORE)

    @app.get("/runs/{dag_id}/{run_id}/thumb.png", dependencies=[_requires()])
    def thumb(dag_id: str, run_id: str) -> Response:
        """A thumbnail of the run's chart."""
        _, outputs = _file(dag_id, run_id)
        return Response(_thumbnail(outputs), media_type="image/png", headers=_NO_STORE)

    @app.get("/runs/{dag_id}/{run_id}/report.csv", dependencies=[_requires()])
    def numbers(dag_id: str, run_id: str) -> Response:
        """The numbers behind the chart, as a download named after the report."""
        _, outputs = _file(dag_id, run_id)
        filename = outputs.manifest["files"]["csv"]["name"]
        return Response(outputs.csv, media_type="text/csv", headers={
            **_NO_STORE, "Content-Disposition": f'attachment; filename="{filename}"'})

    @app.get("/reports", response_class=HTMLResponse, dependencies=[_requires(REPORT_DAG_ID)])
    def reports(borough: str | None = Query(None), page: int = Query(1, ge=1, le=100_000)) -> HTMLResponse:
        """Recent reports, newest first, optionally for one borough."""
        from airflow.utils.session import create_session

        if borough == "":
            borough = None
        if borough is not None and borough not in BOROUGHS:
            raise HTTPException(400, f"borough: {borough!r} is not allowed; allowed values: {', '.join(BOROUGHS)}")
        with create_session() as session:
            runs, total = list_report_runs(session, borough=borough, page=page, per_page=PER_PAGE)
        urls = {run.run_id: run_urls(run) for run in runs}
        html = pages.list_page(runs, total, borough, page, PER_PAGE, urls, f"{URL_PREFIX}/reports")
        return HTMLResponse(html, headers=_NO_STORE)

    def _quality(source: str | None, flagged: bool) -> list[QualityRow]:
        from airflow.utils.session import create_session

        if source == "":
            source = None
        if source is not None and source not in SOURCE_NAMES:
            raise HTTPException(400, f"source: {source!r} is not allowed; allowed values: {', '.join(SOURCE_NAMES)}")
        with create_session() as session:
            return select_rows(quality_rows(session), source, flagged)

    @app.get("/quality", response_class=HTMLResponse, dependencies=[_requires(INGEST_DAG_ID)])
    def quality(source: str | None = Query(None), flagged: bool = Query(False)) -> HTMLResponse:
        """Every source × month: figures, ingest state, last refused drop, flags."""
        rows = _quality(source, flagged)
        return HTMLResponse(pages.quality_page(rows, source or None, flagged, f"{URL_PREFIX}/quality"),
                            headers=_NO_STORE)

    @app.get("/quality.json", dependencies=[_requires(INGEST_DAG_ID)])
    def quality_figures(source: str | None = Query(None), flagged: bool = Query(False)) -> JSONResponse:
        """The data quality page's figures, for scripts."""
        return JSONResponse(quality_json(_quality(source, flagged)), headers=_NO_STORE)

    return app
