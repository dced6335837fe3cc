"""Benchmark: the other eras at full size.

1. **lon/lat -> zone**: ``geo.zone_index().lookup`` on a synthetic 14M-point month (the size of a
   2013 yellow month; ``quick``: 1.4M), in batches of 1M as the ingest does, in a child pinned to
   one core. Target >= 1M points/s.
2. **lon/lat month ingest**: ``process_partition`` of a synthetic 14M-row yellow month in TLC's
   2015 column era (pickup and dropoff coordinates, no zone ids; ``quick``: 1.4M), two cores, the
   default 1 GB DuckDB memory limit: it must finish; rows/s and peak RSS are reported.
3. **FHVHV month ingest**: ``process_partition`` of a synthetic 20M-row fhvhv month with TLC's fhvhv
   Parquet columns (``quick``: 2M), two cores. Targets >= 3M rows/s and peak RSS <= 1.5 GB.

Points are drawn like taxi pickups: most around Manhattan, some anywhere in the city, some at 0,0
or missing. Timings are the best of ``REPEATS`` runs; peak RSS the largest.

    .venv/bin/python benchmarks/bench_eras.py [--quick] [--work-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from taxiflow.config import DATA_DIR_ENV, DataPaths, Partition
from taxiflow.data.raw import copy_to_raw
from taxiflow.data.storage import data_paths

LONLAT_ROWS, LONLAT_QUICK = 14_000_000, 1_400_000
FHVHV_ROWS, FHVHV_QUICK = 20_000_000, 2_000_000
TARGET_POINTS_PER_SECOND = 1_000_000
TARGET_FHVHV_ROWS_PER_SECOND = 3_000_000
TARGET_PEAK_RSS_MB = 1536
CHUNK = 2_000_000
REPEATS = 2

_LOOKUP_CHILD = """
import json, sys, time
import numpy as np
from taxiflow.data import geo

data = np.load(sys.argv[1])
lon, lat = data["lon"], data["lat"]
index = geo.zone_index()  # built once per process (~1 s): not part of the throughput
started = time.perf_counter()
found = 0
for start in range(0, len(lon), 1 << 20):
    zones = index.lookup(lon[start:start + (1 << 20)], lat[start:start + (1 << 20)])
    found += int((zones != geo.NO_ZONE).sum())
json.dump({"seconds": time.perf_counter() - started, "points": len(lon), "in_a_zone": found}, sys.stdout)
"""

_INGEST_CHILD = """
import json, sys, time
import duckdb
from taxiflow.config import Partition
from taxiflow.data import ingest
from taxiflow.data.raw import copy_to_raw
started = time.perf_counter()
summary = ingest.process_partition(Partition(sys.argv[1], sys.argv[2]))
json.dump({"seconds": time.perf_counter() - started, "rows_read": summary["rows_read"],
           "rows_written": summary["rows_written"], "rows_unknown_zone": summary["rows_unknown_zone"]}, sys.stdout)
