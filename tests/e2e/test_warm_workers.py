"""The embedded default's scheduler starts warm (taxiflow.local.warm_start) and again after a crash:
its LocalExecutor workers fork with the tasks' libraries imported, and a scheduler that dies is
started again, still warm, by supervisord, while the workers the dead one left are ended."""

from __future__ import annotations

import os
import signal
import time

import psutil
import pytest

from taxiflow.local.leftovers import pid_alive

pytestmark = pytest.mark.e2e

LIBRARIES = ("/pandas/_libs/", "/matplotlib/", "/_duckdb.", "/pyarrow/")


def workers(scheduler: int) -> list[int]:
    """The scheduler's LocalExecutor workers."""
    try:
        children = psutil.Process(scheduler).children()
    except psutil.NoSuchProcess:
        return []
    found = []
    for child in children:
        try:
            if "LocalExecutor" in " ".join(child.cmdline()):
                found.append(child.pid)
        except psutil.NoSuchProcess:
            pass
    return found


def assert_warm(pids: list[int]) -> None:
    for pid in pids:
        mapped = " ".join(m.path for m in psutil.Process(pid).memory_maps())
        for library in LIBRARIES:
            assert library in mapped, (pid, library)


def test_local_executor_workers_hold_the_tasks_libraries_and_a_killed_scheduler_comes_back_without_leaks(
    airflow_stack,
):
    scheduler = airflow_stack.recorded_pids()["scheduler"]
    assert "taxiflow.local.warm_start" in psutil.Process(scheduler).cmdline()
    orphans = workers(scheduler)
    assert orphans, f"no LocalExecutor workers under the scheduler {scheduler}"
    assert_warm(orphans)

    os.kill(scheduler, signal.SIGKILL)  # what an upstream crash (apache/airflow#71923) amounts to
    deadline = time.monotonic() + 180
    again, fresh = None, []
    while time.monotonic() < deadline:
        again = airflow_stack.status()["scheduler"]["pid"]
        fresh = workers(again) if again and again != scheduler else []
        if fresh:
            break
        time.sleep(1)
    assert again != scheduler and fresh, "the killed scheduler was not started again with workers"
    assert_warm(fresh)
    # the dead scheduler's workers (its process group) were ended, not leaked
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and any(pid_alive(pid) for pid in orphans):
        time.sleep(1)
    assert not [pid for pid in orphans if pid_alive(pid)], "the dead scheduler's workers leaked"
    airflow_stack.wait_until_healthy(timeout=180)  # and it heartbeats again
    assert airflow_stack.status()["scheduler"]["running"]
