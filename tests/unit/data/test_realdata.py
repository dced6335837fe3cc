"""The real TLC files (tests/data/tlc) through copy, ingest and metrics, checked against pandas.

The expected numbers are computed here independently, with pandas straight on the shared files and
the zone CSV, and compared with what ``hourly_borough`` says. A partition stores only its own month's
pickups (the few stray rows of a real TLC file are counted in the summary, not stored), so the
expected counts are the file's rows whose pickup falls in the file's month.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pandas as pd
import pytest

from taxiflow.config import SUCCESS_MARKER, DataPaths, Partition
from taxiflow.data import ingest, metrics, warehouse
from taxiflow.data.raw import copy_to_raw

pytestmark = pytest.mark.realdata

YELLOW_MONTHS = ["2018-12", "2019-01", "2019-02", "2019-03", "2019-08", "2020-01"]  # the shipped samples
GREEN_MONTHS = ["2023-12", "2024-01"]

# The pickup columns as each file family names them (written out here, not read from config).
PICKUP_COLUMNS = {
    "green": ("lpep_pickup_datetime", "PULocationID"),
    "yellow": ("pickup_datetime", "pickup_location_id"),
}


def tlc_file(tlc_dir: Path, source: str, month: str) -> Path:
    if source == "green":
        return tlc_dir / "green" / f"green_tripdata_{month}.parquet"
    return tlc_dir / "yellow-samples" / f"yellow_tripdata_sample_{month}.csv"


def read_pickups(path: Path, source: str) -> pd.DataFrame:
    """pickup_at and pickup_zone_id of every row of one TLC file, read with pandas alone."""
    time_column, zone_column = PICKUP_COLUMNS[source]
    if path.suffix == ".parquet":
        frame = pd.read_parquet(path, columns=[time_column, zone_column])
    else:
        frame = pd.read_csv(path, usecols=[time_column, zone_column], dtype=str, keep_default_na=False)
    return pd.DataFrame({
        "pickup_at": pd.to_datetime(frame[time_column], errors="coerce"),
        "pickup_zone_id": pd.to_numeric(frame[zone_column], errors="coerce").astype("Int64"),
    })


def boroughs_by_zone(tlc_dir: Path) -> dict[int, str]:
    zones = pd.read_csv(tlc_dir / "taxi_zone_lookup.csv", keep_default_na=False, dtype=str)
    return {
        int(row.LocationID): "Unknown" if row.Borough in ("", "N/A") else row.Borough
        for row in zones.itertuples()
    }


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def ingested(tlc_dir, tmp_path_factory):
    """Every shipped month ingested into one private data root: (paths, summaries by (source, month))."""
    paths = DataPaths(tmp_path_factory.mktemp("realdata").resolve())
    paths.reference.mkdir(parents=True)
    shutil.copyfile(tlc_dir / "taxi_zone_lookup.csv", paths.zone_table)
    summaries = {}
    for source, months in (("green", GREEN_MONTHS), ("yellow", YELLOW_MONTHS)):
        for month in months:
            landing = paths.landing_dir(Partition(source, month))
            landing.mkdir(parents=True)
            original = tlc_file(tlc_dir, source, month)
            shutil.copyfile(original, landing / original.name)
            (landing / SUCCESS_MARKER).touch()
            copy_to_raw(Partition(source, month), paths)
            summaries[source, month] = ingest.process_partition(Partition(source, month), paths)
            metrics.build_metrics(Partition(source, month), paths)
    return paths, summaries


def test_tlc_files_are_unchanged(tlc_dir, ingested):
    for line in (tlc_dir / "SHA256SUMS").read_text().splitlines():
        if line.strip():
            digest, name = line.split(maxsplit=1)
            assert sha256(tlc_dir / name.lstrip("*")) == digest, f"{name} differs from SHA256SUMS"


def test_every_row_is_written_or_rejected(tlc_dir, ingested):
    _, summaries = ingested
    assert len(summaries) == len(GREEN_MONTHS) + len(YELLOW_MONTHS)
    for (source, month), summary in summaries.items():
        pickups = read_pickups(tlc_file(tlc_dir, source, month), source)
        outside = pickups["pickup_at"].notna() & (pickups["pickup_at"].dt.strftime("%Y-%m") != month)
        assert summary["rows_read"] == len(pickups), (source, month)
        assert summary["rows_outside_month"] == int(outside.sum()), (source, month)
        assert (
            summary["rows_written"] + summary["rows_rejected"] + summary["rows_outside_month"] == len(pickups)
        ), (source, month)
        # Strays of the month before and after are kept for their month; the rest (2008 in yellow 2019-08) dropped.
        first = pd.Timestamp(f"{month}-01")
        adjacent = {(first + pd.DateOffset(months=step)).strftime("%Y-%m") for step in (-1, 1)}
        kept = pickups.loc[outside, "pickup_at"].dt.strftime("%Y-%m").isin(adjacent)
        assert summary["rows_strays_kept"] == int(kept.sum()), (source, month)
        assert summary["rows_strays_dropped"] == int((~kept).sum()), (source, month)


@pytest.mark.parametrize(
    "source, month", [("green", m) for m in GREEN_MONTHS] + [("yellow", m) for m in YELLOW_MONTHS]
)
def test_hourly_borough_matches_pandas(tlc_dir, ingested, source, month):
    paths, _ = ingested
    trips = read_pickups(tlc_file(tlc_dir, source, month), source).dropna(subset=["pickup_at"])
    trips = trips[trips["pickup_at"].dt.strftime("%Y-%m") == month].copy()
    borough_of = boroughs_by_zone(tlc_dir)
    trips["borough"] = [
        borough_of.get(zone, "Unknown") if pd.notna(zone) else "Unknown" for zone in trips["pickup_zone_id"]
    ]
    trips["hour"] = trips["pickup_at"].dt.hour
    trips["day"] = trips["pickup_at"].dt.date

    con = warehouse.connect(paths)
    by_hour = con.execute(
        "SELECT borough, pickup_hour, pickup_date, sum(trips) FROM hourly_borough "
        "WHERE source = ? AND month = ? GROUP BY ALL",
        [source, month],
    ).fetchall()

    expected_borough = trips.groupby("borough").size().to_dict()
    got_borough: dict[str, int] = {}
    for borough, _, _, n in by_hour:
        got_borough[borough] = got_borough.get(borough, 0) + n
    assert got_borough == expected_borough

    expected_hour = trips.groupby(["borough", "hour"]).size().to_dict()
    got_hour: dict[tuple[str, int], int] = {}
    for borough, hour, _, n in by_hour:
        got_hour[borough, hour] = got_hour.get((borough, hour), 0) + n
    assert got_hour == expected_hour

    expected_day = trips.groupby("day").size().to_dict()
    got_day: dict = {}
    for _, _, day, n in by_hour:
        got_day[day] = got_day.get(day, 0) + n
    assert got_day == expected_day


def test_green_december_reports_its_november_pickups_and_does_not_store_them(tlc_dir, ingested):
    paths, summaries = ingested
    trips = read_pickups(tlc_file(tlc_dir, "green", "2023-12"), "green")
    november = trips[trips["pickup_at"] < pd.Timestamp("2023-12-01")]
    assert len(november) == 4  # TLC's own file: a few stray rows, well under the 1 % refusal line
    con = warehouse.connect(paths)
    (counted,) = con.execute(
        "SELECT count(*) FROM hourly_borough WHERE source = ? AND month = ? AND pickup_date < ?",
        ["green", "2023-12", pd.Timestamp("2023-12-01").date()],
    ).fetchone()
    assert counted == 0
    assert summaries["green", "2023-12"]["rows_outside_month"] == len(november)
    assert summaries["green", "2023-12"]["rows_outside_month_by_month"] == {"2023-11": len(november)}
    assert summaries["green", "2023-12"]["pickup_min"].startswith("2023-11-24")


def test_green_january_strays_into_december_are_not_counted_twice(tlc_dir, ingested):
    """January's file holds two December pickups; December's report counts December's file only."""
    paths, summaries = ingested
    assert summaries["green", "2024-01"]["rows_outside_month_by_month"] == {"2023-12": 2}
    december = read_pickups(tlc_file(tlc_dir, "green", "2023-12"), "green")
    in_december = december["pickup_at"].dt.strftime("%Y-%m") == "2023-12"
    con = warehouse.connect(paths)
    (counted,) = con.execute(
        "SELECT sum(trips) FROM hourly_borough WHERE source = 'green' AND pickup_date >= ? AND pickup_date < ?",
        [pd.Timestamp("2023-12-01").date(), pd.Timestamp("2024-01-01").date()],
    ).fetchone()
    assert counted == int(in_december.sum())


def test_yellow_2019_08_reports_its_2008_pickup_without_storing_it(ingested):
    paths, summaries = ingested
    assert summaries["yellow", "2019-08"]["pickup_min"] == "2008-12-31 23:49:36"
    assert summaries["yellow", "2019-08"]["rows_outside_month_by_month"] == {"2008-12": 1}
    con = warehouse.connect(paths)
    assert con.execute(
        "SELECT count(*) FROM hourly_borough WHERE source = ? AND pickup_date < ?",
        ["yellow", pd.Timestamp("2009-01-01").date()],
    ).fetchone() == (0,)
