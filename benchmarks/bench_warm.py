"""Benchmark: what the warm scheduler (``taxiflow.local.warm_start``) saves a report on a live deployment.

Setup (not timed): ``make run``'s default on free loopback ports in a scratch folder (embedded
PostgreSQL, LocalExecutor, supervisord), one small month ingested (``tests/drills/tooling.py``), one
report as a warm-up. Timed: N reports one at a time (``/api/v2`` trigger until the run is a success),
once with the scheduler started warm (its LocalExecutor workers fork with pandas, DuckDB, PyArrow and
matplotlib imported) and once as the plain ``airflow scheduler`` (``TAXIFLOW_WARM_START=0``).
Rows: the median report time each way and the gain; the warm start is kept only for a gain of 30 %
or more (issue 20).
"""

from __future__ import annotations

import shutil
import statistics
from pathlib import Path
from typing import Any

from tests.drills.tooling import DRILL_ENV, bring_up, drill_stack, report_alone  # root on sys.path: run.py

PROJECT_DIR = Path(__file__).resolve().parents[1]
BENCHMARK = "warm"
KEEP_FOR_GAIN = 0.30


def row(metric: str, value: Any, unit: str = "", target: Any = None, ok: bool | None = None) -> dict:
    return {"benchmark": BENCHMARK, "metric": metric, "value": value, "unit": unit, "target": target, "ok": ok}


def reports(work_dir: Path, warm: bool, n: int) -> list[float]:
    """Seconds of each of ``n`` reports, one at a time, on a fresh deployment."""
    root = work_dir / ("warm" if warm else "cold")
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    for folder in (root, *root.parents):  # as root, the embedded database runs as nobody
        if folder == Path("/"):
            break
        folder.chmod(folder.stat().st_mode | 0o111)
    stack = drill_stack(root, PROJECT_DIR)
    stack.extra_env = {**DRILL_ENV, "TAXIFLOW_WARM_START": "1" if warm else "0"}
    try:
        bring_up(stack)
        report_alone(stack, "warm-up")
        return [report_alone(stack, f"alone-{i}") for i in range(n)]
    finally:
        stack.stop()


def run(work_dir: Path, quick: bool = False) -> list[dict]:
    n = 3 if quick else 7
    warm, cold = reports(work_dir, True, n), reports(work_dir, False, n)
    gain = 1 - statistics.median(warm) / statistics.median(cold)
    return [
        row("report alone, warm scheduler (median)", round(statistics.median(warm), 2), "s"),
        row("report alone, plain airflow scheduler (median)", round(statistics.median(cold), 2), "s"),
        row("all times warm / plain", f"{[round(t, 2) for t in warm]} / {[round(t, 2) for t in cold]}", "s"),
        row("gain of the warm start", round(100 * gain, 1), "%", target=f">= {100 * KEEP_FOR_GAIN:.0f}",
            ok=gain >= KEEP_FOR_GAIN),
    ]
