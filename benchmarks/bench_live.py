"""Live latency on the embedded default: one real Airflow (SQLite, LocalExecutor) on loopback.

Rows:
* ``trigger -> success`` of an empty one-task DAG (the floor) and of ``borough_report`` on an
  ingested month (median of N CLI triggers each, measured from the trigger command's return to the
  run's ``end_date`` as Airflow records it), and their ratio (goal <= 1.25x);
* what-if, never shipped: ``borough_report``'s three steps in one task (``bench_one_task_report``:
  validate, one look of the real gate, render), against the same floor: the lower bound of any DAG
  shape that really renders, so the gap to 1.25x that is the shape's and the gap that is Airflow's
  show apart (information, no target);
* ``request file -> chart``: a request file written into ``requests/`` until its PNG is on disk
  (median and max over several drops, one at a time, then ten at once); a drop slower than 10 s
  prints what the runs behind it did (tries, queue and run times).

The deployment is ``make run``'s default (embedded PostgreSQL, LocalExecutor) and runs with
``taxiflow.local.stack.LOCAL_AIRFLOW_SETTINGS``;
``--untuned`` measures Airflow's defaults instead, for the before/after table in docs/benchmarks.md.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

from tests.support.live import api_time, enterable_root, new_stack  # root on sys.path: benchmarks/run.py

PROJECT_DIR = Path(__file__).resolve().parents[1]
EMPTY_DAG_ID = "bench_empty"
EMPTY_DAG = f'''"""An empty one-task DAG: the floor any trigger -> success latency is compared with."""
import pendulum
from airflow.sdk import dag, task


@task
def noop():
    """Does nothing."""


@dag(dag_id="{EMPTY_DAG_ID}", schedule=None, start_date=pendulum.datetime(2023, 1, 1, tz="UTC"),
     catchup=False, tags=["bench"], default_args={{"retries": 0}})
def bench_empty():
    noop()


bench_empty()
'''


ONE_TASK_DAG_ID = "bench_one_task_report"
ONE_TASK_DAG = f'''"""What-if, never shipped: borough_report's three tasks as one, the lower bound of its shape."""
import pendulum
from airflow.sdk import Param, dag, get_current_context, task

from taxiflow.reports.params import report_param_schemas


@task
def report_in_one_task(run_id=None):
    """validate_request, one look of wait_for_ingest (the real gate's poke), render_report."""
    from airflow.sdk.exceptions import AirflowFailException

    from taxiflow.components.gates import IngestGateSensor
    from taxiflow.reports.render import render_report
    from taxiflow.reports.request import ReportRequest, check_limits

    context = get_current_context()
    request = check_limits(ReportRequest.from_conf(dict(context["params"])))
    if not IngestGateSensor(task_id="gate").poke(context):
        raise AirflowFailException("the ingest is not done")
    return render_report(request, run_id=run_id).total_trips


@dag(dag_id="{ONE_TASK_DAG_ID}", schedule=None, start_date=pendulum.datetime(2023, 1, 1, tz="UTC"),
     catchup=False, tags=["bench"], default_args={{"retries": 0}},
     params={{name: Param(**schema) for name, schema in report_param_schemas().items()}})
def bench_one_task_report():
    report_in_one_task()


