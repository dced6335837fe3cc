"""Serve Airflow 2's REST ``/api/v1`` for DAG runs (trigger, poll, health) on Airflow 3.

Thin registration: the endpoints, auth and Airflow 2 shapes live in ``taxiflow.doors.api_v1``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from airflow.plugins_manager import AirflowPlugin

from taxiflow.doors.api_v1 import URL_PREFIX, create_app


class TaxiflowApiV1Plugin(AirflowPlugin):
    name = "taxiflow_api_v1"
    fastapi_apps: ClassVar[list[dict[str, Any]]] = [
        {"app": create_app(), "url_prefix": URL_PREFIX, "name": "Airflow 2 REST API (/api/v1) for DAG runs"},
    ]
