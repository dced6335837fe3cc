"""Benchmark: a borough report from the metrics table vs the seed's scan of every trip.

Setup (not timed): 1, then 6, then 12 months of synthetic full-size yellow volume (~3M trips a
month; ``quick``: 100k) generated with ``taxiflow.demo``, ingested with ``copy_to_raw`` and
``ingest.process_partition`` and aggregated with ``metrics.build_metrics``; for the baseline, the
same normalised trips appended to one ``trips`` table in a ``.duckdb`` file, with the zone table.

Timed, one run each, at every history size, for a one-month range and for the whole history:

* ours: ``render.render_report`` (hourly_borough query, PNG and CSV), in-process;
* baseline (the seed's way): join ``trips`` to ``zones``, group by hour and day of week for the
  borough and range, pivot in pandas, then the same chart and CSV.

Both write the same CSV; the benchmark checks that they agree before it believes any timing.

The targets (ours <= 0.5x the baseline at 12 months, flat as the months grow) apply to the report
that spans the whole history: that is the report whose cost grows with the months for the seed's
approach. For a one-month range DuckDB's zone maps let the baseline skip most of the table, both
sides then spend most of their time drawing the same chart, and the ratio is reported for
information only (the query-only ratio shows the difference that remains).
"""

from __future__ import annotations

import os
import shutil
import time
from datetime import date
from pathlib import Path
from typing import Any

from taxiflow.config import DAY_NAMES, DataPaths, Partition, duckdb_settings, format_month, parse_month
from taxiflow.data.storage import data_paths
from taxiflow.demo import trips as demo
from taxiflow.reports import query, render
from taxiflow.reports import request as reports_request
from taxiflow.reports.render import ReportOutputs

BENCHMARK = "report"
TARGET_RANGE = "full_history_range"
LAST_MONTH = "2024-01"
HISTORY_SIZES = (1, 6, 12)
FULL_TRIPS, QUICK_TRIPS = 3_000_000, 100_000
RATIO_TARGET = 0.5
FLATNESS_TARGET = 1.5  # ours with 12 months of history vs with 1, same request

BASELINE_SQL = """
    SELECT hour(t.pickup_at) AS hour_of_day,
           dayofweek(t.pickup_at) AS day_index,
           count(*) AS num_trips
    FROM trips t JOIN zones z ON t.pickup_zone_id = z.zone_id
    WHERE z.borough = ? AND t.pickup_at >= ? AND t.pickup_at < ? AND list_contains(?, t.source)
    GROUP BY ALL
"""


def months_back(last: str, count: int) -> list[str]:
    """``count`` months ending with ``last``, newest first."""
    first = parse_month(last)
    months = []
    year, month = first.year, first.month
    for _ in range(count):
        months.append(format_month(date(year, month, 1)))
        year, month = (year - 1, 12) if month == 1 else (year, month - 1)
    return months


def baseline_counts(db_file: Path, request: reports_request.ReportRequest):
    """The seed's query: scan and join every trip in range, then pivot in pandas to 168 rows."""
    import duckdb

    con = duckdb.connect(str(db_file), read_only=True, config=duckdb_settings())
    try:
        grouped = con.execute(
            BASELINE_SQL,
            [request.borough, request.start_date, request.end_date, list(request.sources)],
        ).df()
    finally:
        con.close()
    grid = grouped.pivot_table(
        index="hour_of_day", columns="day_index", values="num_trips", aggfunc="sum", fill_value=0
    ).reindex(index=range(24), columns=range(7), fill_value=0)
    counts = grid.stack().rename("num_trips").reset_index()
    counts["day_of_week"] = counts["day_index"].map(dict(enumerate(DAY_NAMES)))
    counts = counts.astype({"hour_of_day": "int64", "num_trips": "int64"})
    return counts[["hour_of_day", "day_of_week", "num_trips"]]


