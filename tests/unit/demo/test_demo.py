"""The synthetic TLC generator: deterministic, in TLC's schema, landed marker-last, realistic shape."""

from __future__ import annotations

import os
import shutil
from datetime import date
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from taxiflow.config import SUCCESS_MARKER, DataPaths, Partition
from taxiflow.demo import trips as demo

YELLOW_COLUMNS = [
    "VendorID", "tpep_pickup_datetime", "tpep_dropoff_datetime", "passenger_count",
    "trip_distance", "RatecodeID", "store_and_fwd_flag", "PULocationID", "DOLocationID",
    "payment_type", "fare_amount", "extra", "mta_tax", "tip_amount", "tolls_amount",
    "improvement_surcharge", "total_amount", "congestion_surcharge", "Airport_fee",
]
GREEN_COLUMNS = [
    "VendorID", "lpep_pickup_datetime", "lpep_dropoff_datetime", "store_and_fwd_flag",
    "RatecodeID", "PULocationID", "DOLocationID", "passenger_count", "trip_distance",
    "fare_amount", "extra", "mta_tax", "tip_amount", "tolls_amount", "ehail_fee",
    "improvement_surcharge", "total_amount", "payment_type", "trip_type", "congestion_surcharge",
]


@pytest.fixture
def demo_paths(tmp_path, monkeypatch, pytestconfig) -> DataPaths:
    """A data root with the zone table the project ships (the shared fixture may not exist yet)."""
    paths = DataPaths(tmp_path / "data")
    paths.reference.mkdir(parents=True)
    shutil.copy(pytestconfig.rootpath / "data" / "reference" / "taxi_zone_lookup.csv", paths.zone_table)
    monkeypatch.setenv("TAXIFLOW_DATA_DIR", str(paths.root))
    return paths


@pytest.fixture(scope="module")
def december(tmp_path_factory, pytestconfig) -> dict[str, pa.Table]:
    """December 2023 (Christmas, New Year's Eve) for both sources, generated once for this module."""
    paths = DataPaths(tmp_path_factory.mktemp("december"))
    paths.reference.mkdir(parents=True)
    shutil.copy(pytestconfig.rootpath / "data" / "reference" / "taxi_zone_lookup.csv", paths.zone_table)
    trips = {"yellow": 120_000, "green": 30_000}
    return {
        source: pq.read_table(demo.generate_month(source, "2023-12", n, paths=paths))
        for source, n in trips.items()
    } | {"zones": paths.zone_table}


def test_same_seed_same_trips_other_seed_other_trips(demo_paths, tmp_path):
    first = demo.generate_month("yellow", "2024-01", 5_000, seed=1, paths=demo_paths, out_dir=tmp_path / "a")
    again = demo.generate_month("yellow", "2024-01", 5_000, seed=1, paths=demo_paths, out_dir=tmp_path / "b")
    other = demo.generate_month("yellow", "2024-01", 5_000, seed=2, paths=demo_paths, out_dir=tmp_path / "c")
    assert pq.read_table(first).equals(pq.read_table(again))
    assert first.read_bytes() == again.read_bytes()
    assert not pq.read_table(first).equals(pq.read_table(other))
    assert first == tmp_path / "a" / "yellow" / "2024-01" / "yellow_tripdata_2024-01.parquet"


def test_months_and_sources_get_different_trips(demo_paths, tmp_path):
    jan = pq.read_table(demo.generate_month("green", "2024-01", 2_000, paths=demo_paths, out_dir=tmp_path / "a"))
    feb = pq.read_table(demo.generate_month("green", "2024-02", 2_000, paths=demo_paths, out_dir=tmp_path / "a"))
    assert jan["PULocationID"].to_pylist() != feb["PULocationID"].to_pylist()


@pytest.mark.parametrize("source,columns", [("yellow", YELLOW_COLUMNS), ("green", GREEN_COLUMNS)])
def test_files_follow_tlc_schema_and_layout(demo_paths, source, columns):
    path = demo.generate_month(source, "2024-01", 3_000, paths=demo_paths)
    assert path == demo_paths.landing / source / "2024-01" / f"{source}_tripdata_2024-01.parquet"
    table = pq.read_table(path)
    assert table.num_rows == 3_000
    assert table.column_names == columns
    prefix = "tpep" if source == "yellow" else "lpep"
    for column in (f"{prefix}_pickup_datetime", f"{prefix}_dropoff_datetime"):
        kind = table.schema.field(column).type
        assert pa.types.is_timestamp(kind) and kind.tz is None and kind.unit in ("us", "ns")
    assert table.schema.field("PULocationID").type == pa.int32()
    assert table.schema.field("passenger_count").type == pa.int64()
    assert table.schema.field("fare_amount").type == pa.float64()


