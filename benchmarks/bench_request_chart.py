"""Benchmark: a request file -> its chart, on a live deployment, with the data on local disk and in S3.

For each backend, one live deployment (``make run``'s settings, ``tests.support.live``; the file
watcher alone, the safety-net poll an hour away) with one month dropped and ingested by an
``ingest_taxi_trips`` run; then ``RUNS`` request files written one at a time into ``requests/`` (a
local file, or an object in the bucket), each timed from just before it is written until its report
is readable through its manifest (``reports.outputs.published_report``: manifest, PNG and CSV).
Median of the runs.

**Where the time goes**, per request file, from the times Airflow recorded (same clock: one
machine), in consecutive phases that add up to the total: the watcher (file written -> the asset
event the triggerer's ``RequestFilesTrigger`` fired), scheduling the ``report_requests`` run (asset
event -> run started), the scan (run started -> its ``borough_report`` run queued: scan, claim,
``trigger_report``), ``validate_request``, the gate (``wait_for_ingest``), ``render_report``
(queued -> done: query, draw, publish) and the bench's reader seeing the manifest (negative when the
manifest lands before the task has finished). The query and the drawing+publishing are also timed
in this process, warm (``report_counts``, ``write_report_files``), for the same request.

**Peak RSS** of the processes that do the work: a sampler reads ``/proc/<pid>/status`` of every
process of the deployment (supervisord's session) every ``SAMPLE_SECONDS``. For a long-lived process
(triggerer, scheduler, ...) ``VmHWM`` is its exact peak, reset (``clear_refs`` 5) when the timed
runs start; a task runs in its own short-lived process (``airflow worker -- <ti id>``, mapped to
its task id through the API), whose ``VmHWM`` is read until it exits: a lower bound of its peak,
short of it by at most what the task grew in its last ``SAMPLE_SECONDS``. The summed RSS of the
whole deployment is its peak over the samples.

``bench_storage`` runs this and puts its rows in the same table.

    .venv/bin/python benchmarks/bench_request_chart.py [--runs N]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Generator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.support.live, run as a script
from taxiflow.local.leftovers import cluster_processes
from tests.support.live import api_time

if TYPE_CHECKING:
    from tests.support.live import LiveStack

MONTH = "2024-01"
TRIPS = 20_000
# Two weeks inside MONTH: the report waits for no other month.
CONF = {"borough": "Manhattan", "start_date": "2024-01-08", "end_date": "2024-01-22", "sources": ["yellow"]}
RUNS = 5
TIMEOUT = 180.0
SAMPLE_SECONDS = 0.05
TASK_TITLE = "airflow worker -- "  # the task runner's process title (Task SDK), then the TI's id
EXECUTOR_TITLE = "airflow worker -- LocalExecutor"  # a LocalExecutor worker: it supervises each task it forks
EXECUTOR_ROLE = "executor workers (task supervisors)"


@contextmanager
def _environment(env: dict[str, str]) -> Generator[None, None, None]:
    """This process reads and writes the backend's data root (``taxiflow.data.storage.root``)."""
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _ingest_month(stack: LiveStack) -> None:
    """Drop the month and ingest it through an ``ingest_taxi_trips`` run: the report's gate waits
    for that run's ``trigger_create_metrics_*`` tasks (``reports.ingest_status``), not for files."""
    from taxiflow.config import INGEST_DAG_ID
    from taxiflow.demo.trips import generate_month
    from tests.e2e.test_pipeline import wait_for_run_at

    generate_month("yellow", MONTH, TRIPS)  # data first, _SUCCESS last, into this process's data root
    generate_month("green", MONTH, TRIPS // 40)  # the ingest run waits for both sources' drops
    stack.airflow("dags", "trigger", INGEST_DAG_ID, "-l", f"{MONTH}-01T00:00:00+00:00")
    run = wait_for_run_at(stack, INGEST_DAG_ID, f"{MONTH}-01")
    if run["state"] != "success":
        states = stack.task_states(INGEST_DAG_ID, run["dag_run_id"])
        raise RuntimeError(f"the ingest of {MONTH} ended {run['state']}: {states}")
    # Its scheduled run for the latest month would poke for drops (a task process every few seconds)
    # through the timed runs: pause the DAG so only the request files' work is measured.
    status, body = stack.api("PATCH", f"/api/v2/dags/{INGEST_DAG_ID}", {"is_paused": True})
    if status != 200:
        raise RuntimeError(f"pausing {INGEST_DAG_ID}: {status} {body}")


def _proc(pid: int, name: str) -> str:
    return Path(f"/proc/{pid}/{name}").read_text(errors="replace")


def _status_kb(pid: int) -> dict[str, int]:
    """``VmHWM`` (peak RSS) and ``VmRSS`` of a live process, in kB."""
    fields = dict(line.split(":", 1) for line in _proc(pid, "status").splitlines() if ":" in line)
    return {key: int(fields[key].split()[0]) for key in ("VmHWM", "VmRSS") if key in fields}


class RssSampler(threading.Thread):
    """Peak RSS per process of a live deployment while the timed runs go (see the module doc)."""

    def __init__(self, stack: LiveStack) -> None:
        super().__init__(daemon=True)
        self.stack = stack
        programs = {pid: name for name, pid in stack.recorded_pids().items()}  # a program's pid is its group
        self.roles: dict[int, str] = {}
        for pid in stack.deployment_pids():
            with contextlib.suppress(OSError):
                self.roles[pid] = self._role(pid, programs)
        self.programs = programs
        self.peak_kb: dict[int, int] = {}
        self.deployment_peak_kb = 0
        self.stopped = threading.Event()

    def _role(self, pid: int, programs: dict[int, str]) -> str:
        title = _proc(pid, "cmdline").replace("\0", " ").strip()
        if title.startswith(EXECUTOR_TITLE):
            return EXECUTOR_ROLE
        if title.startswith(TASK_TITLE):
            return "ti:" + title.removeprefix(TASK_TITLE).split()[0]
        if self.stack.embedded_db and pid in cluster_processes(self.stack.embedded_db.data_dir):
            return "postgres"
        return programs.get(os.getpgid(pid), "supervisord")

    def run(self) -> None:
        for pid in self.roles:  # the peak of a long-lived process counts from now on
            with contextlib.suppress(OSError):
                Path(f"/proc/{pid}/clear_refs").write_text("5")
        while not self.stopped.is_set():
            total = 0
            for pid in self.stack.deployment_pids():
                with contextlib.suppress(OSError, ValueError):
                    if pid not in self.roles or self.roles[pid] == EXECUTOR_ROLE:
                        self.roles[pid] = self._role(pid, self.programs)  # a worker forks each task
                    kb = _status_kb(pid)
                    self.peak_kb[pid] = max(self.peak_kb.get(pid, 0), kb.get("VmHWM", 0))
                    total += kb.get("VmRSS", 0)
            self.deployment_peak_kb = max(self.deployment_peak_kb, total)
            self.stopped.wait(SAMPLE_SECONDS)

    def stop(self) -> dict[str, float]:
        """Peak RSS (MB) per role: a program, or ``task <task_id>`` (the largest of its processes)."""
        self.stopped.set()
        self.join()
        _, body = self.stack.api("GET", "/api/v2/dags/~/dagRuns/~/taskInstances?limit=1000")
        task_ids = {ti["id"]: ti["task_id"] for ti in body.get("task_instances", [])}
        peaks: dict[str, float] = {}
        for pid, kb in self.peak_kb.items():
            role = self.roles.get(pid, "supervisord")
            if role.startswith("ti:"):
                role = f"task {task_ids.get(role[3:], 'unknown')}"
            peaks[role] = max(peaks.get(role, 0.0), kb / 1024)
        peaks["whole deployment, summed"] = self.deployment_peak_kb / 1024
        return dict(sorted(peaks.items()))


def _request_to_chart(stem: str) -> tuple[float, float]:
    """Write ``requests/<stem>.json``; the epoch seconds it was written and its report was readable."""
    from taxiflow.data import storage
    from taxiflow.doors.request_files import ERROR_SUFFIX
    from taxiflow.reports.outputs import published_report
    from taxiflow.reports.request import ReportRequest

    paths = storage.data_paths()
    request = ReportRequest.from_conf({**CONF, "name": stem})
    storage.make_dirs(paths.requests)
    written = time.time()
    storage.write_bytes(paths.requests / f"{stem}.json", json.dumps(CONF).encode())  # the file names it
    refused = paths.outputs / f"{stem}{ERROR_SUFFIX}"
    while time.time() - written < TIMEOUT:
        if published_report(request, paths) is not None:
            return written, time.time()
        if refused.exists():
            raise RuntimeError(f"{stem}.json was refused: {refused.read_text()}")
        time.sleep(0.05)
    raise TimeoutError(f"no chart for {stem}.json within {TIMEOUT:.0f} s on {storage.url(paths.root)}")


def _get(stack: LiveStack, path: str) -> dict:
    status, body = stack.api("GET", path)
    if status != 200:
        raise RuntimeError(f"GET {path}: {status} {body}")
    return body


def phases(stack: LiveStack, stem: str, written: float, seen: float) -> dict[str, float]:
    """Consecutive phases from the file written to the chart read (they add up to ``seen - written``)."""
    from taxiflow.config import REPORT_DAG_ID, REQUESTS_DAG_ID

    pattern = urllib.parse.quote(f"request__{stem}__%", safe="")
    [report] = _get(stack, f"/api/v2/dags/{REPORT_DAG_ID}/dagRuns?run_id_pattern={pattern}")["dag_runs"]
    run_path = f"/api/v2/dags/{REPORT_DAG_ID}/dagRuns/{urllib.parse.quote(report['dag_run_id'], safe='')}"
    tis = {ti["task_id"]: ti for ti in _get(stack, f"{run_path}/taskInstances")["task_instances"]}
    queued = api_time(report["queued_at"])
    scans = _get(stack, f"/api/v2/dags/{REQUESTS_DAG_ID}/dagRuns?order_by=-start_date&limit=20")["dag_runs"]
    scan = next(run for run in scans if run["start_date"] and api_time(run["start_date"]) <= queued)
    scan_path = f"/api/v2/dags/{REQUESTS_DAG_ID}/dagRuns/{urllib.parse.quote(scan['dag_run_id'], safe='')}"
    events = _get(stack, f"{scan_path}/upstreamAssetEvents")["asset_events"]
    fired = min((api_time(event["timestamp"]) for event in events), default=None)
    if fired is None:
        raise RuntimeError(f"{REQUESTS_DAG_ID} run {scan['dag_run_id']} ({scan['run_type']}) had no asset event")
    validated, gated = (api_time(tis[task]["end_date"]) for task in ("validate_request", "wait_for_ingest"))
    render = tis["render_report"]
    rendered = api_time(render["end_date"])
    return {
        "watcher: file written -> asset event": fired - written,
        "asset event -> report_requests run started": api_time(scan["start_date"]) - fired,
        "scan, claim, trigger_report -> borough_report run queued": queued - api_time(scan["start_date"]),
        "run queued -> validate_request done": validated - queued,
        "wait_for_ingest (the gate)": gated - validated,
        "render_report queued -> done (query, draw, publish)": rendered - gated,
        "render_report done -> chart read": seen - rendered,
        "(of which render_report running)": rendered - api_time(render["start_date"]),
    }


def in_process(name: str, runs: int = 3) -> dict[str, float]:
    """Median seconds of the report's query and of drawing + publishing it, in this process (warm)."""
    from taxiflow.data.storage import data_paths
    from taxiflow.reports.render import report_counts, write_report_files
    from taxiflow.reports.request import ReportRequest

    paths = data_paths()
    query, publish = [], []
    for i in range(runs + 1):  # the first one warms this process's imports and connection
        request = ReportRequest.from_conf({**CONF, "name": f"bench-in-process-{name}-{i}"})
        started = time.perf_counter()
        counts = report_counts(request, paths)
        counted = time.perf_counter()
        write_report_files(request, counts, paths)
        if i:
            query.append(counted - started)
            publish.append(time.perf_counter() - counted)
    return {"in this process: report_counts (query)": statistics.median(query),
            "in this process: write_report_files (draw, publish)": statistics.median(publish)}


def measure(name: str, env: dict[str, str], local_data: Path, runs: int = RUNS) -> dict:
    """Request file -> chart on one live deployment whose data root is ``env``'s: median seconds,
    each run, the median of each phase, and peak RSS (MB) per process role."""
    from tests.support.live import FAST_WAITS, live_deployment

    with _environment(env), live_deployment(f"bench-door-{name}", data_dir=local_data,
                                            extra_env={**FAST_WAITS, **env}) as stack:
        _ingest_month(stack)
        _request_to_chart(f"bench-warm-{name}")  # the first report warms the deployment
        sampler = RssSampler(stack)
        sampler.start()
        try:
            timed = [(stem, *_request_to_chart(stem)) for stem in (f"bench-door-{name}-{i}" for i in range(runs))]
        finally:
            rss = sampler.stop()
        per_run = [phases(stack, stem, written, seen) for stem, written, seen in timed]
        breakdown = {phase: statistics.median(run[phase] for run in per_run) for phase in per_run[0]}
        breakdown.update(in_process(name))
    seconds = [seen - written for _, written, seen in timed]
    print(f"bench_request_chart: {name}: {', '.join(f'{s:.2f}' for s in seconds)} s; "
          f"load {os.getloadavg()[0]:.2f}", flush=True)
    return {"seconds": statistics.median(seconds), "runs": seconds, "phases": breakdown, "peak_rss_mb": rss}


def compare(runs: int = RUNS) -> dict:
    """Both backends, one after the other, on this machine: the deployment on local disk, then on
    a SeaweedFS started for it (stopped at the end)."""
    from taxiflow.config import DATA_DIR_ENV
    from tests.support.live import enterable_root
    from tests.support.seaweedfs import start_seaweedfs

    work = enterable_root(Path(tempfile.mkdtemp(prefix="bench-request-chart-")))
    server = start_seaweedfs(work / "seaweedfs", bucket="bench")
    try:
        local = measure("local", {DATA_DIR_ENV: str(work / "data")}, work / "data", runs)
        s3 = measure("s3", server.env(prefix="data"), work / "unused-local-data", runs)
    finally:
        server.stop()
    return {"local": local, "s3": s3, "ratio": s3["seconds"] / local["seconds"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=RUNS)
    args = parser.parse_args(argv)
    print(json.dumps(compare(args.runs), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
