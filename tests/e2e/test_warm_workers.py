"""The embedded default's scheduler starts warm and again after a crash (taxiflow.local.warm_start):
its LocalExecutor workers fork with the tasks' libraries imported, and a scheduler that dies is
forked again, still warm, by the launcher whose PID the deployment records."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from taxiflow.local.processes import alive, children

pytestmark = pytest.mark.e2e

LIBRARIES = ("/pandas/_libs/", "/matplotlib/", "/_duckdb.", "/pyarrow/")


def cmdline(pid: int) -> bytes:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes()
    except OSError:
        return b""


def scheduler_and_workers(launcher: int) -> tuple[int | None, list[int]]:
    """The scheduler the launcher forked, and that scheduler's LocalExecutor workers."""
    for child in children(launcher):
        workers = [pid for pid in children(child) if b"LocalExecutor" in cmdline(pid)]
        if workers:
            return child, workers
    return None, []


def assert_warm(workers: list[int]) -> None:
    for pid in workers:
        maps = (Path("/proc") / str(pid) / "maps").read_text()
        for library in LIBRARIES:
            assert library in maps, (pid, library)


def test_local_executor_workers_hold_the_tasks_libraries_and_a_killed_scheduler_comes_back_without_leaks(
    airflow_stack,
):
    launcher = airflow_stack.recorded_pids()["scheduler"]
    assert b"taxiflow.local.warm_start" in cmdline(launcher).split(b"\0"), cmdline(launcher)
    scheduler, workers = scheduler_and_workers(launcher)
    assert scheduler and workers, f"no scheduler with LocalExecutor workers under {launcher}"
    assert_warm(workers)

    orphans = workers
    os.kill(scheduler, signal.SIGKILL)  # what an upstream crash (apache/airflow#71923) amounts to
    deadline = time.monotonic() + 180
    again, workers = None, []
    while time.monotonic() < deadline:
        again, workers = scheduler_and_workers(launcher)
        if again and again != scheduler:
            break
        time.sleep(1)
    assert again and again != scheduler, "the killed scheduler was not started again"
    assert_warm(workers)
    # the dead scheduler's idle workers were inherited by the launcher and ended, not leaked
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and any(alive(pid) for pid in orphans):
        time.sleep(1)
    assert not [pid for pid in orphans if alive(pid)], "the dead scheduler's workers leaked"
    airflow_stack.wait_until_healthy(timeout=180)  # and it heartbeats again
    assert airflow_stack.status()["scheduler"]["running"]
