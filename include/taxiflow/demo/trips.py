"""Synthetic but realistic TLC months, for demos, tests and benchmarks.

``generate_month`` writes one month of yellow or green trips in TLC's own file schema into the
landing folder, exactly as a download would leave it: the parquet file under a temporary name,
renamed into place, and ``_SUCCESS`` last, so a sensor never sees a marker beside a half-written file.

The numbers follow the shapes of the real records: a night trough around 4-5am and an evening peak,
weekends that start late and run late, dips on Thanksgiving, Christmas and New Year's Day, yellow
pickups ~90% in Manhattan and green ones in upper Manhattan and the outer boroughs, zone ids drawn
per borough from the real zone table, a few percent of rows with null passenger counts (TLC's
"unknown" rows), a handful of Unknown zones 264/265 and a few pickups from the previous month's
last day. The same seed gives the same trips, byte for byte.

    python -m taxiflow.demo --months 2023-12 2024-01 [--data-dir D] [--trips N]
"""

from __future__ import annotations

import argparse
import calendar
import sys
import time
import zlib
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from taxiflow.config import (
    SOURCES,
    SUCCESS_MARKER,
    DataPaths,
    Partition,
    parse_month,
)
from taxiflow.data import files
from taxiflow.data.storage import data_paths
from taxiflow.data.tlc import trip_file_name
from taxiflow.data.warehouse import zone_table_path
from taxiflow.demo.shapes import (
    AIRPORTS,
    DROPOFF_SHARES,
    JFK,
    LAGUARDIA,
    NEWARK,
    PICKUP_SHARES,
    SPEED_MPH,
    cell_weights,
    read_zones,
    zone_probabilities,
)

DEFAULT_SEED = 20240101
DEFAULT_MONTHS = ("2023-12", "2024-01")
DEFAULT_SOURCES = ("yellow", "green")
# A tenth of a real month: big enough for every borough to show a shape, small enough for seconds.
DEFAULT_TRIPS = {"yellow": 300_000, "green": 40_000}

# --- Trips ----------------------------------------------------------------------------------------


def _rng(seed: int, source: str, month: str) -> np.random.Generator:
    first = parse_month(month)
    return np.random.default_rng([seed, zlib.crc32(source.encode()), first.year, first.month])


def _draw(rng: np.random.Generator, values: Iterable, probs: Iterable[float], size: int) -> np.ndarray:
    probs = np.asarray(list(probs), dtype=float)
    return rng.choice(np.asarray(list(values)), size=size, p=probs / probs.sum())


def _money(values: np.ndarray) -> np.ndarray:
    return np.round(values, 2)


