"""Airflow settings for the embedded default (``make run``), merged into every process's environment.

``AIRFLOW__*`` name -> value; :class:`taxiflow.local.stack.AirflowStack` applies them after its own
defaults and before a caller's ``extra_env``.
"""

from __future__ import annotations

LOCAL_AIRFLOW_SETTINGS: dict[str, str] = {}