def baseline_report(db_file: Path, request: reports_request.ReportRequest, paths: DataPaths) -> ReportOutputs:
    """The seed's report: its query and pivot, then the same chart and CSV as ours (published the same way)."""
    return render.write_report_files(request, baseline_counts(db_file, request), paths)


def _ingest_month(month: str, trips: int, paths: DataPaths) -> dict[str, float]:
    from taxiflow.data import ingest, metrics
    from taxiflow.data.raw import copy_to_raw

    started = time.perf_counter()
    demo.generate_month("yellow", month, trips, paths=paths)
    generated = time.perf_counter()
    copy_to_raw(Partition("yellow", month), paths)
    ingest.process_partition(Partition("yellow", month), paths)
    ingested = time.perf_counter()
    metrics.build_metrics(Partition("yellow", month), paths)
    done = time.perf_counter()
    return {"generate": generated - started, "ingest": ingested - generated, "metrics": done - ingested}


def _load_baseline(db_file: Path, months: list[str], paths: DataPaths) -> None:
    """Append the months' normalised trips to the baseline's one big table."""
    import duckdb

    from taxiflow.data import warehouse

    con = duckdb.connect(str(db_file), config=duckdb_settings())
    try:
        if not con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'zones'").fetchone()[0]:
            warehouse.create_zones_table(con, paths)
        for month in months:
            trips_file = warehouse.trips_file(Partition("yellow", month), paths)  # the published version
            exists = con.execute(
                "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'trips'"
            ).fetchone()[0]
            if exists:
                con.execute("INSERT INTO trips SELECT *, 'yellow' AS source FROM read_parquet(?)", [str(trips_file)])
            else:
                con.execute(
                    "CREATE TABLE trips AS SELECT *, 'yellow' AS source FROM read_parquet(?)", [str(trips_file)]
                )
        con.execute("CHECKPOINT")
    finally:
        con.close()


def _row(metric: str, value: Any, unit: str, target: str | None = None, ok: bool | None = None) -> dict:
    if isinstance(value, float):
        value = round(value, 4)
    return {"benchmark": BENCHMARK, "metric": metric, "value": value, "unit": unit, "target": target, "ok": ok}


