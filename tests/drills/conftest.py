"""The load and crash drills' deployment: the same default as ``make run`` (embedded PostgreSQL,
LocalExecutor), one for the package (``drill_deployment``), with one small month ingested.

``TAXIFLOW_DRILL_DB=sqlite`` runs the drills on SQLite instead (how the "before" figures were taken).
Built by ``tests.support.live``: stopped at the end, and no process of supervisord's session nor of
the database may remain. (tests/drills/test_bad_inputs.py has a deployment of its own, with drops
made before it starts.)
"""

from __future__ import annotations

import os

import pytest

from tests.drills.tooling import DRILL_ENV, ingest_drill_month
from tests.support.live import live_deployment


@pytest.fixture(scope="package")
def drill_deployment():
    with live_deployment("drills", metadata_db=os.environ.get("TAXIFLOW_DRILL_DB", "postgres"),
                         extra_env=DRILL_ENV) as stack:
        ingest_drill_month(stack)
        yield stack
