"""Show borough reports inside Airflow's UI: a *Report* tab on each run and a *Reports* page.

Thin registration: the pages, file routes and access checks live in ``taxiflow.doors.report_views``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from airflow.plugins_manager import AirflowPlugin

from taxiflow.doors.report_views import EXTERNAL_VIEWS, URL_PREFIX, create_app


class TaxiflowReportViewsPlugin(AirflowPlugin):
    name = "taxiflow_report_views"
    fastapi_apps: ClassVar[list[dict[str, Any]]] = [
        {"app": create_app(), "url_prefix": URL_PREFIX, "name": "taxiflow report views"},
    ]
    external_views: ClassVar[list[dict[str, Any]]] = EXTERNAL_VIEWS
