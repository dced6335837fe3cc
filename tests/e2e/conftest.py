"""The end-to-end tier's deployment: api-server, scheduler, dag-processor, triggerer, log server.

One per package (``airflow_stack``), shared by the modules in alphabetical order, on the same
default as ``make run`` (the embedded PostgreSQL, LocalExecutor): ``tests.support.live``.
"""

from __future__ import annotations

import pytest

from tests.support.live import FAST_WAITS, live_deployment


@pytest.fixture(scope="package")
def airflow_stack():
    with live_deployment("e2e", users={"admin": "admin", "viewer": "viewer"}, roles={"viewer": "viewer"},
                         extra_env=FAST_WAITS) as stack:
        yield stack
