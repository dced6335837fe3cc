"""What an S3 data root adds to a task process's memory: validate, scan, render and ingest.

Not a benchmark (``make bench`` does not run it): a tool for finding what to cut. Each run is a fresh
process pinned to two cores, like ``bench_storage``'s children, that does what the task process of
that task does, in steps, reading its RSS and peak (``VmRSS``/``VmHWM``) after each:

* ``airflow.sdk`` imported (the task runner's floor on either backend);
* its DAG file parsed (a task process parses its DAG file before it runs the task);
* the task's work: ``validate_request``'s claim check, ``scan_request_files``'s scan and claim of
  one new request file, ``render_report`` for two weeks of one month, or one month's ingest as the
  ingest DAG's four tasks do it (``bench_storage``'s ingest step, ``--rows`` trips).

For S3 it also says when the S3 stack was first imported (botocore, s3fs) and how many s3fs
filesystems and botocore clients the process holds at the end (one client is the floor). With
``--tracemalloc`` the S3 runs also list what the S3 stack allocated and still holds, by package and
botocore data file (tracing costs memory of its own: read its figures against each other).

    .venv/bin/python benchmarks/profile_task_memory.py [--runs 3] [--rows 300000] [--tracemalloc]

It starts SeaweedFS: run it under the heavy lock. Figures: docs/object-storage.md, "Task memory".
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.support, run as a script
import bench_storage

from taxiflow.config import DATA_DIR_ENV, Partition

ROOT = Path(__file__).resolve().parent.parent
MONTH = Partition("yellow", "2024-01")
REPORT_TRIPS = 20_000
CONF = {"borough": "Manhattan", "start_date": "2024-01-08", "end_date": "2024-01-22", "sources": ["yellow"]}
TASKS = {"validate": "borough_report.py", "scan": "report_requests.py", "render": "borough_report.py",
         "ingest": "ingest_taxi_trips.py"}

_CHILD = r"""
import gc, json, runpy, sys, tracemalloc

def memory():
    fields = dict(line.split(":", 1) for line in open("/proc/self/status"))
    return {key: round(int(fields[key].split()[0]) / 1024, 1) for key in ("VmRSS", "VmHWM")}

task, dag_file, argument, trace = sys.argv[1:5]
steps, first_s3 = [("start", memory())], None
def step(name):
    global first_s3
    steps.append((name, memory()))
    if first_s3 is None and "botocore" in sys.modules:
        first_s3 = name

import airflow.sdk
step("airflow.sdk")
if trace == "1":
    tracemalloc.start(12)
runpy.run_path(dag_file)
step("DAG file parsed")
if task == "validate":
    from taxiflow.doors.request_claims import check_request_run
    run_id, conf = json.loads(argument)
    check_request_run(run_id, conf)
elif task == "scan":
    from taxiflow.doors.request_claims import claim_new_requests
    from taxiflow.doors.request_files import scan_requests
    new, _ = claim_new_requests(scan_requests().valid, lambda run_ids: set(), claimer="profile")
    assert new, "no new request file to claim"
elif task == "render":
    from taxiflow.reports.render import render_report
    from taxiflow.reports.request import ReportRequest
    render_report(ReportRequest.from_conf(json.loads(argument)))
else:
    from taxiflow.components import lineage
    from taxiflow.config import Partition
    from taxiflow.data import ingest, landing, metrics
    from taxiflow.data.raw import copy_to_raw
    partition = Partition(*argument.split("/"))
    drop = landing.list_drop(partition)
    assert drop.ready
    seen = lineage.tagged_facts(drop.files)
    lineage.drop_event(partition, seen)
    lineage.raw_event(partition, copy_to_raw(partition, seen=seen))
    lineage.partition_event(ingest.process_partition(partition))
    lineage.metrics_event(metrics.refresh_metrics(partition))
step("task done")

held = {}
if "s3fs" in sys.modules:
    import botocore.client, s3fs
    objects = gc.get_objects()
    held = {"s3fs filesystems": sum(issubclass(type(o), s3fs.S3FileSystem) for o in objects),
            "botocore clients": sum(issubclass(type(o), botocore.client.BaseClient) for o in objects)}
traced = {}
if tracemalloc.is_tracing():
    def owner(frame):
        name = frame.filename
        if "/botocore/data/" in name or "json" in name.rsplit("/", 1)[-1]:
            return None
        for package in ("botocore", "aiobotocore", "s3fs", "aiohttp", "fsspec"):
            if f"/{package}/" in name:
                return package
        return None
    for stat in tracemalloc.take_snapshot().statistics("traceback"):
        frames = [owner(frame) for frame in reversed(stat.traceback)]  # the innermost package first
        found = next((f for f in frames if f), None)
        if found is None:
            continue
        data = next((frame for frame in stat.traceback if "botocore/loaders.py" in frame.filename), None)
        key = f"{found} (parsed JSON data files)" if data else found
        traced[key] = traced.get(key, 0) + stat.size / 2**20
