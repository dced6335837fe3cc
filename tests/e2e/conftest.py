"""A real Airflow deployment for end-to-end tests: api-server, scheduler, dag-processor, triggerer.

One per test session, on a free loopback port, with a temporary AIRFLOW_HOME and data root, on the
same default as ``make run`` (the embedded PostgreSQL, LocalExecutor). The processes are stopped
by their sessions when the session ends, whatever happened.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from taxiflow.config import INGEST_DAG_ID, METRICS_DAG_ID, REPORT_DAG_ID
from taxiflow.local.stack import AirflowStack, free_port

PROJECT_DIR = Path(__file__).resolve().parents[2]

# Short waits so the suite runs in minutes; production defaults are in the DAG docs.
FAST_WAITS = {
    "TAXIFLOW_DROP_POKE_INTERVAL": "3",
    "TAXIFLOW_DROP_TIMEOUT": "60",
    "TAXIFLOW_METRICS_POKE_INTERVAL": "3",
    "TAXIFLOW_REPORT_WAIT_POKE_INTERVAL": "3",
    "TAXIFLOW_REPORT_WAIT_TIMEOUT": "120",
    "TAXIFLOW_REQUESTS_POLL_SECONDS": "3600",  # the file watcher must do the work alone
    "TAXIFLOW_DUCKDB_MEMORY_LIMIT": "1GB",
    "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": "300",
}


def make_data_root(root: Path) -> Path:
    (root / "reference").mkdir(parents=True, exist_ok=True)
    shutil.copy(PROJECT_DIR / "data" / "reference" / "taxi_zone_lookup.csv", root / "reference")
    return root


@pytest.fixture(scope="package")
def airflow_stack(tmp_path_factory):
    home_root = Path(tempfile.mkdtemp(prefix="taxiflow-e2e-"))
    home_root.chmod(0o711)  # as root, the embedded database runs as nobody and must enter its folder
    stack = AirflowStack(
        home=home_root / "home",
        project_dir=PROJECT_DIR,
        data_dir=make_data_root(tmp_path_factory.mktemp("data")),
        port=free_port(),
        users={"admin": "admin", "viewer": "viewer"},
        roles={"viewer": "viewer"},
        extra_env=FAST_WAITS,
    )
    stack.migrate()
    stack.start()
    try:
        stack.wait_until_healthy()
        stack.wait_for_dags([INGEST_DAG_ID, METRICS_DAG_ID, REPORT_DAG_ID])
        yield stack
    finally:
        stack.stop()
        shutil.rmtree(home_root, ignore_errors=True)