"""


def synthetic_points(rng, n: int):
    """lon, lat like taxi pickups: 80 % around Manhattan, 15 % anywhere in the city, 3 % at 0,0, 2 % missing."""
    import numpy as np

    lon = rng.normal(-73.975, 0.012, n)  # midtown, spread along the island
    lat = rng.normal(40.755, 0.02, n)
    kind = rng.random(n)
    city = (kind >= 0.80) & (kind < 0.95)
    lon[city] = rng.uniform(-74.25, -73.70, city.sum())
    lat[city] = rng.uniform(40.50, 40.91, city.sum())
    zero = (kind >= 0.95) & (kind < 0.98)
    lon[zero], lat[zero] = 0.0, 0.0
    lon[kind >= 0.98], lat[kind >= 0.98] = np.nan, np.nan
    return lon, lat


def _pin(cores: int):
    def pin() -> None:
        os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:cores])

    return pin


def _child(code: str, args: list[str], cores: int, env: dict | None = None) -> dict:
    with tempfile.TemporaryFile("w+") as out:
        child = subprocess.Popen(
            [sys.executable, "-c", code, *args], stdout=out, env={**os.environ, **(env or {})},
            preexec_fn=_pin(cores),
        )
        _, status, usage = os.wait4(child.pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise RuntimeError(f"benchmark child failed with exit code {os.waitstatus_to_exitcode(status)}")
        out.seek(0)
        result = json.load(out)
    result["peak_rss_mb"] = usage.ru_maxrss / 1024
    return result


def write_lonlat_month(path: Path, rows: int) -> None:
    """A yellow month in TLC's 2015 era (coordinates, no zone ids), written in chunks."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(2015)
    writer = None
    start = np.datetime64("2015-01-01T00:00:00", "us")
    try:
        for done in range(0, rows, CHUNK):
            n = min(CHUNK, rows - done)
            pickup = start + rng.integers(0, 31 * 86400, n).astype("timedelta64[s]")
            p_lon, p_lat = synthetic_points(rng, n)
            d_lon, d_lat = synthetic_points(rng, n)
            fare = rng.gamma(2.0, 6.0, n).round(2)
            table = pa.table({
                "VendorID": pa.array(rng.integers(1, 3, n), pa.int64()),
                "tpep_pickup_datetime": pa.array(pickup),
                "tpep_dropoff_datetime": pa.array(pickup + rng.integers(60, 3600, n).astype("timedelta64[s]")),
                "passenger_count": pa.array(rng.integers(1, 7, n), pa.int64()),
                "trip_distance": pa.array(rng.gamma(1.5, 2.0, n).round(2)),
                "pickup_longitude": p_lon, "pickup_latitude": p_lat,
                "RateCodeID": pa.array(np.ones(n, dtype=np.int64)),
                "dropoff_longitude": d_lon, "dropoff_latitude": d_lat,
                "payment_type": pa.array(rng.integers(1, 3, n), pa.int64()),
                "fare_amount": fare, "tip_amount": (fare * 0.15).round(2), "total_amount": (fare * 1.3).round(2),
            })
            writer = writer or pq.ParquetWriter(str(path), table.schema)
            writer.write_table(table)
    finally:
        if writer:
            writer.close()


FHVHV_STRING_COLUMNS = {
    "hvfhs_license_num": ["HV0002", "HV0003", "HV0004", "HV0005"],
    "dispatching_base_num": ["B02764", "B02765", "B02869", "B02510", "B02800"],
    "originating_base_num": ["B02764", "B02765", "B02869", "B02510", "B02800"],
}
FHVHV_FLAGS = ("shared_request_flag", "shared_match_flag", "access_a_ride_flag", "wav_request_flag", "wav_match_flag")


