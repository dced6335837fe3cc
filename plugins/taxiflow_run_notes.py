"""Ingest runs carry a note naming the month they ingest (the logic: ``taxiflow.components.run_notes``)."""

from __future__ import annotations

from typing import Any, ClassVar

from airflow.plugins_manager import AirflowPlugin

from taxiflow.components import run_notes


class TaxiflowRunNotesPlugin(AirflowPlugin):
    name = "taxiflow_run_notes"
    listeners: ClassVar[list[Any]] = [run_notes]