bench_one_task_report()
'''


def _project_copy(work: Path) -> Path:
    """A project folder whose dags/ holds the real DAG files plus the empty DAG; plugins shared."""
    project = work / "project"
    (project / "dags").mkdir(parents=True)
    for dag_file in (PROJECT_DIR / "dags").glob("*.py"):
        (project / "dags" / dag_file.name).symlink_to(dag_file)
    (project / "dags" / f"{EMPTY_DAG_ID}.py").write_text(EMPTY_DAG)
    (project / "plugins").symlink_to(PROJECT_DIR / "plugins")
    return project


def _run_seconds(stack, dag_id: str, run_id: str, started: float) -> float:
    run = stack.wait_for_run(dag_id, run_id, timeout=300)
    if run["state"] != "success":
        raise RuntimeError(f"{dag_id} {run_id} ended {run['state']}: {stack.task_states(dag_id, run_id)}")
    return api_time(run["end_date"]) - started


def _trigger_and_time(stack, dag_id: str, run_id: str, conf: dict | None = None,
                      starts: list | None = None) -> float:
    body = {"logical_date": None, "dag_run_id": run_id, "conf": conf or {}}
    started = time.time()
    if starts is not None:
        starts.append((run_id, started))
    for attempt in range(5):  # SQLite under load can lose a write race (500, rolled back): ask again
        status, answer = stack.api("POST", f"/api/v2/dags/{dag_id}/dagRuns", body)
        if status == 200 or (attempt and status == 409):
            break
        if status != 500:
            raise RuntimeError(f"trigger {dag_id}: {status} {answer}")
        time.sleep(0.5)
    else:
        raise RuntimeError(f"trigger {dag_id}: {status} {answer}")
    return _run_seconds(stack, dag_id, run_id, started)


def _wait_for_report(request, paths, timeout: float = 180) -> float:
    """When the request's chart and CSV are both published (``reports.outputs.published_report``)."""
    from taxiflow.reports.outputs import published_report

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if published_report(request, paths) is not None:
            return time.time()
        time.sleep(0.05)
    raise TimeoutError(f"no published report {request.name} within {timeout}s")


def phases(stack, dag_id: str, run_id: str, started: float) -> dict[str, float]:
    """Where one run's time went, from the times Airflow recorded: trigger -> run running, then per
    task (in the order they ran) waiting to be queued, queued -> running (executor and task start),
    running -> done (the task itself, in its own process), and last task done -> run done."""
    _, run = stack.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")
    _, body = stack.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances")
    tis = sorted(body["task_instances"], key=lambda ti: api_time(ti["start_date"]) or 0)
    out = {"trigger -> run running": api_time(run["start_date"]) - started}
    previous = api_time(run["start_date"])
    for ti in tis:
        queued, start, end = api_time(ti["queued_when"]), api_time(ti["start_date"]), api_time(ti["end_date"])
        if queued is not None:
            out[f"{ti['task_id']}: until queued"] = queued - previous
            out[f"{ti['task_id']}: queued -> running"] = start - queued
        out[f"{ti['task_id']}: running -> done"] = end - start
        previous = end
    out["last task -> run done"] = api_time(run["end_date"]) - previous
    return out


def breakdown_rows(stack, dag_id: str, timed: list[tuple[str, float]], label: str) -> list[dict]:
    """Median of each phase over the timed runs, one row each (information, no target)."""
    per_run = [phases(stack, dag_id, run_id, started) for run_id, started in timed]
    return [{"benchmark": "live", "metric": f"{dag_id} {phase}, median{label}",
             "value": round(statistics.median(run[phase] for run in per_run if phase in run), 2),
             "unit": "s", "target": None, "ok": None} for phase in per_run[0]]


def explain_slow_drop(stack, stem: str, dropped: float) -> None:
    """Print what the runs behind one slow request file did: each report task's tries and times,
    and the ``report_requests`` runs around it (relative to the drop), to tell a retry from a wait."""
    from taxiflow.config import REPORT_DAG_ID, REQUESTS_DAG_ID

    def at(value: str | None) -> str:
        return f"{api_time(value) - dropped:+.1f}s" if value else "-"

    _, runs = stack.api("GET", f"/api/v2/dags/{REPORT_DAG_ID}/dagRuns?run_id_pattern=request__{stem}__%25")
    for run in runs.get("dag_runs", []):
        _, body = stack.api("GET", f"/api/v2/dags/{REPORT_DAG_ID}/dagRuns/{run['dag_run_id']}/taskInstances")
        for ti in body.get("task_instances", []):
            print(f"bench_live:   {ti['task_id']}: try {ti['try_number']}, {ti['state']}, queued "
                  f"{at(ti['queued_when'])}, start {at(ti['start_date'])}, end {at(ti['end_date'])}", flush=True)
    _, scans = stack.api("GET", f"/api/v2/dags/{REQUESTS_DAG_ID}/dagRuns?order_by=-start_date&limit=5")
    for run in scans.get("dag_runs", []):
        print(f"bench_live:   {REQUESTS_DAG_ID} {run['run_type']} {run['state']}: queued {at(run.get('queued_at'))}, "
              f"start {at(run['start_date'])}, end {at(run['end_date'])}", flush=True)


def airflow_defaults(settings: dict[str, str]) -> dict[str, str]:
    """Airflow's shipped default for each ``AIRFLOW__SECTION__KEY`` in ``settings``."""
    from airflow.configuration import conf

    defaults = {}
    for name in settings:
        _, section, key = name.split("__", 2)
        value = conf.get_default_value(section.lower(), key.lower())
        if value is not None:
            defaults[name] = str(value)
    return defaults


def run(work_dir: Path, quick: bool = False, tuned: bool = True, request_files: bool = True) -> list[dict]:
    from taxiflow.config import INGEST_DAG_ID, METRICS_DAG_ID, REPORT_DAG_ID, REQUESTS_DAG_ID, DataPaths
    from taxiflow.demo import trips as demo
    from taxiflow.local.stack import LOCAL_AIRFLOW_SETTINGS
    from taxiflow.reports.request import ReportRequest

    enterable_root(work_dir)
    extra = {"TAXIFLOW_DROP_POKE_INTERVAL": "3", "TAXIFLOW_METRICS_POKE_INTERVAL": "3"}
    if not tuned:  # Airflow's own defaults for every setting LOCAL_AIRFLOW_SETTINGS sets
        extra.update(airflow_defaults(LOCAL_AIRFLOW_SETTINGS))
    project = _project_copy(work_dir)
    (project / "dags" / f"{ONE_TASK_DAG_ID}.py").write_text(ONE_TASK_DAG)
    stack = new_stack(work_dir, project_dir=project, extra_env=extra)
    paths = DataPaths(stack.data_dir)
    runs = 3 if quick else 7
    label = "" if tuned else " (Airflow defaults)"
    rows: list[dict] = []
    stack.migrate()
    stack.start()
    try:
        stack.wait_until_healthy([INGEST_DAG_ID, METRICS_DAG_ID, REPORT_DAG_ID, REQUESTS_DAG_ID, EMPTY_DAG_ID,
                                  ONE_TASK_DAG_ID])
        demo.generate_month("yellow", "2024-01", trips=2000, paths=paths)
        demo.generate_month("green", "2024-01", trips=500, paths=paths)
        stack.airflow("dags", "trigger", INGEST_DAG_ID, "-l", "2024-01-01T00:00:00+00:00")
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            _, body = stack.api("GET", f"/api/v2/dags/{INGEST_DAG_ID}/dagRuns?state=success")
            if body.get("total_entries"):
                break
            time.sleep(2)
        _trigger_and_time(stack, EMPTY_DAG_ID, "warm-up")
        floor_starts: list[tuple[str, float]] = []
        report_starts: list[tuple[str, float]] = []
        floor = [_trigger_and_time(stack, EMPTY_DAG_ID, f"floor-{i}", starts=floor_starts) for i in range(runs)]
        conf = {"borough": "Queens", "start_date": "2024-01-01", "end_date": "2024-01-15"}
        report = [_trigger_and_time(stack, REPORT_DAG_ID, f"bench-{i}", {**conf, "name": f"bench-{i}"},
                                    starts=report_starts)
                  for i in range(runs)]
        one_task = [_trigger_and_time(stack, ONE_TASK_DAG_ID, f"bench-one-{i}", {**conf, "name": f"bench-one-{i}"})
                    for i in range(runs)]
        floor_median, report_median = statistics.median(floor), statistics.median(report)
        one_task_median = statistics.median(one_task)
        rows += [
            {"benchmark": "live", "metric": f"empty DAG trigger -> success, median{label}",
             "value": round(floor_median, 2), "unit": "s", "target": None, "ok": None},
            {"benchmark": "live", "metric": f"{REPORT_DAG_ID} trigger -> success, median{label}",
             "value": round(report_median, 2), "unit": "s", "target": None, "ok": None},
            {"benchmark": "live", "metric": f"report / empty DAG{label}",
             "value": round(report_median / floor_median, 2), "unit": "x", "target": "<= 1.25",
             "ok": report_median / floor_median <= 1.25},
            {"benchmark": "live", "metric": f"what-if: the report as one task, trigger -> success, median{label}",
             "value": round(one_task_median, 2), "unit": "s", "target": None, "ok": None},
            {"benchmark": "live", "metric": f"what-if: one-task report / empty DAG{label}",
             "value": round(one_task_median / floor_median, 2), "unit": "x", "target": None, "ok": None},
            *breakdown_rows(stack, EMPTY_DAG_ID, floor_starts, label),
            *breakdown_rows(stack, REPORT_DAG_ID, report_starts, label),
        ]

        if not request_files:
            return rows
        requests = paths.requests
        requests.mkdir(exist_ok=True)
        single = []
        for i in range(runs):
            stem = f"bench-request-{i}"
            request = ReportRequest.from_conf({**conf, "name": stem})
            started = time.time()
            (requests / f"{stem}.json").write_text(json.dumps(conf))
            single.append(_wait_for_report(request, paths) - started)
            print(f"bench_live: {stem}.json -> chart in {single[-1]:.2f} s", flush=True)
            if single[-1] > 10:
                explain_slow_drop(stack, stem, started)
        burst_started = time.time()
        stems = [f"bench-burst-{i}" for i in range(10)]
        for stem in stems:
            (requests / f"{stem}.json").write_text(json.dumps(conf))
        burst = [_wait_for_report(ReportRequest.from_conf({**conf, "name": stem}), paths) - burst_started
                 for stem in stems]
        rows += [
            {"benchmark": "live", "metric": f"request file -> chart, median of {runs}{label}",
             "value": round(statistics.median(single), 2), "unit": "s", "target": "<= 10",
             "ok": statistics.median(single) <= 10},
            {"benchmark": "live", "metric": f"request file -> chart, max of {runs}{label}",
             "value": round(max(single), 2), "unit": "s", "target": None, "ok": None},
            {"benchmark": "live", "metric": f"10 request files at once -> 10 charts, last{label}",
             "value": round(max(burst), 2), "unit": "s", "target": None, "ok": None},
        ]
    finally:
        stack.stop()
    return rows


if __name__ == "__main__":
    import tempfile

    untuned = "--untuned" in sys.argv
    with tempfile.TemporaryDirectory() as tmp:
        for row in run(Path(tmp) / "live", quick="--quick" in sys.argv, tuned=not untuned,
                       request_files="--no-request-files" not in sys.argv):
            print(row)