def write_fhvhv_month(path: Path, rows: int) -> None:
    """An fhvhv month with TLC's Parquet columns and types, written in chunks of 2M rows."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(2019)
    start = np.datetime64("2024-01-01T00:00:00", "us")
    writer = None
    try:
        for done in range(0, rows, CHUNK):
            n = min(CHUNK, rows - done)

            def text(values, n=n):
                return pa.DictionaryArray.from_arrays(
                    pa.array(rng.integers(0, len(values), n), pa.int32()), pa.array(values)
                ).cast(pa.string())

            pickup = start + rng.integers(0, 31 * 86400, n).astype("timedelta64[s]")
            fare = rng.gamma(2.0, 10.0, n).round(2)
            columns = {name: text(values) for name, values in FHVHV_STRING_COLUMNS.items()}
            columns |= {
                "request_datetime": pa.array(pickup - rng.integers(60, 600, n).astype("timedelta64[s]")),
                "on_scene_datetime": pa.array(pickup - rng.integers(0, 120, n).astype("timedelta64[s]")),
                "pickup_datetime": pa.array(pickup),
                "dropoff_datetime": pa.array(pickup + rng.integers(120, 3600, n).astype("timedelta64[s]")),
                "PULocationID": pa.array(rng.integers(1, 266, n), pa.int64()),
                "DOLocationID": pa.array(rng.integers(1, 266, n), pa.int64()),
                "trip_miles": rng.gamma(1.5, 3.0, n).round(3),
                "trip_time": pa.array(rng.integers(120, 3600, n), pa.int64()),
                "base_passenger_fare": fare, "tolls": np.zeros(n), "bcf": (fare * 0.025).round(2),
                "sales_tax": (fare * 0.08875).round(2), "congestion_surcharge": np.full(n, 2.75),
                "airport_fee": np.zeros(n), "tips": (fare * rng.random(n) * 0.1).round(2),
                "driver_pay": (fare * 0.7).round(2),
            }
            columns |= {flag: text(["N", "Y"]) for flag in FHVHV_FLAGS}
            columns["cbd_congestion_fee"] = np.full(n, 1.5)
            table = pa.table(columns)
            writer = writer or pq.ParquetWriter(str(path), table.schema)
            writer.write_table(table)
    finally:
        if writer:
            writer.close()


def _prepare(paths: DataPaths, source: str, month: str, rows: int, writer) -> None:
    import pyarrow.parquet as pq

    landing = paths.landing_dir(Partition(source, month))
    file = landing / f"{source}_tripdata_{month}.parquet"
    if not (file.is_file() and pq.ParquetFile(file).metadata.num_rows == rows):
        shutil.rmtree(landing, ignore_errors=True)
        landing.mkdir(parents=True)
        writer(file, rows)
        (landing / "_SUCCESS").touch()
    copy_to_raw(Partition(source, month), paths)


def _ingest_rows(paths: DataPaths, source: str, month: str, label: str, rows_target: int | None) -> list[dict]:
    env = {DATA_DIR_ENV: str(paths.root), "TAXIFLOW_DUCKDB_THREADS": "2", "TAXIFLOW_INGEST_SOURCES": "all"}
    runs = [_child(_INGEST_CHILD, [source, month], cores=2, env=env) for _ in range(REPEATS)]
    best = min(runs, key=lambda run: run["seconds"])
    rate = best["rows_read"] / best["seconds"]
    peak = max(run["peak_rss_mb"] for run in runs)
    name = f"{label} ({best['rows_read']:,} rows, 2 cores, 1 GB DuckDB limit, best of {REPEATS})"
    return [
        {"benchmark": name, "metric": "rows/s", "value": round(rate), "unit": "rows/s",
         "target": f">= {rows_target}" if rows_target else None,
         "ok": (rate >= rows_target) if rows_target else None},
        {"benchmark": name, "metric": "peak RSS", "value": round(peak, 1), "unit": "MB",
         "target": f"<= {TARGET_PEAK_RSS_MB}", "ok": peak <= TARGET_PEAK_RSS_MB},
    ]


def run(work_dir: Path, quick: bool = False) -> list[dict]:
    import numpy as np

    work_dir = Path(work_dir).resolve()
    work_dir.mkdir(parents=True, exist_ok=True)
    paths = DataPaths(work_dir / "data")
    paths.reference.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(data_paths().zone_table, paths.zone_table)
    results: list[dict] = []

    # 1. lon/lat -> zone, one core
    points = LONLAT_QUICK if quick else LONLAT_ROWS
    arrays = work_dir / f"points-{points}.npz"
    if not arrays.is_file():
        lon, lat = synthetic_points(np.random.default_rng(13), points)
        np.savez(arrays, lon=lon, lat=lat)
        del lon, lat
    runs = [_child(_LOOKUP_CHILD, [str(arrays)], cores=1) for _ in range(REPEATS)]
    best = min(runs, key=lambda run: run["seconds"])
    rate = best["points"] / best["seconds"]
    name = f"lon/lat -> taxi zone ({best['points']:,} points, 1 core, best of {REPEATS})"
    results += [
        {"benchmark": name, "metric": "points/s", "value": round(rate), "unit": "points/s",
         "target": f">= {TARGET_POINTS_PER_SECOND}", "ok": rate >= TARGET_POINTS_PER_SECOND},
        {"benchmark": name, "metric": "peak RSS (incl. the points)", "value": round(
            max(run["peak_rss_mb"] for run in runs), 1), "unit": "MB", "target": None, "ok": None},
        {"benchmark": name, "metric": "share in a zone", "value": round(best["in_a_zone"] / best["points"], 3),
         "unit": "", "target": None, "ok": None},
    ]

    # 2. a lon/lat month through process_partition
    rows = LONLAT_QUICK if quick else LONLAT_ROWS
    _prepare(paths, "yellow", "2015-01", rows, write_lonlat_month)
    results += _ingest_rows(paths, "yellow", "2015-01", "ingest a lon/lat yellow month (2015 era)", None)

    # 3. an FHVHV month through process_partition
    rows = FHVHV_QUICK if quick else FHVHV_ROWS
    _prepare(paths, "fhvhv", "2024-01", rows, write_fhvhv_month)
    results += _ingest_rows(
        paths, "fhvhv", "2024-01", "ingest an FHVHV month (TLC's Parquet columns)",
        None if quick else TARGET_FHVHV_ROWS_PER_SECOND,
    )
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tenth of the rows")
    parser.add_argument(
        "--work-dir", type=Path, default=Path(__file__).resolve().parent / ".work" / "bench_eras",
        help="where the synthetic months are generated (reused between runs)",
    )
    args = parser.parse_args(argv)
    rows = run(args.work_dir, quick=args.quick)
    for row in rows:
        print(json.dumps(row))
    return 1 if any(row["ok"] is False for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
