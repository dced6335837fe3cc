"""Profile ``bench_storage``'s ingest of one month on local disk and SeaweedFS: where the time and memory go.

Not a benchmark (``make bench`` does not run it): a tool for finding what to cut, like
``profile_report``. For each backend, in fresh processes pinned to two cores like ``bench_storage``'s
children (same imports, same steps, the connection made before the clock starts), alternating local
and S3:

* the wall time of each step (the sensor's last poke and its lineage facts, ``copy_to_raw`` and the
  raw copy's facts, ``process_partition`` and its steps, ``refresh_metrics``), and every s3fs call
  by step and operation (count and seconds);
* the process's RSS and peak after each step.

    .venv/bin/python benchmarks/profile_ingest.py [--rows 3000000] [--runs 3] [--work-dir DIR]

The drop is kept in ``--work-dir`` and reused by the next call with the same ``--rows``; SeaweedFS
is started on it and stopped at the end. It starts a server: run it under the heavy lock.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.support, run as a script
import bench_storage
import profiling

_CHILD = profiling.CHILD_HELPERS + r"""
import contextlib, json, sys, threading, time

import airflow.sdk
from taxiflow.components import lineage
from taxiflow.config import Partition
from taxiflow.data import folders, ingest, landing, metrics, readers, storage, versions, warehouse
from taxiflow.data import raw as raw_store
from taxiflow.data.raw import copy_to_raw

fs = getattr(storage.root(), "fs", None)
storage.list_dir(storage.root())
steps = [("before the clock", memory())]

marked(folders, "copy_into", "copy_to_raw: copy")
def timed_entry(module, name, label):
    opened = getattr(module, name)
    @contextlib.contextmanager
    def wrapper(*args, **kwargs):
        started = time.perf_counter()
        with opened(*args, **kwargs) as value:
            times[label] = times.get(label, 0.0) + time.perf_counter() - started
            yield value
    setattr(module, name, wrapper)

timed_entry(storage, "local_copies", "download (local_copies)")
timed_entry(readers, "zones_and_copies", "duckdb opened + download (zones_and_copies)")
marked(readers, "inspect_raw_file", "process: inspect")
marked(warehouse, "write_parquet_atomically", "process/metrics: write parquet")
original_put = storage._put
def timed_put(local, target):
    started = time.perf_counter()
    try:
        return original_put(local, target)
    finally:
        label = "upload " + target.name
        times[label] = times.get(label, 0.0) + time.perf_counter() - started
storage._put = timed_put
marked(versions, "publish", "process: publish summary")
marked(raw_store, "remove", "process: remove superseded raw")
marked(versions, "remove_superseded", "process: remove superseded trips")
marked(metrics, "build_metrics", "metrics: build")

count_s3_calls(fs)

def step(label, function, *args):
    phase[0] = label
    started = time.perf_counter()
    result = function(*args)
    times[label + " (all)"] = time.perf_counter() - started
    steps.append((label, memory()))
    phase[0] = "other"
    return result

partition = Partition(*sys.argv[1].split("/"))
started = time.perf_counter()
drop = step("sensor", landing.list_drop, partition)
seen = step("sensor: drop facts", lineage.tagged_facts, drop.files)
lineage.drop_event(partition, seen)
copied = step("copy_to_raw", copy_to_raw, partition, None, seen)
step("copy_to_raw: raw facts", lineage.raw_event, partition, copied)
summary = step("process", ingest.process_partition, partition)
step("metrics", metrics.refresh_metrics, partition)
seconds = time.perf_counter() - started
print(json.dumps({"seconds": seconds, "rows": summary["rows_read"], "phases": times, "calls": calls, "steps": steps}))
"""


def profile_once(env: dict[str, str], month: str) -> dict:
    return profiling.run_child(_CHILD, [month], env)


def show(name: str, run: dict) -> None:
    print(f"--- {name}: {run['seconds']:.3f} s, {run['rows']:,} rows")
    profiling.show_phases(run, 38)


def main(argv: list[str] | None = None) -> int:
    from taxiflow.demo.trips import generate_month

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=bench_storage.FULL_ROWS)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--work-dir", type=Path, default=Path(tempfile.gettempdir()) / "taxiflow-profile-ingest")
    args = parser.parse_args(argv)
    work = args.work_dir.resolve()
    with profiling.backends(work) as backends:
        prepared = work / f"prepared-{args.rows}"
        if not prepared.exists():
            for env in backends.values():
                saved = dict(os.environ)
                os.environ.update(env)
                try:
                    generate_month(bench_storage.INGEST.source, bench_storage.INGEST.month, args.rows)
                finally:
                    os.environ.clear()
                    os.environ.update(saved)
            prepared.touch()
        month = f"{bench_storage.INGEST.source}/{bench_storage.INGEST.month}"
        best: dict[str, float] = {}
        for index in range(args.runs):
            for name, env in backends.items():
                run = profile_once(env, month)
                show(f"{name} run {index + 1}", run)
                best[name] = min(best.get(name, run["seconds"]), run["seconds"])
        print(f"best of {args.runs}: local {best['local']:.3f} s, S3 {best['s3']:.3f} s, "
              f"S3/local {best['s3'] / best['local']:.2f}x")
        return 0


if __name__ == "__main__":
    sys.exit(main())
