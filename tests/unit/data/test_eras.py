"""Every TLC column era, on TLC's own files (tests/data/tlc): heads of every month 2009-2020, the
lon/lat yellow 2016-01, green 2020-12 as TLC's CSV, green 2025-02 in the 2025 schema, FHV and FHVHV.

Expected numbers are computed here independently of the code under test: line counts in Python,
pandas on the files, and for coordinates a plain shapely ``STRtree`` query of points against TLC's
shapefile (read here with pyshp, projected with pyproj), with the shapefile's own borough names.
"""

from __future__ import annotations

import hashlib
import shutil
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from taxiflow.config import DAY_NAMES, INGEST_SOURCES_ENV, SUCCESS_MARKER, DataPaths, Partition, parse_month
from taxiflow.data import ingest, metrics, readers, warehouse
from taxiflow.data.raw import copy_to_raw
from taxiflow.reports.render import render_report
from taxiflow.reports.request import ReportRequest

pytestmark = pytest.mark.realdata

# The era each month's header must be read as: TLC's own history, written out here.
EXPECTED_ERA = [
    ("yellow", "2009-01", "2009-12", "yellow-2009"),
    ("yellow", "2010-01", "2014-12", "yellow-2010"),
    ("yellow", "2015-01", "2015-06", "yellow-2015-01"),
    ("yellow", "2015-07", "2016-06", "yellow-2015-07"),
    ("yellow", "2016-07", "2018-12", "yellow-2016-07"),
    ("yellow", "2019-01", "2020-06", "yellow-2019"),
    ("green", "2013-08", "2014-12", "green-2013-08"),
    ("green", "2015-01", "2016-06", "green-2015"),
    ("green", "2016-07", "2018-12", "green-2016-07"),
    ("green", "2019-01", "2020-06", "green-2019"),
    ("fhv", "2015-01", "2016-12", "fhv-2015"),
    ("fhv", "2017-01", "2017-06", "fhv-2017-01"),
    ("fhv", "2017-07", "2017-12", "fhv-2017-07"),
    ("fhv", "2018-01", "2018-12", "fhv-2018"),
    ("fhv", "2019-01", "2020-06", "fhv-2019"),
    ("fhvhv", "2019-02", "2020-06", "fhvhv-2019-csv"),
]
LONLAT_ERAS = {"yellow-2009", "yellow-2010", "yellow-2015-01", "yellow-2015-07", "green-2013-08", "green-2015"}


def expected_era(source: str, month: str) -> str:
    return next(name for s, first, last, name in EXPECTED_ERA if s == source and first <= month <= last)


def head_rows(path: Path) -> int:
    """Rows of a head, counted by hand: non-blank lines after the header (the last one is cut short)."""
    lines = path.read_bytes().split(b"\n")[1:]
    return sum(1 for line in lines if line.strip(b"\r\n\t ,\""))


def land(paths: DataPaths, source: str, month: str, files: list[Path]) -> None:
    folder = paths.landing_dir(Partition(source, month))
    folder.mkdir(parents=True, exist_ok=True)
    for file in files:
        shutil.copyfile(file, folder / file.name)
    (folder / SUCCESS_MARKER).touch()


def ingest_month(paths: DataPaths, source: str, month: str, files: list[Path]) -> dict:
    land(paths, source, month, files)
    partition = Partition(source, month)
    copy_to_raw(partition, paths)
    summary = ingest.process_partition(partition, paths)
    metrics.build_metrics(partition, paths)
    return summary


@pytest.fixture
def paths(tlc_dir, tmp_path) -> DataPaths:
    paths = DataPaths(tmp_path.resolve())
    paths.reference.mkdir(parents=True)
    shutil.copyfile(tlc_dir / "taxi_zone_lookup.csv", paths.zone_table)
    return paths


def heads(tlc_dir: Path) -> list[Path]:
    return sorted((tlc_dir / "eras").glob("*_tripdata_*.csv"))


def test_every_month_2009_2020_of_every_source_has_a_head(tlc_dir):
    names = {path.name for path in heads(tlc_dir)}
    assert len(names) == 303
    assert {"yellow_tripdata_2009-01.csv", "green_tripdata_2013-08.csv", "fhv_tripdata_2015-01.csv",
            "fhvhv_tripdata_2019-02.csv", "yellow_tripdata_2020-06.csv"} <= names


