"""The end-to-end tier's deployment: api-server, scheduler, dag-processor, triggerer, log server.

One per package (``airflow_stack``), shared by the modules in alphabetical order, on the same
default as ``make run`` (the embedded PostgreSQL, LocalExecutor): ``tests.support.live``.

Two modules build a deployment of their own, because what they test is set in every process's
environment when it starts: tests/e2e/test_pipeline_s3.py gives every process an ``s3://`` data root
and its storage connection (SeaweedFS on loopback), and checks that the local data folder stays
empty; tests/e2e/test_late_drop_alert.py gives them a 60 s drop alert, a 30-minute drop timeout and an
alerts connection pointing at its own webhook receiver, and leaves ingest runs waiting on purpose
for drops that never come.
"""

from __future__ import annotations

import pytest

from tests.support.live import FAST_WAITS, live_deployment


@pytest.fixture(scope="package")
def airflow_stack():
    with live_deployment("e2e", users={"admin": "admin", "viewer": "viewer"}, roles={"viewer": "viewer"},
                         extra_env=FAST_WAITS) as stack:
        yield stack
