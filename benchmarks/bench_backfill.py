"""A year's backfill on the embedded default: 12 months x 2 sources, wall time against compute time.

Synthetic months of realistic size (TLC's parquet schema, ``taxiflow.demo``: yellow 3M trips a
month, green 65k, as TLC's 2023 files; ``quick``: 300k and 10k) are dropped for 2023-01..12, then
``airflow backfill create`` ingests them on a live deployment with ``make run``'s settings and the
DAGs' own defaults (no shortened waits). Rows:

* wall time: backfill created -> the last ingest run done (every month's metrics done with it);
* compute time: the sum of every task's running time that does work (``wait_for_*`` pokes,
  ``copy_to_raw_*``, ``process_*``, ``name_run``, ``pick_source``, ``build_metrics_*``,
  ``write_weekly_summary``);
  the ``trigger_create_metrics_*`` tasks only wait for their ``create_metrics`` run (deferred,
  holding no slot) and are where latency, not work, goes;
* their ratio, wall / compute (goal <= 2x). Runs overlap (ten at once), so it can be below 1;
* per run (medians): an ingest run's wall time (start -> end) and its own compute (its tasks and
  those of the two ``create_metrics`` runs it waits for); a ``create_metrics`` run's wall time
  (queued -> end) and its tasks' compute; where the rest went: queued -> running, and the trigger
  tasks' wait beyond their ``create_metrics`` run; and how many runs' notes name their month.

    .venv/bin/python benchmarks/bench_backfill.py [--quick]
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

from tests.support.live import api_time, enterable_root, new_stack  # root on sys.path: benchmarks/run.py

MONTHS = [f"2023-{month:02d}" for month in range(1, 13)]
TRIPS = {"yellow": 3_000_000, "green": 65_000}
QUICK_TRIPS = {"yellow": 300_000, "green": 10_000}
WAITING_TASK_PREFIX = "trigger_create_metrics_"
TARGET_RATIO = 2.0


def _task_instances(stack, dag_id: str, run_id: str) -> list[dict]:
    import urllib.parse

    quoted = urllib.parse.quote(run_id, safe="")
    status, body = stack.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{quoted}/taskInstances?limit=100")
    if status != 200:
        raise RuntimeError(f"task instances of {dag_id} {run_id}: {status} {body}")
    return body["task_instances"]


def _busy(ti: dict) -> float:
    start, end = api_time(ti["start_date"]), api_time(ti["end_date"])
    return end - start if start is not None and end is not None else 0.0


def _wait_for_backfill(stack, dag_id: str, runs: int, timeout: float) -> list[dict]:
    """Every run of the backfill, once all ``runs`` of them have finished."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _, body = stack.api("GET", f"/api/v2/dags/{dag_id}/dagRuns?run_type=backfill&limit=100")
        found = body.get("dag_runs", [])
        if len(found) >= runs and all(run["state"] in ("success", "failed") for run in found):
            return found
        time.sleep(1)
    raise TimeoutError(f"the backfill of {dag_id} did not finish within {timeout} s")