def build_trips(
    source: str, month: str, trips: int, seed: int, zones: list[tuple[int, str, str]]
) -> pa.Table:
    """One month of synthetic trips as an Arrow table in TLC's schema for ``source``."""
    if source not in SOURCES:
        raise ValueError(f"source must be one of {', '.join(SOURCES)}, got {source!r}")
    if trips < 0:
        raise ValueError(f"trips must be >= 0, got {trips}")
    rng = _rng(seed, source, month)
    first = parse_month(month)
    days = calendar.monthrange(first.year, first.month)[1]
    n = int(trips)

    # When: a (day, hour) cell per trip, a second within it; a few stragglers from the day before.
    strays = n // 20_000
    counts = rng.multinomial(n - strays, cell_weights(source, first, days))
    hour_us = np.int64(3_600_000_000)
    month_start = np.datetime64(first.isoformat(), "us").astype(np.int64)
    cell_start = month_start + np.arange(days * 24, dtype=np.int64) * hour_us
    pickup = np.repeat(cell_start, counts)
    stray_start = month_start - 24 * hour_us
    pickup = np.concatenate([rng.integers(stray_start, month_start, strays, dtype=np.int64) // 1_000_000
                             * 1_000_000, pickup + rng.integers(0, 3600, n - strays) * 1_000_000])
    pickup.sort()
    hour = (pickup // hour_us) % 24
    weekday = ((pickup // (24 * hour_us)) + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0

    # Where.
    ids, pickup_p = zone_probabilities(source, zones, PICKUP_SHARES[source], pickup=True)
    _, dropoff_p = zone_probabilities(source, zones, DROPOFF_SHARES[source], pickup=False)
    pu = rng.choice(ids, size=n, p=pickup_p)
    do = rng.choice(ids, size=n, p=dropoff_p)
    borough_of = {zone_id: borough for zone_id, borough, _ in zones}
    manhattan = np.array([zone_id for zone_id, b in borough_of.items() if b == "Manhattan"])
    do_manhattan = np.isin(do, manhattan)
    pu_manhattan = np.isin(pu, manhattan)
    airport = np.isin(pu, AIRPORTS)

    # How far and how long.
    median_miles, sigma = (1.7, 0.75) if source == "yellow" else (1.9, 0.85)
    distance = rng.lognormal(np.log(median_miles), sigma, n)
    distance = np.where(airport, np.clip(rng.normal(np.where(pu == JFK, 17.0, 10.5), 3.0), 6, 35), distance)
    distance = np.clip(distance, 0.01, 80.0)
    distance[rng.random(n) < 0.012] = 0.0  # meters that never ran
    distance = np.round(distance, 2)
    speed = SPEED_MPH[hour] * rng.lognormal(0.0, 0.25, n)
    seconds = np.maximum(distance / speed * 3600 + rng.exponential(90, n) + 30, 10).astype(np.int64)
    dropoff = pickup + seconds * 1_000_000
    minutes = seconds / 60.0

    # TLC's "unknown" rows: no passenger count, rate code, flag or surcharges from the meter.
    unknown_share = 0.035 if source == "yellow" else 0.065
    unknown = rng.random(n) < unknown_share

    vendor = _draw(rng, [1, 2], [0.27, 0.73] if source == "yellow" else [0.13, 0.87], n).astype(np.int32)
    passengers = _draw(rng, [0, 1, 2, 3, 4, 5, 6], [0.02, 0.74, 0.15, 0.035, 0.02, 0.02, 0.015], n)
    jfk_flat = (pu == JFK) & do_manhattan if source == "yellow" else np.zeros(n, dtype=bool)
    ratecode = np.where(jfk_flat, 2, np.where(do == NEWARK, 3, 1))
    ratecode = np.where(rng.random(n) < 0.004, 5, ratecode)  # negotiated fares
    flag_y = (rng.random(n) < 0.01) & (vendor == 1)

    # Money, in 2023 rules: $3 flag drop, $3.50 a mile, time in slow traffic, night/rush extras.
    fare = np.round(3.0 + 3.5 * distance + 0.35 * minutes, 1)
    fare = np.where(jfk_flat, 70.0, fare)
    rush = (weekday < 5) & (hour >= 16) & (hour < 20)
    night = (hour >= 20) | (hour < 6)
    extra = np.where(rush, 2.5, np.where(night, 1.0, 0.0))
    if source == "yellow":
        extra = extra + np.where(pu == LAGUARDIA, 5.0, 0.0)
    mta_tax = np.full(n, 0.5)
    improvement = np.full(n, 1.0)
    congestion_rate = 2.5 if source == "yellow" else 2.75
    congestion = np.where(pu_manhattan | do_manhattan if source == "yellow" else do_manhattan,
                          congestion_rate, 0.0)
    airport_fee = np.where(airport, 1.75, 0.0)
    tolls = np.where(rng.random(n) < np.where(airport, 0.35, 0.01), 6.94, 0.0)
    card = [0.78, 0.18, 0.007, 0.013] if source == "yellow" else [0.65, 0.32, 0.02, 0.01]
    payment = _draw(rng, [1, 2, 3, 4], card, n)
    tipper = (payment == 1) & (rng.random(n) < 0.86)
    tip = np.where(tipper, _money(fare * rng.choice([0.2, 0.25, 0.3, 0.15, 0.18], n)
                                   + rng.normal(0, 0.3, n).clip(-0.5, 2)), 0.0)
    tip = np.maximum(tip, 0.0)
    surcharges = extra + mta_tax + improvement + tolls + np.where(unknown, 0.0, congestion)
    if source == "yellow":
        surcharges = surcharges + np.where(unknown, 0.0, airport_fee)
    total = _money(fare + tip + surcharges)
    if source == "yellow":
        payment = np.where(unknown, 0, payment)  # TLC codes a flex-fare/unknown trip as 0

    def nullable(values: np.ndarray, kind: pa.DataType) -> pa.Array:
        return pa.array(values, type=kind, mask=unknown)

    flag = pa.DictionaryArray.from_arrays(
        pa.array(flag_y.astype(np.int8), mask=unknown), pa.array(["N", "Y"])
    ).cast(pa.large_string())
    timestamp = pa.timestamp("us")
    common = {
        "VendorID": pa.array(vendor, pa.int32()),
        "pickup": pa.array(pickup.astype("datetime64[us]"), timestamp),
        "dropoff": pa.array(dropoff.astype("datetime64[us]"), timestamp),
        "passenger_count": nullable(passengers.astype(np.int64), pa.int64()),
        "trip_distance": pa.array(distance, pa.float64()),
        "RatecodeID": nullable(ratecode.astype(np.int64), pa.int64()),
        "store_and_fwd_flag": flag,
        "PULocationID": pa.array(pu, pa.int32()),
        "DOLocationID": pa.array(do, pa.int32()),
        "fare_amount": pa.array(fare, pa.float64()),
        "extra": pa.array(extra, pa.float64()),
        "mta_tax": pa.array(mta_tax, pa.float64()),
        "tip_amount": pa.array(tip, pa.float64()),
        "tolls_amount": pa.array(tolls, pa.float64()),
        "improvement_surcharge": pa.array(improvement, pa.float64()),
        "total_amount": pa.array(total, pa.float64()),
        "congestion_surcharge": nullable(congestion, pa.float64()),
    }
    if source == "yellow":
        columns = {
            "VendorID": common["VendorID"],
            "tpep_pickup_datetime": common["pickup"],
            "tpep_dropoff_datetime": common["dropoff"],
            "passenger_count": common["passenger_count"],
            "trip_distance": common["trip_distance"],
            "RatecodeID": common["RatecodeID"],
            "store_and_fwd_flag": common["store_and_fwd_flag"],
            "PULocationID": common["PULocationID"],
            "DOLocationID": common["DOLocationID"],
            "payment_type": pa.array(payment.astype(np.int64), pa.int64()),
            **{key: common[key] for key in ("fare_amount", "extra", "mta_tax", "tip_amount",
                                            "tolls_amount", "improvement_surcharge", "total_amount",
                                            "congestion_surcharge")},
            "Airport_fee": nullable(airport_fee, pa.float64()),
        }
    else:
        trip_type = np.where(rng.random(n) < 0.03, 2, 1)  # 2 = dispatched
        columns = {
            "VendorID": common["VendorID"],
            "lpep_pickup_datetime": common["pickup"],
            "lpep_dropoff_datetime": common["dropoff"],
            "store_and_fwd_flag": common["store_and_fwd_flag"],
            "RatecodeID": common["RatecodeID"],
            "PULocationID": common["PULocationID"],
            "DOLocationID": common["DOLocationID"],
            "passenger_count": common["passenger_count"],
            **{key: common[key] for key in ("trip_distance", "fare_amount", "extra", "mta_tax",
                                            "tip_amount", "tolls_amount")},
            "ehail_fee": pa.nulls(n, pa.float64()),
            "improvement_surcharge": common["improvement_surcharge"],
            "total_amount": common["total_amount"],
            "payment_type": nullable(payment.astype(np.int64), pa.int64()),
            "trip_type": nullable(trip_type.astype(np.int64), pa.int64()),
            "congestion_surcharge": common["congestion_surcharge"],
        }
    return pa.table(columns)


def generate_month(
    source: str,
    month: str,
    trips: int,
    seed: int = DEFAULT_SEED,
    paths: DataPaths | None = None,
    out_dir: Path | None = None,
) -> Path:
    """Write ``<landing>/<source>/<YYYY-MM>/<source>_tripdata_<YYYY-MM>.parquet``, then ``_SUCCESS``.

    ``out_dir`` replaces the landing root (the ``<source>/<YYYY-MM>/`` layout stays); the zone
    table is always read from ``paths``. Returns the parquet file's path.
    """
    paths = paths or data_paths()
    parse_month(month)
    table = build_trips(source, month, trips, seed, read_zones(zone_table_path(paths)))
    folder = (Path(out_dir) / source / month) if out_dir is not None else paths.landing_dir(Partition(source, month))
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / trip_file_name(source, month)
    marker = folder / SUCCESS_MARKER
    # A regenerated month must never show an old marker beside a file being rewritten.
    marker.unlink(missing_ok=True)
    with files.replacing(target) as temp:  # hidden, no data suffix: watchers ignore it
        pq.write_table(table, temp, compression="snappy")
    marker.touch()
    return target


def generate_demo(
    months: Iterable[str] = DEFAULT_MONTHS,
    sources: Iterable[str] = DEFAULT_SOURCES,
    trips_per_month: Mapping[str, int] | None = None,
    paths: DataPaths | None = None,
    seed: int = DEFAULT_SEED,
) -> list[Path]:
    """Generate every (source, month) of a small demo into the landing folder; returns the files."""
    paths = paths or data_paths()
    trips_per_month = dict(DEFAULT_TRIPS if trips_per_month is None else trips_per_month)
    written = []
    for month in months:
        for source in sources:
            trips = trips_per_month.get(source, DEFAULT_TRIPS.get(source, 10_000))
            written.append(generate_month(source, month, trips, seed=seed, paths=paths))
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m taxiflow.demo", description="Write synthetic TLC months into landing/."
    )
    parser.add_argument("--months", nargs="+", default=list(DEFAULT_MONTHS), metavar="YYYY-MM")
    parser.add_argument("--sources", nargs="+", default=list(DEFAULT_SOURCES), choices=list(SOURCES))
    parser.add_argument("--data-dir", type=Path, help="data root (default: $TAXIFLOW_DATA_DIR or data/)")
    parser.add_argument("--trips", type=int, help="trips per month for every source "
                        f"(default: {', '.join(f'{s} {n}' for s, n in DEFAULT_TRIPS.items())})")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    args = parser.parse_args(argv)
    for month in args.months:
        try:
            parse_month(month)
        except ValueError as err:
            parser.error(str(err))
    paths = DataPaths(args.data_dir.expanduser().resolve()) if args.data_dir else data_paths()
    for month in args.months:
        for source in args.sources:
            trips = args.trips if args.trips is not None else DEFAULT_TRIPS[source]
            started = time.perf_counter()
            try:
                path = generate_month(source, month, trips, seed=args.seed, paths=paths)
            except FileNotFoundError as err:
                print(f"error: {err}", file=sys.stderr)
                return 1
            print(f"wrote {path} ({trips:,} trips, {time.perf_counter() - started:.1f}s) + {SUCCESS_MARKER}")
    return 0