def test_every_era_head_parses_and_every_row_is_counted(tlc_dir, paths):
    """Each head's era is the one TLC used that month; rows read = written + rejected + outside.

    Calls the column-reading functions of ``process_partition`` one head at a time (a head of a few
    rows with one stray pickup would be refused whole as "dropped under the wrong month").
    """
    con = warehouse.duckdb_connection()
    warehouse.create_zones_table(con, paths)
    seen_eras = set()
    try:
        for path in heads(tlc_dir):
            source, _, month = path.stem.split("_")
            start = datetime(parse_month(month).year, parse_month(month).month, 1)
            end = (pd.Timestamp(start) + pd.offsets.MonthBegin(1)).to_pydatetime()
            raws = [readers.inspect_raw_file(con, source, path)]
            (stats,) = ingest._file_stats(con, raws, start, end)
            query, params = readers.trips_query(raws, start, end)
            (written,) = con.execute(f"SELECT count(*) FROM ({query})", params).fetchone()

            assert stats["era"] == expected_era(source, month), path.name
            assert stats["rows_read"] == head_rows(path), path.name
            assert stats["rows_read"] == written + stats["rows_rejected"] + stats["rows_outside_month"], path.name
            assert written > 0, path.name
            if stats["era"] in LONLAT_ERAS:
                assert stats["rows_placed_by_coordinates"] == stats["rows_read"], path.name
            seen_eras.add(stats["era"])
    finally:
        con.close()
    assert seen_eras == {name for *_, name in EXPECTED_ERA}


def test_old_text_codes_become_tlc_numbers(tlc_dir, paths):
    """2009: vendor VTS/DDS and payment CASH/Credit; 2014: CMT and CRD, in a ', '-separated header."""
    summary = ingest_month(paths, "yellow", "2009-01", [tlc_dir / "eras" / "yellow_tripdata_2009-01.csv"])
    assert summary["files"][0]["era"] == "yellow-2009"
    con = warehouse.connect(paths)
    rows = con.execute(
        "SELECT vendor_id, payment_type, fare_amount, pickup_at FROM trips ORDER BY pickup_at"
    ).fetchall()
    raw = pd.read_csv(tlc_dir / "eras" / "yellow_tripdata_2009-01.csv", dtype=str, skip_blank_lines=True)
    raw = raw.dropna(subset=["Trip_Pickup_DateTime"]).sort_values("Trip_Pickup_DateTime")
    vendors = {"VTS": 2, "CMT": 1}
    payments = {"CASH": 2, "CREDIT": 1}
    for (vendor, payment, fare, _), (_, row) in zip(rows, raw.iterrows(), strict=True):
        assert vendor == vendors.get(row["vendor_name"])
        assert payment == (payments.get(row["Payment_Type"].upper()) if isinstance(row["Payment_Type"], str) else None)
        assert fare == (float(row["Fare_Amt"]) if isinstance(row["Fare_Amt"], str) else None)


# --- coordinates -> zones --------------------------------------------------------------------------


def independent_zones(zip_path: Path, lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, dict[int, str]]:
    """Zone id of each point (-1: none) by a plain STRtree query, and each zone's borough, from the shapefile."""
    import pyproj
    import shapefile
    import shapely
    from shapely.geometry import shape

    reader = shapefile.Reader(str(zip_path))
    polygons, ids, borough = [], [], {}
    for record in reader.iterShapeRecords():
        polygons.append(shape(record.shape.__geo_interface__))
        ids.append(int(record.record["LocationID"]))
        borough[int(record.record["LocationID"])] = record.record["borough"]
    reader.close()
    to_feet = pyproj.Transformer.from_crs("EPSG:4326", "EPSG:2263", always_xy=True)
    x, y = to_feet.transform(lon, lat)
    tree = shapely.STRtree(polygons)
    point_index, polygon_index = tree.query(shapely.points(x, y), predicate="intersects")
    zone = np.full(len(lon), -1)
    for point, polygon in sorted(zip(point_index, polygon_index, strict=True), reverse=True):
        zone[point] = ids[polygon]  # the lowest polygon index wins, as in the pipeline
    return zone, borough


def test_packaged_shapefile_is_tlcs(tlc_dir):
    from importlib import resources

    packaged = (resources.files("taxiflow.data") / "taxi_zones.zip").read_bytes()
    shipped = (tlc_dir / "zones" / "taxi_zones.zip").read_bytes()
    assert hashlib.sha256(packaged).digest() == hashlib.sha256(shipped).digest()


