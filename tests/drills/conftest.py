"""The load and crash drills' deployment: the same default as ``make run`` (embedded PostgreSQL,
LocalExecutor), one for the package (``drill_deployment``), with one small month ingested.

Built by ``tests.support.live``: stopped at the end, and no process of supervisord's session nor of
the database may remain. (tests/drills/test_bad_inputs.py has a deployment of its own, with drops
made before it starts; tests/drills/test_isolated_worker.py one with the Edge executor and its worker
in a network namespace.)
"""

from __future__ import annotations

import pytest

from tests.drills.tooling import DRILL_ENV, ingest_drill_month
from tests.support.live import live_deployment


@pytest.fixture(scope="package")
def drill_deployment():
    with live_deployment("drills", extra_env=DRILL_ENV) as stack:
        ingest_drill_month(stack)
        yield stack
