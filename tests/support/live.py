"""The one live deployment every tier that needs one builds on (e2e, drills, production shape).

``live_deployment(...)`` is a real Airflow deployment on this machine (``taxiflow.local.stack``),
on a free loopback port, in a temporary folder the database's account can enter: migrated, started
under supervisord, healthy and with the DAGs parsed. Each tier's fixture is a thin use of it with
its own settings (users, waits, an external database, files to drop before the start). At the end
it is stopped and removed, and no process of supervisord's session nor of the embedded database may
remain (``TAXIFLOW_KEEP_TEST_HOME=1`` keeps the folder to read its logs).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Generator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from taxiflow.config import INGEST_DAG_ID, METRICS_DAG_ID, REPORT_DAG_ID
from taxiflow.local.leftovers import cluster_processes, session_processes
from taxiflow.local.ports import free_port
from taxiflow.local.stack import AirflowStack

PROJECT_DIR = Path(__file__).resolve().parents[2]
ZONE_TABLE = PROJECT_DIR / "data" / "reference" / "taxi_zone_lookup.csv"
ALL_DAGS = (INGEST_DAG_ID, METRICS_DAG_ID, REPORT_DAG_ID)

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


class LiveStack(AirflowStack):
    """A local deployment with what tests and benchmarks ask of it: its REST API (any method), runs,
    tasks and processes (``make run`` needs only a token, GETs and the wait for the DAGs: ``AirflowStack``)."""

    def api(self, method: str, path: str, body: object | None = None, token: str | None = None) -> tuple[int, Any]:
        """Call ``/api/v2``; returns (status, decoded JSON body) without raising on HTTP errors."""
        request = urllib.request.Request(
            f"{self.base_url}{path}", data=None if body is None else json.dumps(body).encode(), method=method,
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {token or self.token()}"})
        try:
            with urllib.request.urlopen(request, timeout=60) as resp:
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as err:
            payload = err.read()
            try:
                return err.code, json.loads(payload)
            except json.JSONDecodeError:
                return err.code, payload.decode(errors="replace")

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 300) -> dict:
        """Poll a DAG run until it leaves queued/running; returns the run as the API shows it."""
        deadline = time.monotonic() + timeout
        token = self.token()
        run: dict = {}
        while time.monotonic() < deadline:
            status, body = self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id, safe='')}",
                                    token=token)
            if status == 200 and isinstance(body, dict):
                run = body
                if run["state"] in ("success", "failed"):
                    return run
            time.sleep(0.5)  # one GET of the run: cheap next to the seconds a poll interval adds to every wait
        raise TimeoutError(f"{dag_id} run {run_id} still {run.get('state')} after {timeout}s")

    def backfill(self, dag_id: str, first: str, last: str, timeout: float = 300) -> None:
        """``airflow backfill create`` from ``first`` to ``last`` (dates), once the DAG's earlier
        backfill has completed: Airflow runs one backfill per DAG at a time and refuses a second
        (``AlreadyRunningBackfill``) until the scheduler marks the first one completed, which it
        does a moment after the first backfill's last run has finished."""
        deadline = time.monotonic() + timeout
        while True:
            status, body = self.api("GET", f"/api/v2/backfills?dag_id={dag_id}&limit=100")
            assert status == 200, body
            running = [backfill["id"] for backfill in body["backfills"] if not backfill["completed_at"]]
            if not running:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"backfills {running} of {dag_id} still running after {timeout}s")
            time.sleep(1)
        self.airflow("backfill", "create", "--dag-id", dag_id, "--from-date", first, "--to-date", last)

    def wait_for_task(self, dag_id: str, run_id: str, task_id: str, states: set[str], timeout: float = 300) -> str:
        """Poll one task of a run until its state is one of ``states``; returns that state."""
        deadline = time.monotonic() + timeout
        seen = None
        while time.monotonic() < deadline:
            seen = self.task_states(dag_id, run_id).get(task_id)
            if seen in states:
                return seen
            time.sleep(1)
        raise AssertionError(f"{dag_id} {run_id} {task_id} still {seen} after {timeout}s")

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        """task_id -> state for one run."""
        quoted = urllib.parse.quote(run_id, safe="")
        status, body = self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{quoted}/taskInstances?limit=100")
        return {ti["task_id"]: ti["state"] for ti in body["task_instances"]} if status == 200 else {}

    def recorded_pids(self) -> dict[str, int]:
        """Program -> PID of each running program (also its process group id)."""
        return {name: info["pid"] for name, info in self.status().items() if info["pid"]}

    def deployment_pids(self) -> list[int]:
        """Every live process of the deployment: supervisord's session (its programs, their
        children and task processes) and the embedded database's server processes."""
        sid = self.supervisord.pid()
        pids = session_processes(sid) if sid else []
        return sorted(set(pids) | set(cluster_processes(self.embedded_db.data_dir) if self.embedded_db else []))


