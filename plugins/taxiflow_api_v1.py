"""Serve Airflow 2's REST ``/api/v1`` for DAG runs (trigger, poll, health) on Airflow 3, and guard
``/api/v2`` (run-id length limit; a busy database answers 503 + Retry-After instead of 500).

Thin registration: the logic lives in ``taxiflow.doors.api_v1`` and ``taxiflow.doors.core_guard``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from airflow.plugins_manager import AirflowPlugin

from taxiflow.doors.api_v1 import URL_PREFIX, create_app
from taxiflow.doors.core_guard import CoreApiGuard


class TaxiflowApiV1Plugin(AirflowPlugin):
    """``/api/v1`` as a FastAPI sub-app; the ``/api/v2`` guard as a root middleware."""

    name = "taxiflow_api_v1"
    fastapi_apps: ClassVar[list[dict[str, Any]]] = [
        {"app": create_app(), "url_prefix": URL_PREFIX, "name": "Airflow 2 REST API (/api/v1) for DAG runs"},
    ]
    fastapi_root_middlewares: ClassVar[list[dict[str, Any]]] = [
        {"middleware": CoreApiGuard, "args": [], "kwargs": {}, "name": "taxiflow /api/v2 guard"},
    ]
