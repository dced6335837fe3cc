"""Benchmark: what the warm scheduler (``taxiflow.local.warm_start``) saves a report on a live deployment.

Setup (not timed): ``make run``'s default on free loopback ports in a scratch folder (embedded
PostgreSQL, LocalExecutor, supervisord), one small month ingested (``tests/drills/tooling.py``), one
report as a warm-up. Timed: N reports one at a time, once with the scheduler started warm (its LocalExecutor workers
fork with pandas, DuckDB, PyArrow and matplotlib imported) and once as the plain ``airflow
scheduler`` (``TAXIFLOW_WARM_START=0``), each as Airflow records it: the run from ``queued_at`` to
``end_date``, and the sum of its tasks' durations (where imports are paid). Rows: the medians each
way and the gains; the warm start is kept only for a gain of 30 % or more (issue 20).
"""

from __future__ import annotations

import shutil
import statistics
from datetime import datetime
from pathlib import Path
from typing import Any

from taxiflow.config import REPORT_DAG_ID
from tests.drills.tooling import DRILL_ENV, bring_up, drill_stack, report_alone  # root on sys.path: run.py

BENCHMARK = "warm"
KEEP_FOR_GAIN = 0.30


def row(metric: str, value: Any, unit: str = "", target: Any = None, ok: bool | None = None) -> dict:
    return {"benchmark": BENCHMARK, "metric": metric, "value": value, "unit": unit, "target": target, "ok": ok}


def timed_report(stack: Any, name: str) -> tuple[float, float]:
    """One report alone: (seconds from queued to end, seconds its tasks ran in all), as Airflow recorded them."""
    report_alone(stack, name)
    _status, run = stack.api("GET", f"/api/v2/dags/{REPORT_DAG_ID}/dagRuns/{name}")
    _status, tis = stack.api("GET", f"/api/v2/dags/{REPORT_DAG_ID}/dagRuns/{name}/taskInstances")
    seconds = (datetime.fromisoformat(run["end_date"]) - datetime.fromisoformat(run["queued_at"])).total_seconds()
    return seconds, sum(ti["duration"] or 0.0 for ti in tis["task_instances"])


def reports(work_dir: Path, warm: bool, n: int) -> list[tuple[float, float]]:
    """(run seconds, task seconds) of each of ``n`` reports, one at a time, on a fresh deployment."""
    root = work_dir / ("warm" if warm else "cold")
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    for folder in (root, *root.parents):  # as root, the embedded database runs as nobody
        if folder == Path("/"):
            break
        folder.chmod(folder.stat().st_mode | 0o111)
    stack = drill_stack(root)
    stack.extra_env = {**DRILL_ENV, "TAXIFLOW_WARM_START": "1" if warm else "0"}
    try:
        bring_up(stack)
        report_alone(stack, "warm-up")
        return [timed_report(stack, f"alone-{i}") for i in range(n)]
    finally:
        stack.stop()


def run(work_dir: Path, quick: bool = False) -> list[dict]:
    n = 3 if quick else 7
    warm, plain = reports(work_dir, True, n), reports(work_dir, False, n)
    rows = []
    for i, what in enumerate(("run (queued -> end)", "its tasks' durations summed")):
        w, p = statistics.median(t[i] for t in warm), statistics.median(t[i] for t in plain)
        gain = 1 - w / p
        rows += [
            row(f"report {what}, warm scheduler (median of {n})", round(w, 2), "s"),
            row(f"report {what}, plain airflow scheduler (median of {n})", round(p, 2), "s"),
            row(f"gain of the warm start: report {what}", round(100 * gain, 1), "%",
                target=f">= {100 * KEEP_FOR_GAIN:.0f}", ok=gain >= KEEP_FOR_GAIN),
        ]
    return rows