def test_lonlat_yellow_2016_01_lands_in_the_boroughs_of_an_independent_count(tlc_dir, paths):
    source_file = tlc_dir / "lonlat" / "yellow_tripdata_2016-01.csv"
    summary = ingest_month(paths, "yellow", "2016-01", [source_file])

    frame = pd.read_csv(source_file, dtype=str)
    frame["pickup_at"] = pd.to_datetime(frame["tpep_pickup_datetime"])
    frame = frame[frame["pickup_at"].dt.strftime("%Y-%m") == "2016-01"]
    zone, borough_of = independent_zones(
        tlc_dir / "zones" / "taxi_zones.zip",
        frame["pickup_longitude"].astype(float).to_numpy(), frame["pickup_latitude"].astype(float).to_numpy(),
    )
    frame["borough"] = [borough_of[z] if z >= 0 else "Unknown" for z in zone]
    expected = frame.groupby("borough").size().to_dict()
    no_zone = int((zone < 0).sum())

    con = warehouse.connect(paths)
    got = dict(con.execute("SELECT borough, sum(trips)::BIGINT FROM hourly_borough GROUP BY ALL").fetchall())
    assert got == expected
    assert expected["Manhattan"] > 1500 and 0 < no_zone < 40  # a real month: mostly Manhattan, some 0,0
    assert summary["files"][0]["era"] == "yellow-2015-07"
    assert summary["files"][0]["rows_placed_by_coordinates"] == summary["rows_read"] == 1999
    assert summary["files"][0]["rows_in_no_zone"] == no_zone
    assert summary["rows_unknown_zone"] == no_zone
    zones = con.execute("SELECT pickup_zone_id FROM trips ORDER BY pickup_at, dropoff_at").fetchall()
    assert len(zones) == len(frame)
    (dropoffs,) = con.execute("SELECT count(dropoff_zone_id) FROM trips").fetchone()
    assert dropoffs > 0.95 * len(frame)  # dropoff coordinates are placed in zones too


# --- whole months, cell by cell --------------------------------------------------------------------


def expected_cells(frame: pd.DataFrame, month: str, zone_table: Path) -> dict[tuple, int]:
    """(date, hour, borough) -> trips, by pandas: pickups in the month, borough from the zone table."""
    zones = pd.read_csv(zone_table, dtype=str, keep_default_na=False)
    borough_of = {
        int(row.LocationID): "Unknown" if row.Borough in ("", "N/A") else row.Borough for row in zones.itertuples()
    }
    frame = frame[frame["pickup_at"].dt.strftime("%Y-%m") == month]
    borough = [borough_of.get(int(z), "Unknown") if pd.notna(z) else "Unknown" for z in frame["zone"]]
    counted = pd.DataFrame({
        "date": frame["pickup_at"].dt.date, "hour": frame["pickup_at"].dt.hour, "borough": borough,
    })
    return {key: int(n) for key, n in counted.groupby(["date", "hour", "borough"]).size().items()}


def metrics_cells(paths: DataPaths, source: str, month: str) -> dict[tuple, int]:
    con = warehouse.connect(paths)
    rows = con.execute(
        "SELECT pickup_date, pickup_hour, borough, trips FROM hourly_borough WHERE source = ? AND month = ?",
        [source, month],
    ).fetchall()
    return {(day, hour, borough): trips for day, hour, borough, trips in rows}


def test_green_2020_12_csv_equals_an_independent_count_cell_by_cell(tlc_dir, paths):
    path = tlc_dir / "green-csv" / "green_tripdata_2020-12.csv.gz"
    summary = ingest_month(paths, "green", "2020-12", [path])
    raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    frame = pd.DataFrame({
        "pickup_at": pd.to_datetime(raw["lpep_pickup_datetime"], errors="coerce"),
        "zone": pd.to_numeric(raw["PULocationID"], errors="coerce"),
    })
    assert summary["files"][0]["era"] == "green-2019"
    assert summary["rows_read"] == len(raw) == 83_130
    expected = expected_cells(frame, "2020-12", paths.zone_table)
    assert metrics_cells(paths, "green", "2020-12") == expected
    assert summary["rows_written"] == sum(expected.values())
    assert summary["rows_outside_month"] == int((frame["pickup_at"].dt.strftime("%Y-%m") != "2020-12").sum())
    pickup_months = frame["pickup_at"].dt.strftime("%Y-%m")
    assert summary["strays_kept_by_month"] == {  # pickups back to 2009 in TLC's file: only Nov and Jan kept
        m: int((pickup_months == m).sum()) for m in ("2020-11", "2021-01") if (pickup_months == m).any()
    }
    assert summary["rows_strays_dropped"] == summary["rows_outside_month"] - summary["rows_strays_kept"] > 0
    # empty VendorID / payment_type fields are NULL, not 0
    con = warehouse.connect(paths)
    (no_vendor,) = con.execute("SELECT count(*) FROM trips WHERE vendor_id IS NULL").fetchone()
    in_month = raw[frame["pickup_at"].dt.strftime("%Y-%m") == "2020-12"]
    assert no_vendor == int((in_month["VendorID"] == "").sum()) > 0