def run(work_dir: Path, quick: bool = False) -> list[dict]:
    """Build 1, 6 and 12 months of history and time ours vs the baseline at each size."""
    trips = QUICK_TRIPS if quick else FULL_TRIPS
    work_dir = Path(work_dir)
    paths = DataPaths((work_dir / "data").resolve())
    paths.reference.mkdir(parents=True, exist_ok=True)
    shutil.copy(data_paths().zone_table, paths.zone_table)
    ours_paths = paths
    base_paths = DataPaths(paths.root / "baseline")  # its outputs/ only; same file names, other folder
    db_file = work_dir / "baseline.duckdb"

    previous_env = os.environ.get("TAXIFLOW_DATA_DIR")
    os.environ["TAXIFLOW_DATA_DIR"] = str(paths.root)
    rows: list[dict] = [_row("trips_per_month", trips, "trips")]
    setup: dict[str, list[float]] = {"generate": [], "ingest": [], "metrics": []}
    timings: dict[tuple[str, str, int], float] = {}
    try:
        all_months = months_back(LAST_MONTH, max(HISTORY_SIZES))
        done = 0
        for size in HISTORY_SIZES:
            new_months = all_months[done:size]
            for month in new_months:
                for step, seconds in _ingest_month(month, trips, paths).items():
                    setup[step].append(seconds)
            _load_baseline(db_file, new_months, paths)
            done = size

            oldest = parse_month(all_months[size - 1])
            ranges = {
                "1_month_range": reports_request.ReportRequest.from_conf(
                    {"borough": "Manhattan", "start_date": "2024-01-01", "end_date": "2024-02-01",
                     "sources": ["yellow"], "name": f"bench_month_{size}"}
                ),
                "full_history_range": reports_request.ReportRequest.from_conf(
                    {"borough": "Manhattan", "start_date": oldest.isoformat(), "end_date": "2024-02-01",
                     "sources": ["yellow"], "name": f"bench_history_{size}"}
                ),
            }
            # Warm imports, fonts and the page cache for both sides before anything is timed.
            render.render_report(ranges["1_month_range"], ours_paths)
            baseline_report(db_file, ranges["1_month_range"], base_paths)

            for range_name, request in ranges.items():
                started = time.perf_counter()
                ours = render.render_report(request, ours_paths)
                ours_total = ours.total_trips
                timings["ours", range_name, size] = time.perf_counter() - started
                started = time.perf_counter()
                base = baseline_report(db_file, request, base_paths)
                base_total = base.total_trips
                timings["baseline", range_name, size] = time.perf_counter() - started

                same = ours.csv.read_bytes() == base.csv.read_bytes()
                rows.append(_row(f"csv_matches_baseline {range_name} @{size}mo", same, "bool", "True", same))

                # The counting alone (no chart, no files): the part that can grow with history.
                started = time.perf_counter()
                query.report_counts(request, ours_paths)
                timings["ours_query", range_name, size] = time.perf_counter() - started
                started = time.perf_counter()
                baseline_counts(db_file, request)
                timings["baseline_query", range_name, size] = time.perf_counter() - started
                rows.append(_row(f"total_trips {range_name} @{size}mo", ours_total, "trips", None,
                                 None if ours_total == base_total else False))
    finally:
        if previous_env is None:
            os.environ.pop("TAXIFLOW_DATA_DIR", None)
        else:
            os.environ["TAXIFLOW_DATA_DIR"] = previous_env

    for step, values in setup.items():
        rows.append(_row(f"setup_{step}_seconds_per_month (untimed setup)", sum(values) / len(values), "s"))
    rows.append(_row("baseline_db_size", db_file.stat().st_size / 1e6, "MB"))
    for range_name in ("1_month_range", "full_history_range"):
        for size in HISTORY_SIZES:
            ours = timings["ours", range_name, size]
            base = timings["baseline", range_name, size]
            rows.append(_row(f"ours {range_name} @{size}mo", ours, "s"))
            rows.append(_row(f"baseline {range_name} @{size}mo", base, "s"))
        for size in HISTORY_SIZES:
            rows.append(_row(f"ours query only {range_name} @{size}mo", timings["ours_query", range_name, size], "s"))
            rows.append(_row(f"baseline query+pivot only {range_name} @{size}mo",
                             timings["baseline_query", range_name, size], "s"))
        largest = max(HISTORY_SIZES)
        query_ratio = timings["ours_query", range_name, largest] / timings["baseline_query", range_name, largest]
        rows.append(_row(f"ratio query only ours/baseline {range_name} @{largest}mo", query_ratio, "x"))
        ratio = timings["ours", range_name, largest] / timings["baseline", range_name, largest]
        if range_name == TARGET_RANGE:
            rows.append(_row(f"ratio ours/baseline {range_name} @{largest}mo", ratio, "x",
                             f"<= {RATIO_TARGET}", ratio <= RATIO_TARGET))
        else:  # both sides draw the same chart, which dominates once DuckDB prunes a short range
            rows.append(_row(f"ratio ours/baseline {range_name} @{largest}mo (info)", ratio, "x"))
        flat = timings["ours", range_name, largest] / timings["ours", range_name, min(HISTORY_SIZES)]
        rows.append(_row(f"flatness ours @{largest}mo/@{min(HISTORY_SIZES)}mo {range_name}", flat, "x",
                         f"<= {FLATNESS_TARGET}", flat <= FLATNESS_TARGET))
    return rows


if __name__ == "__main__":
    import argparse
    import json

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--work-dir", type=Path, default=Path("benchmarks/.work/bench_report"))
    args = parser.parse_args()
    shutil.rmtree(args.work_dir, ignore_errors=True)
    print(json.dumps(run(args.work_dir, quick=args.quick), indent=2))