print(json.dumps({"steps": steps, "first_s3": first_s3, "held": held,
                  "traced": {k: round(v, 2) for k, v in sorted(traced.items(), key=lambda kv: -kv[1])}}))
"""


def run_child(env: dict[str, str], task: str, argument: str, trace: bool) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", _CHILD, task, str(ROOT / "dags" / TASKS[task]), argument, "1" if trace else "0"],
        env={**os.environ, **env, "TAXIFLOW_DUCKDB_THREADS": str(bench_storage.CORES)},
        preexec_fn=bench_storage._pin_to_cores, capture_output=True, text=True, check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"{task} on {env[DATA_DIR_ENV]} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def prepare(env: dict[str, str], rows: int) -> tuple[str, dict]:
    """One month ingested for the report, the drop to ingest, and one claimed request (run id, conf)."""
    from taxiflow.data import ingest, metrics
    from taxiflow.data.raw import copy_to_raw
    from taxiflow.demo.trips import generate_month
    from taxiflow.doors.request_claims import claim_new_requests
    from taxiflow.doors.request_files import scan_requests

    saved = dict(os.environ)
    os.environ.update(env)
    try:
        report_month = Partition("yellow", "2023-06")
        generate_month(report_month.source, report_month.month, REPORT_TRIPS)
        copy_to_raw(report_month)
        ingest.process_partition(report_month)
        metrics.build_metrics(report_month)
        generate_month(MONTH.source, MONTH.month, rows)
        write_request(env, "claimed")
        new, _ = claim_new_requests(scan_requests().valid, lambda run_ids: set(), claimer="profile")
        return new[0].run_id, new[0].conf
    finally:
        os.environ.clear()
        os.environ.update(saved)


def write_request(env: dict[str, str], stem: str) -> None:
    from taxiflow.data import storage

    saved = dict(os.environ)
    os.environ.update(env)
    try:
        storage.write_bytes(storage.data_paths().requests / f"{stem}.json", json.dumps(CONF).encode())
    finally:
        os.environ.clear()
        os.environ.update(saved)


def show(name: str, run: dict) -> None:
    steps = "; ".join(f"{step} {m['VmRSS']:.0f} / {m['VmHWM']:.0f}" for step, m in run["steps"])
    print(f"{name:16} RSS / peak MB: {steps}")
    if run["first_s3"]:
        print(f"{'':16} S3 stack first imported at: {run['first_s3']}; held at the end: {run['held']}")
    if run["traced"]:
        print(f"{'':16} held by the S3 stack (tracemalloc, MB): {run['traced']}")


def main(argv: list[str] | None = None) -> int:
    from tests.support.seaweedfs import start_seaweedfs

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rows", type=int, default=300_000, help="trips in the month to ingest")
    parser.add_argument("--tasks", nargs="+", choices=sorted(TASKS), default=list(TASKS))
    parser.add_argument("--tracemalloc", action="store_true")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="taxiflow-task-memory-") as work:
        server = start_seaweedfs(Path(work) / "seaweedfs", bucket="bench")
        try:
            backends = {"local": {DATA_DIR_ENV: str(Path(work) / "data")}, "s3": server.env(prefix="data")}
            claimed = {name: prepare(env, args.rows) for name, env in backends.items()}
            peaks: dict[str, dict[str, list[float]]] = {task: {name: [] for name in backends} for task in args.tasks}
            for index in range(args.runs):
                for task in args.tasks:
                    for name, env in backends.items():
                        if task == "scan":
                            write_request(env, f"scan-{index}")
                        argument = {"validate": json.dumps(claimed[name]), "render": json.dumps(CONF),
                                    "scan": "-", "ingest": f"{MONTH.source}/{MONTH.month}"}[task]
                        run = run_child(env, task, argument, args.tracemalloc and name == "s3")
                        peaks[task][name].append(run["steps"][-1][1]["VmHWM"])
                        show(f"{task} {name} {index + 1}", run)
            for task, found in peaks.items():
                local, s3 = max(found["local"]), max(found["s3"])
                print(f"{task}: peak RSS local {local:.0f} MB, S3 {s3:.0f} MB, S3/local {s3 / local:.3f}x "
                      f"(+{s3 - local:.1f} MB; highest of {args.runs})")
            return 0
        finally:
            server.stop()


if __name__ == "__main__":
    sys.exit(main())