def test_green_schema_matches_the_real_tlc_file(demo_paths, tlc_dir):
    real = tlc_dir / "green" / "green_tripdata_2024-01.parquet"
    ours = pq.read_schema(demo.generate_month("green", "2024-01", 1_000, paths=demo_paths))
    assert ours.names == pq.read_schema(real).names
    assert ours.types == pq.read_schema(real).types


def test_success_marker_is_written_last(demo_paths, monkeypatch):
    folder = demo_paths.landing_dir(Partition("green", "2024-01"))
    folder.mkdir(parents=True)
    (folder / SUCCESS_MARKER).touch()  # a stale marker from an earlier run
    events: list[tuple[str, str, bool]] = []
    write_table, replace = demo.pq.write_table, os.replace

    def recording_write(table, where, **kwargs):
        events.append(("write", Path(where).name, (folder / SUCCESS_MARKER).exists()))
        return write_table(table, where, **kwargs)

    def recording_replace(src, dst):
        events.append(("rename", Path(dst).name, (folder / SUCCESS_MARKER).exists()))
        return replace(src, dst)

    monkeypatch.setattr(demo.pq, "write_table", recording_write)
    monkeypatch.setattr(os, "replace", recording_replace)  # what files.replacing renames with
    path = demo.generate_month("green", "2024-01", 1_000, paths=demo_paths)

    assert [kind for kind, _, _ in events] == ["write", "rename"]
    written = events[0][1]
    assert written.startswith(".") and not written.endswith(".parquet")  # watchers ignore it
    assert events[1][1] == path.name
    assert not any(marker_present for _, _, marker_present in events)
    marker = folder / SUCCESS_MARKER
    assert marker.is_file() and marker.stat().st_mtime_ns >= path.stat().st_mtime_ns
    assert sorted(p.name for p in folder.iterdir()) == [SUCCESS_MARKER, path.name]


def borough_shares(table: pa.Table, zones: Path) -> dict[str, float]:
    con = duckdb.connect()
    con.register("trips", table)
    rows = con.execute(
        """
        SELECT z.Borough, count(*) / sum(count(*)) OVER ()
        FROM trips JOIN read_csv(?, all_varchar = true) z ON trips.PULocationID = z.LocationID::INTEGER
        GROUP BY ALL
        """,
        [str(zones)],
    ).fetchall()
    return {borough: share for borough, share in rows}


def test_borough_shares_look_like_tlc(december):
    yellow = borough_shares(december["yellow"], december["zones"])
    assert 0.87 <= yellow["Manhattan"] <= 0.93
    assert 0.05 <= yellow["Queens"] <= 0.10  # mostly the airports
    assert 0 < yellow.get("Unknown", 0) < 0.01
    green = borough_shares(december["green"], december["zones"])
    assert 0.40 <= green["Manhattan"] <= 0.60
    assert green["Brooklyn"] + green["Queens"] + green["Bronx"] >= 0.40
    assert green["Queens"] > green["Brooklyn"] > green["Bronx"] > green.get("Staten Island", 0)


def test_green_manhattan_pickups_are_uptown(december):
    con = duckdb.connect()
    con.register("trips", december["green"])
    downtown = con.execute(
        """
        SELECT count(*) FROM trips JOIN read_csv(?, all_varchar = true) z
          ON trips.PULocationID = z.LocationID::INTEGER
        WHERE z.Borough = 'Manhattan' AND z.Zone IN ('Midtown Center', 'Times Sq/Theatre District',
              'Financial District North', 'East Village')
        """,
        [str(december["zones"])],
    ).fetchone()[0]
    assert downtown == 0


def test_every_zone_id_is_a_real_zone(december):
    con = duckdb.connect()
    con.register("trips", december["yellow"])
    unknown_ids = con.execute(
        """
        SELECT count(*) FROM trips
        WHERE PULocationID NOT IN (SELECT LocationID::INTEGER FROM read_csv(?, all_varchar = true))
           OR DOLocationID NOT IN (SELECT LocationID::INTEGER FROM read_csv(?, all_varchar = true))
        """,
        [str(december["zones"])] * 2,
    ).fetchone()[0]
    assert unknown_ids == 0
    assert con.execute("SELECT count(*) FROM trips WHERE PULocationID IN (264, 265)").fetchone()[0] > 0


def test_time_shape_trough_peak_weekend_and_holidays(december):
    con = duckdb.connect()
    con.register("trips", december["yellow"])
    by_hour = dict(con.execute(
        "SELECT hour(tpep_pickup_datetime), count(*) FROM trips GROUP BY 1"
    ).fetchall())
    assert by_hour[4] < 0.2 * by_hour[18]
    assert max(by_hour, key=by_hour.get) in range(16, 21)
    assert min(by_hour, key=by_hour.get) in (3, 4, 5)

    by_day = dict(con.execute(
        "SELECT tpep_pickup_datetime::DATE, count(*) FROM trips GROUP BY 1"
    ).fetchall())
    ordinary_weekdays = [by_day[date(2023, 12, d)] for d in (5, 6, 7, 12, 13, 14)]  # Tue-Thu
    assert by_day[date(2023, 12, 25)] < 0.6 * min(ordinary_weekdays)  # Christmas Day

    saturday_1am = con.execute(
        "SELECT count(*) FROM trips WHERE dayofweek(tpep_pickup_datetime) = 6 AND hour(tpep_pickup_datetime) = 1"
    ).fetchone()[0]
    wednesday_1am = con.execute(
        "SELECT count(*) FROM trips WHERE dayofweek(tpep_pickup_datetime) = 3 AND hour(tpep_pickup_datetime) = 1"
    ).fetchone()[0]
    assert saturday_1am > 1.5 * wednesday_1am


