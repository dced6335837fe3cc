"""Benchmark: a request file -> its chart, on a live deployment, with the data on local disk and in S3.

For each backend, one live deployment (``make run``'s settings, ``tests.support.live``; the file
watcher alone, the safety-net poll an hour away) with one month dropped and ingested by an
``ingest_taxi_trips`` run; then
``RUNS`` request files written one at a time into ``requests/`` (a local file, or an object in
the bucket), each timed from just before it is written until its report is readable through its
manifest (``reports.outputs.published_report``: manifest, PNG and CSV). Median of the runs. The
deployment's memory is not compared here: it is the same Airflow processes on both backends.
``bench_storage`` runs this and puts its row in the same table.

    .venv/bin/python benchmarks/bench_request_chart.py
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Generator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.support.live import LiveStack

MONTH = "2024-01"
TRIPS = 20_000
# Two weeks inside MONTH: the report waits for no other month.
CONF = {"borough": "Manhattan", "start_date": "2024-01-08", "end_date": "2024-01-22", "sources": ["yellow"]}
RUNS = 5
TIMEOUT = 180.0


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

    generate_month("yellow", MONTH, TRIPS)  # data first, _SUCCESS last
    generate_month("green", MONTH, TRIPS // 40)  # the ingest run waits for both sources' drops
    stack.airflow("dags", "trigger", INGEST_DAG_ID, "-l", f"{MONTH}-01T00:00:00+00:00")
    run = wait_for_run_at(stack, INGEST_DAG_ID, f"{MONTH}-01")
    if run["state"] != "success":
        states = stack.task_states(INGEST_DAG_ID, run["dag_run_id"])
        raise RuntimeError(f"the ingest of {MONTH} ended {run['state']}: {states}")


def _request_to_chart(stem: str) -> float:
    """Seconds from writing ``requests/<stem>.json`` until its report is published and readable."""
    from taxiflow.data import storage
    from taxiflow.reports.outputs import published_report
    from taxiflow.reports.request import ReportRequest
    from taxiflow.reports.request_files import ERROR_SUFFIX

    paths = storage.data_paths()
    request = ReportRequest.from_conf({**CONF, "name": stem})
    storage.make_dirs(paths.requests)
    started = time.monotonic()
    storage.write_bytes(paths.requests / f"{stem}.json", json.dumps(CONF).encode())  # the file names it
    refused = paths.outputs / f"{stem}{ERROR_SUFFIX}"
    while time.monotonic() - started < TIMEOUT:
        if published_report(request, paths) is not None:
            return time.monotonic() - started
        if refused.exists():
            raise RuntimeError(f"{stem}.json was refused: {refused.read_text()}")
        time.sleep(0.05)
    raise TimeoutError(f"no chart for {stem}.json within {TIMEOUT:.0f} s on {storage.url(paths.root)}")


def measure(name: str, env: dict[str, str], local_data: Path, runs: int = RUNS) -> dict:
    """Median seconds request file -> chart on one live deployment whose data root is ``env``'s."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.support.live
    from tests.support.live import FAST_WAITS, live_deployment

    with _environment(env), live_deployment(f"bench-door-{name}", data_dir=local_data,
                                            extra_env={**FAST_WAITS, **env}) as stack:
        _ingest_month(stack)
        _request_to_chart(f"bench-warm-{name}")  # the first report warms the worker's imports
        seconds = [_request_to_chart(f"bench-door-{name}-{i}") for i in range(runs)]
    print(f"bench_request_chart: {name}: {', '.join(f'{s:.2f}' for s in seconds)} s", flush=True)
    return {"seconds": statistics.median(seconds), "runs": seconds}


def main() -> int:
    from taxiflow.config import DATA_DIR_ENV
    from tests.support.seaweedfs import start_seaweedfs

    work = Path(tempfile.mkdtemp(prefix="bench-request-chart-"))
    server = start_seaweedfs(work / "seaweedfs", bucket="bench")
    try:
        local = measure("local", {DATA_DIR_ENV: str(work / "data")}, work / "data")
        s3 = measure("s3", server.env(prefix="data"), work / "unused-local-data")
    finally:
        server.stop()
    print(json.dumps({"local": local, "s3": s3, "ratio": s3["seconds"] / local["seconds"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