def test_green_2025_02_with_the_congestion_fee_equals_an_independent_count_cell_by_cell(tlc_dir, paths):
    path = tlc_dir / "green" / "green_tripdata_2025-02.parquet"
    summary = ingest_month(paths, "green", "2025-02", [path])
    raw = pd.read_parquet(path)
    assert "cbd_congestion_fee" in raw.columns  # a column TLC added in 2025: read around, not refused
    frame = pd.DataFrame({"pickup_at": raw["lpep_pickup_datetime"], "zone": raw["PULocationID"]})
    assert summary["files"][0]["era"] == "green-2025"
    assert summary["rows_read"] == len(raw) == 46_621
    assert metrics_cells(paths, "green", "2025-02") == expected_cells(frame, "2025-02", paths.zone_table)


# --- for-hire vehicles -------------------------------------------------------------------------------


def test_fhv_and_fhvhv_heads_ingest_and_report(tlc_dir, paths, monkeypatch):
    monkeypatch.setenv(INGEST_SOURCES_ENV, "all")
    fhv = tlc_dir / "eras" / "fhv_tripdata_2018-01.csv"  # quoted, two base-number columns
    fhvhv = tlc_dir / "eras" / "fhvhv_tripdata_2019-02.csv"
    summaries = {
        "fhv": ingest_month(paths, "fhv", "2018-01", [fhv]),
        "fhvhv": ingest_month(paths, "fhvhv", "2019-02", [fhvhv]),
    }
    frames = []
    for source, path in (("fhv", fhv), ("fhvhv", fhvhv)):
        raw = pd.read_csv(path, dtype=str, keep_default_na=False, on_bad_lines="skip")
        pickup = "Pickup_DateTime" if source == "fhv" else "pickup_datetime"
        zone = "PUlocationID" if source == "fhv" else "PULocationID"
        frame = pd.DataFrame({
            "pickup_at": pd.to_datetime(raw[pickup], errors="coerce"),
            "zone": pd.to_numeric(raw[zone], errors="coerce"),
        }).dropna(subset=["pickup_at"])
        assert summaries[source]["rows_read"] == head_rows(path)
        assert summaries[source]["rows_written"] == len(frame), source
        frames.append(frame)
    assert summaries["fhvhv"]["files"][0]["era"] == "fhvhv-2019-csv"
    assert summaries["fhv"]["files"][0]["era"] == "fhv-2018"

    both = pd.concat(frames)
    zones = pd.read_csv(paths.zone_table, dtype=str, keep_default_na=False)
    borough_of = {int(row.LocationID): row.Borough for row in zones.itertuples()}
    both["borough"] = [borough_of.get(int(z)) if pd.notna(z) else None for z in both["zone"]]
    borough = both["borough"].value_counts().index[0]  # the borough with the most of these trips
    picked = both[both["borough"] == borough]
    request = ReportRequest.from_conf({
        "borough": borough, "start_date": "2018-01-01", "end_date": "2019-03-01", "sources": ["fhv", "fhvhv"],
    })
    outputs = render_report(request, paths)

    report = pd.read_csv(outputs.csv)
    expected = picked.groupby([picked["pickup_at"].dt.hour, picked["pickup_at"].dt.day_of_week]).size()
    day_names = [DAY_NAMES[(d + 1) % 7] for d in range(7)]  # pandas: Monday = 0; DAY_NAMES starts on Sunday
    for (hour, day), n in expected.items():
        cell = report[(report["hour_of_day"] == hour) & (report["day_of_week"] == day_names[day])]
        assert int(cell["num_trips"].iloc[0]) == n
    assert outputs.total_trips == len(picked) > 0
    assert request.name.endswith("_fhv-fhvhv")
    # the weekly summary covers the for-hire sources too
    for source, frame in zip(("fhv", "fhvhv"), frames, strict=True):
        weekly = pd.read_csv(metrics.write_weekly_summary(source, paths))
        assert weekly["trips"].sum() == len(frame), source
