"""Profile ``bench_storage``'s 12-month report on local disk and SeaweedFS: where the time and memory go.

Not a benchmark (``make bench`` does not run it): a tool for finding what to cut. For each backend,
in fresh processes pinned to two cores like ``bench_storage``'s children (same imports, same data,
the connection made before the clock starts), alternating local and S3:

* the report's wall time by phase (listing the metrics partitions, the query, drawing, publishing
  and its steps), every s3fs call by phase and operation (count and seconds), and with ``--cprofile``
  the top functions by cumulative time;
* the process's RSS after each step before the clock (imports, the data root, its filesystem, the
  first request) and its peak, and the S3 stack's modules loaded (boto3, the Amazon provider's hooks).

    .venv/bin/python benchmarks/profile_report.py [--runs 3] [--cprofile] [--work-dir DIR]

The data (twelve 100k-trip months per backend, as ``bench_storage`` prepares) is kept in
``--work-dir`` and reused by the next call; SeaweedFS is started on it and stopped at the end. It
starts a server: run it under the heavy lock.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.support, run as a script
import bench_storage
import profiling

_CHILD = profiling.CHILD_HELPERS + r"""
import cProfile, io, json, os, pstats, sys, threading, time

steps = [("start", memory())]
import airflow.sdk
from taxiflow.components import lineage
from taxiflow.config import Partition
from taxiflow.data import ingest, landing, metrics, storage
from taxiflow.data.raw import copy_to_raw
from taxiflow.reports.render import render_report
from taxiflow.reports.request import ReportRequest
steps.append(("imports (airflow.sdk, taxiflow)", memory()))
root = storage.root()
steps.append(("data root", memory()))
fs = getattr(root, "fs", None)
steps.append(("its filesystem", memory()))
storage.list_dir(root)
steps.append(("first request (listing)", memory()))
loaded = sorted(name for name in sys.modules if name.split(".")[0] in ("boto3", "s3transfer")
                or name.startswith("airflow.providers.amazon"))

from taxiflow.data import conditional, warehouse
from taxiflow.reports import outputs, query, render


marked(render, "report_counts", "query")
marked(query, "metrics_partitions", "query: list metrics partitions")
marked(render, "render_borough_chart", "draw: figure")
marked(render, "publish_report", "publish")
marked(outputs, "_current_manifest", "publish: read manifest")
marked(outputs, "_check_not_taken", "publish: check name")
marked(conditional, "replace_if_match", "publish: manifest write")
marked(outputs, "_clean_up", "publish: clean up superseded")

count_s3_calls(fs)

request = ReportRequest.from_conf(json.loads(sys.argv[1]))
profiler = cProfile.Profile() if sys.argv[2] == "cprofile" else None
started = time.perf_counter()
if profiler:
    profiler.enable()
total = render_report(request).total_trips
if profiler:
    profiler.disable()
seconds = time.perf_counter() - started
steps.append(("report", memory()))
top = ""
if profiler:
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(45)
    top = out.getvalue()
print(json.dumps({"seconds": seconds, "total": total, "phases": times, "calls": calls, "steps": steps,
                  "modules": loaded, "cprofile": top}))
"""


def profile_once(env: dict[str, str], cprofile: bool) -> dict:
    return profiling.run_child(_CHILD, [json.dumps(bench_storage.REPORT_CONF), "cprofile" if cprofile else "-"], env)


def show(name: str, run: dict) -> None:
    print(f"--- {name}: {run['seconds']:.3f} s, {run['total']:,} trips")
    profiling.show_phases(run, 34)
    if run["modules"]:
        print(f"    loaded: {len(run['modules'])} boto3/s3transfer/amazon-provider modules, e.g. {run['modules'][:6]}")
    if run["cprofile"]:
        print(run["cprofile"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--cprofile", action="store_true")
    parser.add_argument("--work-dir", type=Path, default=Path(tempfile.gettempdir()) / "taxiflow-profile-report")
    parser.add_argument("--json", type=Path, help="also write every run here")
    args = parser.parse_args(argv)
    work = args.work_dir.resolve()
    with profiling.backends(work) as backends:
        if not (work / "prepared").exists():
            for env in backends.values():
                bench_storage.prepare(env, 1000, bench_storage.REPORT_TRIPS)
            (work / "prepared").touch()
        runs: dict[str, list[dict]] = {name: [] for name in backends}
        for index in range(args.runs):
            for name, env in backends.items():
                run = profile_once(env, args.cprofile)
                runs[name].append(run)
                show(f"{name} run {index + 1}", run)
        best = {name: min(run["seconds"] for run in found) for name, found in runs.items()}
        print(f"best of {args.runs}: local {best['local']:.3f} s, S3 {best['s3']:.3f} s, "
              f"S3/local {best['s3'] / best['local']:.2f}x")
        if args.json:
            args.json.write_text(json.dumps(runs, indent=1))
        return 0


if __name__ == "__main__":
    sys.exit(main())
