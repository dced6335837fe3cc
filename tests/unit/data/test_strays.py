"""Every trip counted exactly once, none dropped: strays of adjacent months, on the real green files.

TLC's ``green_tripdata_2024-01.parquet`` lists two trips that started on 31 December 2023 (one in
Manhattan at 23:38:54, zone 74) which ``green_tripdata_2023-12.parquet`` does not list. They count in
December, once, whatever the order of the drops, after a re-drop, and not at all twice when
December's own file lists the same trip. Expected numbers come from pandas over the two files.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from taxiflow.config import DAY_NAMES, SUCCESS_MARKER, DataPaths, Partition
from taxiflow.data import ingest, metrics, storage, warehouse
from taxiflow.data.raw import copy_to_raw

pytestmark = pytest.mark.realdata

DECEMBER, JANUARY = Partition("green", "2023-12"), Partition("green", "2024-01")
START, END = "2023-12-18", "2024-01-08"
# What identifies a trip in TLC's green files: every column the warehouse keeps of it.
TRIP_COLUMNS = [
    "VendorID", "lpep_pickup_datetime", "lpep_dropoff_datetime", "PULocationID", "DOLocationID",
    "passenger_count", "trip_distance", "fare_amount", "tip_amount", "total_amount", "payment_type",
]


def real_file(tlc_dir: Path, month: str) -> Path:
    return tlc_dir / "green" / f"green_tripdata_{month}.parquet"


def ingest_file(paths: DataPaths, partition: Partition, file: Path) -> dict:
    """Drop one file (data first, ``_SUCCESS`` last), ingest it, and refresh metrics as create_metrics does."""
    folder = paths.landing_dir(partition)
    storage.remove_tree(folder)
    folder.mkdir(parents=True)
    shutil.copyfile(file, folder / f"green_tripdata_{partition.month}.parquet")
    (folder / SUCCESS_MARKER).touch()
    copy_to_raw(partition)
    summary = ingest.process_partition(partition)
    return {"summary": summary, "metrics": metrics.refresh_metrics(partition)}


def report(borough: str = "Manhattan") -> pd.DataFrame:
    from taxiflow.reports.query import report_counts
    from taxiflow.reports.request import ReportRequest

    request = ReportRequest.from_conf(
        {"borough": borough, "start_date": START, "end_date": END, "sources": ["green"], "name": "strays"}
    )
    return report_counts(request)


def independent_counts(files: dict[str, Path], zone_table: Path, borough: str = "Manhattan") -> pd.DataFrame:
    """Trips by hour and weekday, by pandas on the files: each file's own month, plus the rows it
    lists of an adjacent month that the other file (that month's) does not list, each once."""
    zones = pd.read_csv(zone_table, keep_default_na=False)
    frames = {month: pd.read_parquet(path, columns=TRIP_COLUMNS) for month, path in files.items()}
    for frame in frames.values():
        frame["pickup_month"] = frame["lpep_pickup_datetime"].dt.strftime("%Y-%m")
    own = pd.concat([frame[frame["pickup_month"] == month] for month, frame in frames.items()])
    strays = pd.concat([
        frame[(frame["pickup_month"] != month) & frame["pickup_month"].isin(list(files))]
        for month, frame in frames.items()
    ]).drop_duplicates()
    listed = strays.merge(own.drop_duplicates(), how="left", on=[*TRIP_COLUMNS, "pickup_month"], indicator=True)
    trips = pd.concat([own, listed[listed["_merge"] == "left_only"].drop(columns="_merge")])
    trips = trips.merge(zones, left_on="PULocationID", right_on="LocationID", how="left")
    pickup = trips["lpep_pickup_datetime"]
    trips = trips[(trips["Borough"] == borough) & (pickup >= START) & (pickup < END)]
    counts = (
        trips.assign(hour_of_day=trips["lpep_pickup_datetime"].dt.hour,
                     day_of_week=trips["lpep_pickup_datetime"].dt.day_name())
        .groupby(["hour_of_day", "day_of_week"]).size().rename("num_trips").reset_index()
    )
    grid = pd.MultiIndex.from_product([range(24), DAY_NAMES], names=["hour_of_day", "day_of_week"])
    grid = grid.to_frame(index=False)
    return grid.merge(counts, how="left").fillna({"num_trips": 0}).astype({"num_trips": int})


def assert_cells_equal(expected: pd.DataFrame) -> pd.DataFrame:
    got = report()
    merged = expected.merge(got, on=["hour_of_day", "day_of_week"], suffixes=("_expected", "_report"))
    assert len(merged) == 168
    differing = merged[merged["num_trips_expected"] != merged["num_trips_report"]]
    assert differing.empty, differing
    return got


def cell(counts: pd.DataFrame, hour: int, day: str) -> int:
    return int(counts[(counts["hour_of_day"] == hour) & (counts["day_of_week"] == day)]["num_trips"].iloc[0])


@pytest.mark.parametrize("order", [(DECEMBER, JANUARY), (JANUARY, DECEMBER)], ids=["december-first", "january-first"])
def test_every_cell_counts_each_trip_once_whatever_the_order(data_root, tlc_dir, order):
    results = {p.month: ingest_file(data_root, p, real_file(tlc_dir, p.month)) for p in order}

    expected = independent_counts({m: real_file(tlc_dir, m) for m in ("2023-12", "2024-01")}, data_root.zone_table)
    got = assert_cells_equal(expected)
    assert cell(got, 23, "Sunday") == 52  # 51 before: the 2023-12-31 23:38:54 trip of January's file was lost
    january = results["2024-01"]["summary"]
    assert january["strays_kept_by_month"] == {"2023-12": 2} and january["rows_strays_dropped"] == 0
    # Ingesting January second rebuilt December's metrics; first, December's own build read the strays.
    assert results["2024-01"]["metrics"]["neighbours_rebuilt"] == (["2023-12"] if order[0] == DECEMBER else [])

    con = warehouse.connect()  # the trips view counts the same trips as the metrics
    try:
        by_month = dict(con.execute("SELECT month, count(*) FROM trips GROUP BY ALL").fetchall())
    finally:
        con.close()
    december = results["2023-12"]["summary"]
    assert by_month == {"2023-12": december["rows_written"] + 2, "2024-01": january["rows_written"]}


def test_a_redrop_replaces_what_the_file_contributed(data_root, tlc_dir):
    ingest_file(data_root, DECEMBER, real_file(tlc_dir, "2023-12"))
    ingest_file(data_root, JANUARY, real_file(tlc_dir, "2024-01"))
    expected = independent_counts({m: real_file(tlc_dir, m) for m in ("2023-12", "2024-01")}, data_root.zone_table)

    again = ingest_file(data_root, JANUARY, real_file(tlc_dir, "2024-01"))  # the same file, re-dropped
    assert cell(assert_cells_equal(expected), 23, "Sunday") == 52  # not 53: the old version's strays are gone
    assert again["metrics"]["neighbours_rebuilt"] == ["2023-12"]
    folder = data_root.trips_dir(JANUARY)
    assert sorted(p.name for p in folder.iterdir()) == ["_summary.json", again["summary"]["version"]]

    # January re-dropped without its two December trips: December no longer counts them.
    trimmed = data_root.root.parent / "green_tripdata_2024-01.parquet"
    table = pq.read_table(real_file(tlc_dir, "2024-01"))
    frame = table.to_pandas()
    pq.write_table(table.filter(pa.array(frame["lpep_pickup_datetime"] >= "2024-01-01")), trimmed)
    ingest_file(data_root, JANUARY, trimmed)
    got = assert_cells_equal(independent_counts({"2023-12": real_file(tlc_dir, "2023-12"), "2024-01": trimmed},
                                                data_root.zone_table))
    assert cell(got, 23, "Sunday") == 51


def test_a_trip_the_month_s_own_file_lists_too_is_counted_once(data_root, tlc_dir):
    """December's own file lists January's stray as well (a corrected re-publication): still 52."""
    january = pq.read_table(real_file(tlc_dir, "2024-01"))
    december = pq.read_table(real_file(tlc_dir, "2023-12"))
    strays = january.filter(pa.array(january.column("lpep_pickup_datetime").to_pandas() < "2024-01-01"))
    assert strays.num_rows == 2
    both = data_root.root.parent / "green_tripdata_2023-12.parquet"
    pq.write_table(pa.concat_tables([december, strays.cast(december.schema)]), both)

    ingest_file(data_root, JANUARY, real_file(tlc_dir, "2024-01"))
    december_result = ingest_file(data_root, DECEMBER, both)
    expected = independent_counts({"2023-12": both, "2024-01": real_file(tlc_dir, "2024-01")}, data_root.zone_table)
    assert cell(assert_cells_equal(expected), 23, "Sunday") == 52
    assert december_result["metrics"]["trips"] == december.num_rows + 2 - 4  # its own 4 strays are November's


def test_strays_of_a_month_never_ingested_wait_for_it(data_root, tlc_dir):
    """January's strays count in December only once December is ingested; no December partition appears."""
    ingest_file(data_root, JANUARY, real_file(tlc_dir, "2024-01"))
    assert warehouse.published_trips(DECEMBER) is None
    assert not data_root.metrics_dir(warehouse.HOURLY_BOROUGH, DECEMBER).exists()
    got = assert_cells_equal(independent_counts({"2024-01": real_file(tlc_dir, "2024-01")}, data_root.zone_table))
    assert cell(got, 23, "Sunday") == 10  # Sunday 7 January alone