def make_data_root(root: Path) -> Path:
    """``root`` as a data root holding only the shipped zone table."""
    (root / "reference").mkdir(parents=True, exist_ok=True)
    shutil.copy(ZONE_TABLE, root / "reference")
    return root


def enterable_root(root: Path) -> Path:
    """``root``, created, that every account may enter, and every folder above it: as root, the
    embedded database runs as nobody and must reach its home (a benchmark's work folder may lie
    anywhere, unlike the fresh temporary folders of :func:`live_deployment`)."""
    root.mkdir(parents=True, exist_ok=True)
    for folder in (root, *root.parents):
        if folder.stat().st_mode & 0o011 != 0o011:
            folder.chmod(folder.stat().st_mode | 0o011)
    return root


def api_time(value: str | None) -> float | None:
    """An ``/api/v2`` timestamp (``...Z`` or ``+00:00``) as seconds since the epoch; None stays None."""
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() if value else None


def new_stack(root: Path, data_dir: Path | None = None, project_dir: Path = PROJECT_DIR,
              kind: type[LiveStack] = LiveStack, **settings: Any) -> LiveStack:
    """A deployment in ``root`` (home ``root/home``, data root ``root/data`` unless given), not started."""
    return kind(home=root / "home", project_dir=project_dir,
                data_dir=data_dir or make_data_root(root / "data"), port=free_port(), **settings)


def stop_and_list_leftovers(stack: LiveStack) -> list[int]:
    """Stop the deployment; the PIDs of its processes still alive afterwards (none, if all is well)."""
    sid = stack.supervisord.pid()
    stack.stop()
    left = session_processes(sid) if sid else []
    return left + (cluster_processes(stack.embedded_db.data_dir) if stack.embedded_db else [])


@contextmanager
def live_deployment(name: str, before_start: Callable[[LiveStack], None] | None = None,
                    data_dir: Path | None = None, timeout: float = 300, **settings: Any) -> Generator[LiveStack]:
    """A healthy deployment with the DAGs parsed, in a fresh ``taxiflow-<name>-*`` folder.

    ``settings`` go to :class:`AirflowStack` (``users``, ``roles``, ``extra_env``), or to ``kind``, a
    :class:`LiveStack` with other programs; ``before_start(stack)`` runs after the migration, before any
    process starts.
    """
    root = Path(tempfile.mkdtemp(prefix=f"taxiflow-{name}-"))
    root.chmod(0o711)  # as root, the embedded database runs as nobody and must enter its folder
    stack = new_stack(root, data_dir, **settings)
    try:
        stack.migrate()
        if before_start:
            before_start(stack)
        stack.start()
        stack.wait_until_healthy(ALL_DAGS, timeout=timeout)
        yield stack
    finally:
        left = stop_and_list_leftovers(stack)
        if os.environ.get("TAXIFLOW_KEEP_TEST_HOME"):
            print(f"deployment {name} kept in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    assert not left, f"processes of the deployment {name} left after stop: {left}"