def test_thanksgiving_and_new_year_dip(demo_paths, tmp_path):
    november = pq.read_table(demo.generate_month("yellow", "2023-11", 60_000, paths=demo_paths, out_dir=tmp_path))
    con = duckdb.connect()
    con.register("trips", november)
    by_day = dict(con.execute("SELECT tpep_pickup_datetime::DATE, count(*) FROM trips GROUP BY 1").fetchall())
    assert by_day[date(2023, 11, 23)] < 0.65 * by_day[date(2023, 11, 16)]  # Thursdays
    january = pq.read_table(demo.generate_month("yellow", "2024-01", 60_000, paths=demo_paths, out_dir=tmp_path))
    con.register("jan", january)
    by_day = dict(con.execute("SELECT tpep_pickup_datetime::DATE, count(*) FROM jan GROUP BY 1").fetchall())
    assert by_day[date(2024, 1, 1)] < 0.7 * by_day[date(2024, 1, 8)]  # Mondays


def test_values_are_plausible(december):
    con = duckdb.connect()
    con.register("trips", december["yellow"])
    (null_share, median_fare, median_distance, negative, bad_total, bad_order, outside,
     median_minutes) = con.execute(
        """
        SELECT avg((passenger_count IS NULL)::INTEGER),
               median(fare_amount), median(trip_distance),
               count(*) FILTER (WHERE tip_amount < 0 OR fare_amount < 0 OR trip_distance < 0),
               count(*) FILTER (WHERE total_amount < fare_amount + tip_amount - 0.011),
               count(*) FILTER (WHERE tpep_dropoff_datetime < tpep_pickup_datetime),
               count(*) FILTER (WHERE tpep_pickup_datetime < '2023-11-30' OR tpep_pickup_datetime >= '2024-01-01'),
               median(date_diff('second', tpep_pickup_datetime, tpep_dropoff_datetime)) / 60
        FROM trips
        """
    ).fetchone()
    assert 0.01 <= null_share <= 0.08
    assert 8 <= median_fare <= 30
    assert 1.0 <= median_distance <= 3.0
    assert 5 <= median_minutes <= 25
    assert negative == bad_total == bad_order == outside == 0
    strays = con.execute("SELECT count(*) FROM trips WHERE tpep_pickup_datetime < '2023-12-01'").fetchone()[0]
    assert 0 < strays < 0.001 * december["yellow"].num_rows  # a few late records, like TLC's


def test_generate_demo_lands_every_month_and_source(demo_paths):
    written = demo.generate_demo(trips_per_month={"yellow": 2_000, "green": 500}, paths=demo_paths)
    assert len(written) == 4
    for source in ("yellow", "green"):
        for month in ("2023-12", "2024-01"):
            folder = demo_paths.landing_dir(Partition(source, month))
            assert (folder / SUCCESS_MARKER).is_file()
            assert pq.read_metadata(folder / f"{source}_tripdata_{month}.parquet").num_rows == (
                2_000 if source == "yellow" else 500
            )


def test_cli_prints_what_it_wrote(demo_paths, capsys):
    code = demo.main(["--months", "2024-02", "--data-dir", str(demo_paths.root), "--trips", "700"])
    assert code == 0
    out = capsys.readouterr().out
    assert "yellow_tripdata_2024-02.parquet" in out and "green_tripdata_2024-02.parquet" in out
    landed = demo_paths.landing_dir(Partition("green", "2024-02")) / "green_tripdata_2024-02.parquet"
    assert pq.read_metadata(landed).num_rows == 700


def test_cli_rejects_a_bad_month(demo_paths, capsys):
    with pytest.raises(SystemExit) as exited:
        demo.main(["--months", "2024-13", "--data-dir", str(demo_paths.root)])
    assert exited.value.code == 2
    assert "2024-13" in capsys.readouterr().err


def test_a_data_root_without_a_zone_table_uses_the_packaged_one(tmp_path):
    """The zone table ships with taxiflow: an empty data root (or bucket) is enough for demo months."""
    written = demo.generate_month("yellow", "2024-01", 10, paths=DataPaths(tmp_path))
    assert pq.read_table(written).num_rows == 10
    assert not (tmp_path / "reference").exists()
