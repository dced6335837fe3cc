"""Run taxiflow's benchmarks and record the figures (``make bench``).

    python benchmarks/run.py [--quick] [--only bench_report] [--no-live]

Each benchmark module has ``run(work_dir, quick) -> list[dict]`` returning rows with keys
benchmark, metric, value, unit, target, ok. This prints them as a table and writes
``benchmarks/results/<UTC timestamp>.json`` and ``benchmarks/results/latest.json`` with the machine
they ran on. Scratch data goes to ``benchmarks/.work/`` (git-ignored), wiped at the start.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import inspect
import json
import os
import platform
import shutil
import subprocess
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

BENCHMARKS_DIR = Path(__file__).resolve().parent
WORK_DIR = BENCHMARKS_DIR / ".work"
RESULTS_DIR = BENCHMARKS_DIR / "results"
BENCHMARKS = (
    "bench_ingest", "bench_eras", "bench_report", "bench_burst", "bench_blocking", "bench_parse", "bench_live",
    "bench_warm", "bench_backfill", "bench_storage",
)
COLUMNS = ("benchmark", "metric", "value", "unit", "target", "ok")


def machine_info() -> dict:
    import duckdb
    import numpy
    import pandas
    import pyarrow

    import taxiflow

    info = {
        "cpu_count": os.cpu_count(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "duckdb": duckdb.__version__,
        "pandas": pandas.__version__,
        "pyarrow": pyarrow.__version__,
        "numpy": numpy.__version__,
        "taxiflow": taxiflow.__version__,
        "duckdb_threads": os.environ.get("TAXIFLOW_DUCKDB_THREADS", str(os.cpu_count())),
        "duckdb_memory_limit": os.environ.get("TAXIFLOW_DUCKDB_MEMORY_LIMIT", "1GB"),
    }
    try:
        meminfo = Path("/proc/meminfo").read_text().splitlines()
        total_kb = next(int(line.split()[1]) for line in meminfo if line.startswith("MemTotal:"))
        info["memory_gb"] = round(total_kb / 1024 / 1024, 1)
    except (OSError, StopIteration, ValueError):
        pass
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        info["git_commit"] = subprocess.run(
            ["git", "-C", str(BENCHMARKS_DIR), "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()
    return info


def run_benchmark(name: str, quick: bool, live: bool = True) -> list[dict]:
    """One benchmark's rows; a failure becomes a row saying so, and the others still run.

    ``live=False`` is passed on to a benchmark whose ``run`` takes ``live`` (its parts that start
    live deployments are skipped); the others run whole.
    """
    started = time.perf_counter()
    try:
        module = importlib.import_module(name)
        options = {} if live or "live" not in inspect.signature(module.run).parameters else {"live": False}
        rows = module.run(WORK_DIR / name, quick=quick, **options)
    except Exception as err:  # a broken benchmark must not hide the others' figures
        traceback.print_exc()
        rows = [{"benchmark": name.removeprefix("bench_"), "metric": "error",
                 "value": f"{type(err).__name__}: {err}", "unit": "", "target": None, "ok": False}]
    rows.append({"benchmark": name.removeprefix("bench_"), "metric": "wall_seconds (incl. setup)",
                 "value": round(time.perf_counter() - started, 1), "unit": "s", "target": None, "ok": None})
    return rows


def format_table(rows: list[dict]) -> str:
    def text(value) -> str:
        if value is None:
            return ""
        if isinstance(value, bool):
            return "yes" if value else "NO"
        if isinstance(value, float):
            return f"{value:,.4g}" if abs(value) < 1000 else f"{value:,.0f}"
        if isinstance(value, int):
            return f"{value:,}"
        return str(value)

    cells = [list(COLUMNS)] + [[text(row.get(column)) for column in COLUMNS] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(COLUMNS))]
    lines = [" | ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)) for line in cells]
    lines.insert(1, "-+-".join("-" * width for width in widths))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run taxiflow's benchmarks.")
    parser.add_argument("--quick", action="store_true", help="small volumes (a smoke run, not figures)")
    parser.add_argument("--only", choices=BENCHMARKS, action="append", help="run just these")
    parser.add_argument("--no-live", action="store_true",
                        help="skip the parts that start live deployments (bench_storage: request file -> chart)")
    args = parser.parse_args(argv)

    shutil.rmtree(WORK_DIR, ignore_errors=True)
    WORK_DIR.mkdir(parents=True)
    sys.path.insert(0, str(BENCHMARKS_DIR))  # the bench_* modules sit beside this script
    sys.path.insert(1, str(BENCHMARKS_DIR.parent))  # and tests.drills.tooling, the drills' client and deployment

    started_at = datetime.now(UTC)
    rows: list[dict] = []
    for name in args.only or BENCHMARKS:
        print(f"== {name}{' (quick)' if args.quick else ''}", flush=True)
        rows.extend(run_benchmark(name, args.quick, live=not args.no_live))
    finished_at = datetime.now(UTC)

    print()
    print(format_table(rows))
    result = {
        "started_at": started_at.isoformat(timespec="seconds"),
        "finished_at": finished_at.isoformat(timespec="seconds"),
        "quick": args.quick,
        "live": not args.no_live,
        "machine": machine_info(),
        "results": rows,
    }
    RESULTS_DIR.mkdir(exist_ok=True)
    stamped = RESULTS_DIR / f"{started_at:%Y%m%dT%H%M%SZ}.json"
    text = json.dumps(result, indent=2, default=str) + "\n"
    stamped.write_text(text)
    (RESULTS_DIR / "latest.json").write_text(text)
    print(f"\nwrote {stamped.relative_to(BENCHMARKS_DIR.parent)} and results/latest.json")
    failed = [row for row in rows if row.get("ok") is False]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