def run(work_dir: Path, quick: bool = False) -> list[dict]:
    from taxiflow.config import INGEST_DAG_ID, METRICS_DAG_ID, DataPaths, Partition
    from taxiflow.demo import trips as demo

    stack = new_stack(enterable_root(work_dir))
    paths = DataPaths(stack.data_dir)
    trips = QUICK_TRIPS if quick else TRIPS
    started = time.perf_counter()
    for month in MONTHS:
        for source, count in trips.items():
            demo.generate_month(source, month, trips=count, seed=int(month[5:]), paths=paths)
    print(f"bench_backfill: 12 months x 2 sources dropped in {time.perf_counter() - started:.0f} s", flush=True)

    stack.migrate()
    stack.start()
    try:
        stack.wait_until_healthy([INGEST_DAG_ID, METRICS_DAG_ID])
        created = time.time()
        stack.airflow("backfill", "create", "--dag-id", INGEST_DAG_ID,
                      "--from-date", f"{MONTHS[0]}-01", "--to-date", f"{MONTHS[-1]}-01")
        runs = _wait_for_backfill(stack, INGEST_DAG_ID, len(MONTHS), timeout=3600)
        failed = [run["dag_run_id"] for run in runs if run["state"] != "success"]
        if failed:
            raise RuntimeError(f"backfill runs failed: {failed}: "
                               f"{[stack.task_states(INGEST_DAG_ID, run_id) for run_id in failed]}")
        wall = max(api_time(run["end_date"]) for run in runs) - created

        compute, queued_to_running, beyond_metrics, run_walls, run_computes, notes = 0.0, [], [], [], [], []
        metrics_walls, metrics_computes = [], []
        for ingest_run in runs:
            run_walls.append(api_time(ingest_run["end_date"]) - api_time(ingest_run["start_date"]))
            notes.append(ingest_run.get("note") or "")
            compute_before_run = compute
            for ti in _task_instances(stack, INGEST_DAG_ID, ingest_run["dag_run_id"]):
                if ti["queued_when"] and ti["start_date"]:
                    queued_to_running.append(api_time(ti["start_date"]) - api_time(ti["queued_when"]))
                if not ti["task_id"].startswith(WAITING_TASK_PREFIX):
                    compute += _busy(ti)
                    continue
                source = ti["task_id"].removeprefix(WAITING_TASK_PREFIX)
                month = f"{ingest_run['logical_date'][:7]}"
                metrics_run_id = Partition(source, month).metrics_run_id
                metrics_tis = _task_instances(stack, METRICS_DAG_ID, metrics_run_id)
                metrics_computes.append(sum(_busy(m) for m in metrics_tis))
                compute += metrics_computes[-1]
                _, metrics_run = stack.api("GET", f"/api/v2/dags/{METRICS_DAG_ID}/dagRuns/{metrics_run_id}")
                metrics_wall = api_time(metrics_run["end_date"]) - api_time(metrics_run["queued_at"])
                metrics_walls.append(metrics_wall)
                beyond_metrics.append(_busy(ti) - metrics_wall)
            run_computes.append(compute - compute_before_run)
        ratio = wall / compute
        run_ratios = [run_wall / run_compute for run_wall, run_compute in zip(run_walls, run_computes, strict=True)]
        metrics_ratios = [m_wall / m_compute for m_wall, m_compute in zip(metrics_walls, metrics_computes, strict=True)]
        named = sum(1 for run, note in zip(runs, notes, strict=True)
                    if note.startswith(f"Ingests {run['logical_date'][:7]} "))
        label = " (quick)" if quick else ""
        rows = [
            {"benchmark": "backfill", "metric": f"12 months x 2 sources: wall time{label}",
             "value": round(wall, 1), "unit": "s", "target": None, "ok": None},
            {"benchmark": "backfill", "metric": f"sum of the tasks' compute time{label}",
             "value": round(compute, 1), "unit": "s", "target": None, "ok": None},
            {"benchmark": "backfill", "metric": f"wall / compute{label}",
             "value": round(ratio, 2), "unit": "x", "target": f"<= {TARGET_RATIO:g}", "ok": ratio <= TARGET_RATIO},
            {"benchmark": "backfill", "metric": f"an ingest run's wall time, median{label}",
             "value": round(statistics.median(run_walls), 1), "unit": "s", "target": None, "ok": None},
            {"benchmark": "backfill", "metric": f"an ingest run's own compute (with its metrics runs), median{label}",
             "value": round(statistics.median(run_computes), 1), "unit": "s", "target": None, "ok": None},
            {"benchmark": "backfill", "metric": f"an ingest run's wall time / its own compute, median{label}",
             "value": round(statistics.median(run_ratios), 2), "unit": "x", "target": None, "ok": None},
            {"benchmark": "backfill", "metric": f"a create_metrics run queued -> done, median{label}",
             "value": round(statistics.median(metrics_walls), 2), "unit": "s", "target": None, "ok": None},
            {"benchmark": "backfill", "metric": f"a create_metrics run's tasks' compute, median{label}",
             "value": round(statistics.median(metrics_computes), 2), "unit": "s", "target": None, "ok": None},
            {"benchmark": "backfill", "metric": f"a create_metrics run's wall time / its compute, median{label}",
             "value": round(statistics.median(metrics_ratios), 2), "unit": "x", "target": None, "ok": None},
            {"benchmark": "backfill", "metric": f"a task's queued -> running, median{label}",
             "value": round(statistics.median(queued_to_running), 2), "unit": "s", "target": None, "ok": None},
            {"benchmark": "backfill", "metric": f"trigger_create_metrics: wait beyond its metrics run, median{label}",
             "value": round(statistics.median(beyond_metrics), 2), "unit": "s", "target": None, "ok": None},
            {"benchmark": "backfill", "metric": "runs whose note names the month they ingest",
             "value": named, "unit": f"of {len(runs)}", "target": f"= {len(runs)}", "ok": named == len(runs)},
        ]
    finally:
        stack.stop()
    return rows


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        for row in run(Path(tmp) / "backfill", quick="--quick" in sys.argv):
            print(row)
