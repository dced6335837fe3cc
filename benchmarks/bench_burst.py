"""Benchmark: the burst on a live local deployment, per metadata database (SQLite, embedded PostgreSQL).

Setup (not timed): a deployment like ``make run``'s on free loopback ports in a scratch folder, one
small month ingested (``tests/drills/tooling.py``), then one report alone.

Timed: three reports one at a time (seconds each, from trigger to success), then the burst: 40
``/api/v2`` + 20 ``/api/v1`` triggers from 12 threads and 10 request files at once, with a client that
retries only 503/429 + Retry-After. Rows: triggers sent, accepted (final 200), 500 answers, 503/429
answers, Airflow processes that exited, runs succeeded, charts landed, seconds to the last chart,
peak RSS and PSS of the deployment (every process of supervisord's session, the database's too;
RSS summed counts shared pages once per process, PSS shares them out), and
the burst's time to the last chart as a ratio to the same reports run one at a time (70 x the mean
time of one report alone).

``TAXIFLOW_BENCH_DB=sqlite`` or ``postgres`` runs one database; by default both. ``quick``: 10 + 5
triggers and 3 files, PostgreSQL only.
"""

from __future__ import annotations

import os
import shutil
import statistics
import time
from pathlib import Path
from typing import Any

from taxiflow.config import DataPaths
from taxiflow.reports.outputs import read_manifest
from tests.drills.tooling import (  # the project root is on sys.path (benchmarks/run.py)
    RssSampler,
    bring_up,
    burst,
    drill_stack,
    report_alone,
    run_states,
    wait_for_charts,
)

BENCHMARK = "burst"


def row(metric: str, value: Any, unit: str = "", target: Any = None, ok: bool | None = None) -> dict:
    return {"benchmark": BENCHMARK, "metric": metric, "value": value, "unit": unit, "target": target, "ok": ok}


def measure(work_dir: Path, metadata_db: str, quick: bool) -> list[dict]:
    """Start a deployment on ``metadata_db``, run the burst, return its rows."""
    root = work_dir / metadata_db
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    for folder in (root, *root.parents):  # as root, the embedded database runs as nobody
        if folder == Path("/"):
            break
        folder.chmod(folder.stat().st_mode | 0o111)
    stack = drill_stack(root, metadata_db=metadata_db)
    v2, v1, files = (10, 5, 3) if quick else (40, 20, 10)
    db = f"[{metadata_db}] "
    try:
        bring_up(stack)
        report_alone(stack, "warm-up")
        alone = [report_alone(stack, f"alone-{i}") for i in range(3)]
        pids = stack.recorded_pids()
        sampler = RssSampler(stack)
        sampler.start()
        result = burst(stack, v2=v2, v1=v1, files=files)
        statuses = [s for a in result.answers for s in a.statuses]
        accepted = sum(a.final == 200 for a in result.answers)
        rows = [
            row(db + "triggers sent (REST v2 + v1 + files)", v2 + v1 + files),
            row(db + "REST triggers accepted (final 200)", accepted, target=v2 + v1, ok=accepted == v2 + v1),
            row(db + "answers 500", statuses.count(500), target=0, ok=statuses.count(500) == 0),
            row(db + "answers 503/429 (+Retry-After, retried)", sum(s in (429, 503) for s in statuses)),
            row(db + "seconds to send the REST triggers", round(result.sent_seconds, 1), "s"),
        ]
        names = [a.name for a in result.answers if a.final == 200] + result.file_stems
        try:
            last_chart = wait_for_charts(stack, names, since=result.started, timeout=900)
        except TimeoutError:
            last_chart = None
        peak = sampler.stop()
        landed = sum(read_manifest(n, DataPaths(stack.data_dir)) is not None for n in names)
        accepted_ids = [a.name for a in result.answers if a.final == 200]
        try:
            states = run_states(stack, accepted_ids, timeout=60)
        except TimeoutError:
            states = {}
        succeeded = sum(s == "success" for s in states.values())
        # supervisord restarts a program that exits: a changed pid is one that exited
        exited = [name for name, pid in pids.items() if stack.recorded_pids().get(name) != pid]
        one = statistics.mean(alone)
        rows += [
            row(db + "Airflow processes that exited", len(exited), target=0, ok=not exited),
            row(db + "REST runs succeeded", succeeded, target=v2 + v1, ok=succeeded == v2 + v1),
            row(db + "charts landed", landed, target=v2 + v1 + files, ok=landed == v2 + v1 + files),
            row(db + "seconds to the last chart", round(last_chart, 1) if last_chart else "not all landed", "s"),
            row(db + "peak RSS of the deployment (sum: shared pages once per process)", round(peak / 2**20), "MiB"),
            row(db + "peak PSS of the deployment (what it really holds)", round(sampler.peak_pss / 2**20), "MiB"),
            row(db + "one report alone (mean of 3)", round(one, 1), "s"),
            row(db + "burst time / same reports one at a time",
                round(last_chart / ((v2 + v1 + files) * one), 3) if last_chart else None, "x"),
        ]
        return rows
    finally:
        stack.stop()


def run(work_dir: Path, quick: bool = False) -> list[dict]:
    """The rows for each metadata database asked for."""
    chosen = os.environ.get("TAXIFLOW_BENCH_DB")
    databases = [chosen] if chosen else (["postgres"] if quick else ["sqlite", "postgres"])
    rows: list[dict] = []
    for metadata_db in databases:
        started = time.monotonic()
        rows += measure(work_dir, metadata_db, quick)
        rows.append(row(f"[{metadata_db}] wall seconds (incl. setup)", round(time.monotonic() - started), "s"))
    return rows
