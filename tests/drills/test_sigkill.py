"""The SIGKILL drill: kill each component with SIGKILL while reports are in flight.

supervisord starts the killed component again on its own (no ``make run``, no ``make stop``), its
log says so, and nothing of the killed process's group is left (a dead scheduler's LocalExecutor
workers included); the runs in flight finish, retried where their task was killed, with the same
numbers as a report run alone, with no hand: a killed task is retried (``borough_report`` gives
each task 3 retries). Killing PostgreSQL also restarts the scheduler, dag-processor and triggerer
(they do not survive losing it).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from taxiflow.config import REPORT_DAG_ID, DataPaths
from taxiflow.local import cli
from taxiflow.local.leftovers import cluster_processes, pid_alive
from taxiflow.local.stack import DATABASE_COMPONENT
from taxiflow.reports.outputs import read_manifest
from tests.drills.tooling import chart_numbers, report_alone, report_conf, run_states

pytestmark = [pytest.mark.e2e, pytest.mark.drills]


def wait_dead(pid: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return
        time.sleep(0.2)
    raise TimeoutError(f"pid {pid} still alive after SIGKILL")


def group_members(pgid: int) -> list[int]:
    """Live processes of process group ``pgid`` (a supervisord program's group id is its pid)."""
    found = []
    for pid in psutil.pids():
        with contextlib.suppress(OSError):
            if os.getpgid(pid) == pgid and pid_alive(pid):
                found.append(pid)
    return found


def wait_restarted(stack, component: str, old_pid: int, timeout: float = 120) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = stack.status().get(component, {})
        if info.get("running") and info["pid"] != old_pid:
            return info["pid"]
        time.sleep(0.5)
    raise TimeoutError(f"{component} not started again within {timeout}s: {stack.status()}")


def test_each_component_killed_is_started_again_by_supervisord_and_leaves_nothing(drill_deployment, capsys):
    stack = drill_deployment
    if read_manifest("alone", DataPaths(stack.data_dir)) is None:
        report_alone(stack, "alone")
    alone = chart_numbers(stack.data_dir, "alone")
    in_flight = []
    only = os.environ.get("TAXIFLOW_DRILL_COMPONENTS")  # e.g. "postgres,scheduler" to drill just those
    for component in [c for c in stack.all_components() if not only or c in only.split(",")]:
        for n in range(3):  # a few runs a moment apart, so the kill meets them at different tasks
            run_id = f"sigkill-{component}-{n}"
            status, body = stack.api("POST", f"/api/v2/dags/{REPORT_DAG_ID}/dagRuns",
                                     {"dag_run_id": run_id, "logical_date": None, "conf": report_conf(run_id)})
            assert status == 200, body
            in_flight.append(run_id)
            time.sleep(0.4)
        time.sleep(1)  # let them get going

        pid = stack.recorded_pids()[component]
        os.kill(pid, signal.SIGKILL)
        wait_dead(pid)
        wait_restarted(stack, component, pid)
        log = (stack.logs_dir / "supervisord.log").read_text()
        assert f"exited: {component} (terminated by SIGKILL; not expected)" in log

        stack.wait_until_healthy(timeout=300)
        assert cli.up(stack, demo=False) == 0  # nothing for make run to do
        assert "already running" in capsys.readouterr().out
        ctl = subprocess.run([str(Path(sys.executable).with_name("supervisorctl")), "-c",  # make status
                              str(stack.supervisord.config), "status"], capture_output=True, text=True, timeout=60)
        lines = {line.split()[0].rpartition(":")[2]: line for line in ctl.stdout.splitlines()}
        assert ctl.returncode == 0, ctl.stdout + ctl.stderr
        assert "RUNNING" in lines[component] and f"pid {pid}," not in lines[component], lines
        if component != DATABASE_COMPONENT:
            deadline = time.monotonic() + 30
            while group_members(pid) and time.monotonic() < deadline:
                time.sleep(0.5)
            assert group_members(pid) == [], f"{component}'s process group outlived it: {group_members(pid)}"
        else:
            assert all(p != pid for p in cluster_processes(stack.embedded_db.data_dir))

    states = run_states(stack, in_flight, timeout=600)
    tries = {run_id: max(ti["try_number"] for ti in stack.api(
        "GET", f"/api/v2/dags/{REPORT_DAG_ID}/dagRuns/{run_id}/taskInstances")[1]["task_instances"])
        for run_id in in_flight}
    print(f"most tries a task of each in-flight run took: {tries}")
    # No hand: every run in flight finishes on its own (a killed task is retried).
    assert set(states.values()) == {"success"}, (states, tries)
    for run_id in in_flight:
        assert chart_numbers(stack.data_dir, run_id) == alone, run_id
