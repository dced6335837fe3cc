"""Do waiting reports delay a ready one? Ten reports wait for data, then one whose data is ready.

On a live local deployment (``taxiflow.local.stack``: api-server, scheduler, dag-processor,
triggerer on a free loopback port, SQLite + LocalExecutor): one month is ingested for both sources
and four months only for green (their yellow drop never comes, so their ingest runs wait). The
ready report is timed from trigger to success on its own, then again after ten reports on the
waiting months are triggered and seen waiting. With ``borough_report``'s old ``max_active_runs=8``
the second figure would have been "queued until the waiting ones time out" (6 h by default).
"""

from __future__ import annotations

import time
import urllib.parse
from pathlib import Path

from taxiflow.config import INGEST_DAG_ID, REPORT_DAG_ID, DataPaths
from taxiflow.demo.trips import generate_month
from taxiflow.local.ports import free_port
from tests.support.live import LiveStack  # the project root is on sys.path (benchmarks/run.py)

PROJECT_DIR = Path(__file__).resolve().parents[1]
READY = "2021-03"
WAITING = ("2020-01", "2020-02", "2020-03", "2020-04")
ENV = {
    "TAXIFLOW_DROP_POKE_INTERVAL": "10",
    "TAXIFLOW_DROP_TIMEOUT": "1800",
    "TAXIFLOW_METRICS_POKE_INTERVAL": "3",
    "TAXIFLOW_REPORT_WAIT_POKE_INTERVAL": "10",
    "TAXIFLOW_REPORT_WAIT_TIMEOUT": "1800",
    "TAXIFLOW_REQUESTS_POLL_SECONDS": "3600",
}


def _row(metric, value, unit, target=None, ok=None) -> dict:
    return {"benchmark": "blocking", "metric": metric, "value": value, "unit": unit, "target": target, "ok": ok}


def _trigger(stack: LiveStack, run_id: str, month: str, days: int = 14) -> None:
    conf = {"borough": "Manhattan", "start_date": f"{month}-01", "end_date": f"{month}-{days:02d}"}
    status, body = stack.api("POST", f"/api/v2/dags/{REPORT_DAG_ID}/dagRuns",
                             {"logical_date": None, "dag_run_id": run_id, "conf": conf})
    if status != 200:
        raise RuntimeError(f"trigger {run_id}: {status} {body}")


def _state(stack: LiveStack, run_id: str) -> str:
    status, run = stack.api("GET", f"/api/v2/dags/{REPORT_DAG_ID}/dagRuns/{urllib.parse.quote(run_id)}")
    return run["state"] if status == 200 else "?"


def _timed_report(stack: LiveStack, run_id: str) -> float:
    started = time.perf_counter()
    _trigger(stack, run_id, READY)
    run = stack.wait_for_run(REPORT_DAG_ID, run_id, timeout=600)
    if run["state"] != "success":
        raise RuntimeError(f"{run_id} ended {run['state']}: {stack.task_states(REPORT_DAG_ID, run_id)}")
    return time.perf_counter() - started


def run(work_dir: Path, quick: bool = False) -> list[dict]:
    work_dir.mkdir(parents=True, exist_ok=True)
    data = DataPaths(work_dir / "data")
    data.reference.mkdir(parents=True)
    shipped = PROJECT_DIR / "data" / "reference" / "taxi_zone_lookup.csv"
    (data.reference / "taxi_zone_lookup.csv").write_bytes(shipped.read_bytes())
    trips = 2_000 if quick else 20_000
    for source in ("yellow", "green"):
        generate_month(source, READY, trips, paths=data)
    for month in WAITING:
        generate_month("green", month, trips, paths=data)
    stack = LiveStack(home=work_dir / "home", project_dir=PROJECT_DIR, data_dir=data.root,
                         port=free_port(), extra_env=ENV)
    stack.migrate()
    stack.start()
    try:
        stack.wait_until_healthy([INGEST_DAG_ID, REPORT_DAG_ID])
        for month in (*WAITING, READY):
            stack.airflow("dags", "trigger", INGEST_DAG_ID, "-l", f"{month}-01T00:00:00+00:00", "-r", f"bench_{month}")
        if stack.wait_for_run(INGEST_DAG_ID, f"bench_{READY}", timeout=900)["state"] != "success":
            raise RuntimeError(f"ingest of {READY} failed: {stack.task_states(INGEST_DAG_ID, f'bench_{READY}')}")
        _timed_report(stack, "bench_warmup")
        alone = [_timed_report(stack, f"bench_alone_{i}") for i in range(2)]

        waiting = [f"bench_waiting_{i}" for i in range(10)]
        for i, run_id in enumerate(waiting):
            _trigger(stack, run_id, WAITING[i % len(WAITING)], days=10)
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            gates = [stack.task_states(REPORT_DAG_ID, run_id).get("wait_for_ingest") for run_id in waiting]
            if all(g == "up_for_reschedule" for g in gates):
                break
            time.sleep(2)
        behind = [_timed_report(stack, f"bench_behind_{i}") for i in range(2)]
        still_waiting = sum(_state(stack, run_id) == "running" for run_id in waiting)
    finally:
        stack.stop()
    alone_s, behind_s = min(alone), min(behind)
    return [
        _row("ready report alone, trigger to success", round(alone_s, 1), "s"),
        _row("ready report behind 10 waiting reports", round(behind_s, 1), "s"),
        _row("behind / alone", round(behind_s / alone_s, 2), "x", "< 2 (not queued)", behind_s / alone_s < 2),
        _row("waiting reports still waiting afterwards", still_waiting, "runs", "10", still_waiting == 10),
    ]
