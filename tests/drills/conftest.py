"""A live deployment to drill on: the same default as ``make run`` (embedded PostgreSQL, LocalExecutor).

``TAXIFLOW_DRILL_DB=sqlite`` runs the drills on SQLite instead (how the "before" figures were taken).
One deployment for the package, in a temporary folder the server's account can enter, with one small
month ingested; it is stopped at the end, and no process of supervisord's session nor of the
database may remain.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from taxiflow.local.supervisor import session_processes
from tests.drills.tooling import bring_up, drill_stack

PROJECT_DIR = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="package")
def drill_deployment():
    root = Path(tempfile.mkdtemp(prefix="taxiflow-drills-"))
    root.chmod(0o711)  # as root, the database runs as nobody and must enter its folder
    stack = drill_stack(root, PROJECT_DIR, metadata_db=os.environ.get("TAXIFLOW_DRILL_DB", "postgres"))
    try:
        bring_up(stack)
        yield stack
    finally:
        sid = stack.supervisord.pid()
        stack.stop()
        left = session_processes(sid) if sid else []
        left += stack.embedded_db.server_processes() if stack.embedded_db else []
        if os.environ.get("TAXIFLOW_KEEP_DRILL_HOME"):
            print(f"drill deployment kept in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
        assert not left, f"processes of the deployment left after stop: {left}"
