"""The note that names the month an ingest run ingests (``taxiflow.components.run_notes``)."""

from __future__ import annotations

import pendulum

from taxiflow.components.run_notes import ingest_run_note


def test_the_note_names_the_month_of_the_logical_date_not_the_run_after():
    december = pendulum.datetime(2023, 12, 1, tz="UTC")  # its run id says backfill__2024-01-01...
    assert ingest_run_note(december, ("yellow", "green")) == "Ingests 2023-12 (December 2023): yellow, green"


def test_a_run_without_a_month_gets_no_note():
    assert ingest_run_note(None, ("yellow",)) is None  # a manual run without a logical date fails anyway
    assert ingest_run_note(pendulum.datetime(2023, 12, 5, tz="UTC"), ("yellow",)) is None
