"""The embedded default's LocalExecutor workers fork from a warm scheduler (taxiflow.local.warm_start)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e


def children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def mapped_libraries(pid: int) -> str:
    return (Path("/proc") / str(pid) / "maps").read_text()


def test_local_executor_workers_hold_the_tasks_libraries_before_any_task_runs(airflow_stack):
    scheduler = airflow_stack.recorded_pids()["scheduler"]
    cmdline = (Path("/proc") / str(scheduler) / "cmdline").read_bytes().split(b"\0")
    assert b"taxiflow.local.warm_start" in cmdline, cmdline
    workers = [pid for pid in children(scheduler)
               if b"LocalExecutor" in (Path("/proc") / str(pid) / "cmdline").read_bytes()]
    assert workers, f"no LocalExecutor worker under scheduler {scheduler}"
    for pid in workers:
        maps = mapped_libraries(pid)
        for library in ("/pandas/_libs/", "/matplotlib/", "/_duckdb.", "/pyarrow/"):
            assert library in maps, (pid, library)
