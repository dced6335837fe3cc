"""The lineage events' figures (``taxiflow.components.lineage``) on a real partition of TLC's green taxis.

A real TLC month goes through the real ingest and metrics code in ``tmp_path``; the events are
recorded on Airflow's own outlet-event accessors (what a running task gets as ``outlet_events``),
and every figure is checked against the partition's ``_summary.json`` and the files themselves.
"""

from __future__ import annotations

import hashlib
import json
import shutil

import pytest
from airflow.sdk.execution_time.context import OutletEventAccessors

from taxiflow.components import lineage
from taxiflow.config import Partition
from taxiflow.data import ingest, metrics, warehouse
from taxiflow.data.raw import copy_to_raw, raw_files

GREEN_DEC = Partition("green", "2023-12")


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def ingested(data_root, tlc_dir):
    """green 2023-12 (real TLC file) dropped, ingested and aggregated; its summary and metrics result."""
    landing = data_root.landing_dir(GREEN_DEC)
    landing.mkdir(parents=True)
    shutil.copy(tlc_dir / "green" / "green_tripdata_2023-12.parquet", landing)
    (landing / "_SUCCESS").touch()
    copied = copy_to_raw(GREEN_DEC, data_root)
    raw_events = OutletEventAccessors()
    lineage.emit_raw(raw_events, GREEN_DEC, copied, data_root)  # while the copy is staged, as the task does
    summary = ingest.process_partition(GREEN_DEC, data_root)
    result = metrics.build_metrics(GREEN_DEC, data_root)
    return data_root, summary, result, raw_events


def event(events: OutletEventAccessors, asset) -> tuple[dict, set[str]]:
    accessor = events[asset]
    return accessor.extra, accessor.partition_keys


def test_drop_event_names_the_files_bytes_and_checksums(ingested):
    paths, *_ = ingested
    events = OutletEventAccessors()
    lineage.emit_drop(events, GREEN_DEC, lineage.drop_facts(GREEN_DEC, paths), paths)
    extra, keys = event(events, lineage.drop_asset("green", paths))
    dropped = paths.landing_dir(GREEN_DEC) / "green_tripdata_2023-12.parquet"
    assert keys == {"2023-12"}
    assert extra == {"source": "green", "month": "2023-12", "bytes": dropped.stat().st_size,
                     "files": [{"name": dropped.name, "bytes": dropped.stat().st_size, "sha256": sha256(dropped)}]}
    json.dumps(extra)  # what the execution API stores must be JSON


def test_trips_event_carries_the_summary_figures(ingested):
    paths, summary, *_ = ingested
    events = OutletEventAccessors()
    lineage.emit_partition(events, GREEN_DEC, summary, paths)
    on_disk = json.loads((paths.trips_dir(GREEN_DEC) / warehouse.SUMMARY_FILE).read_text())

    trips, keys = event(events, lineage.trips_asset("green", paths))
    assert keys == {"2023-12"}
    for key in ("rows_read", "rows_written", "rows_rejected", "rows_outside_month", "rows_unknown_zone",
                "rows_outside_month_by_month", "rows_rejected_by_reason", "written_at"):
        assert trips[key] == on_disk[key], key
    assert trips["rows_read"] == trips["rows_written"] + trips["rows_rejected"] + trips["rows_outside_month"]
    assert trips["rows_outside_month_by_month"] == {"2023-11": 4}  # TLC's stray rows in this file
    trips_file = warehouse.trips_file(GREEN_DEC, paths)
    assert (trips["file"], trips["bytes"], trips["sha256"]) == (
        trips_file.name, trips_file.stat().st_size, sha256(trips_file))
    assert trips["raw_files"] == ["green_tripdata_2023-12.parquet"]


def test_raw_event_names_the_copied_files(ingested):
    paths, summary, _, raw_events = ingested
    raw, keys = event(raw_events, lineage.raw_asset("green", paths))
    raw_file = raw_files(GREEN_DEC, paths)[0]  # the staged copy, now published
    assert keys == {"2023-12"}
    assert raw["files"] == [{"name": raw_file.name, "bytes": raw_file.stat().st_size, "sha256": sha256(raw_file)}]
    assert raw["bytes"] == summary["raw_files"][0]["bytes"]
    assert raw["staged_in"] == str(paths.raw_dir(GREEN_DEC) / summary["raw_version"])  # the version published


def test_metrics_event_counts_every_written_trip(ingested):
    paths, summary, result, _ = ingested
    events = OutletEventAccessors()
    lineage.emit_metrics(events, GREEN_DEC, result, paths)
    extra, keys = event(events, lineage.metrics_asset("green", paths))
    assert keys == {"2023-12"}
    assert extra["trips"] == summary["rows_written"] == sum(extra["trips_by_borough"].values())
    assert [f["name"] for f in extra["files"]] == [
        f"hourly_zone/{warehouse.METRICS_FILE}", f"hourly_borough/{warehouse.METRICS_FILE}"]
    zone_file = warehouse.metrics_file(warehouse.HOURLY_ZONE, GREEN_DEC, paths)
    assert extra["files"][0]["sha256"] == sha256(zone_file)
    assert extra["bytes"] == sum(f["bytes"] for f in extra["files"])


def test_report_event_names_the_partitions_it_counted(ingested):
    paths, summary, *_ = ingested
    request = {"borough": "Queens", "start_date": "2023-12-20", "end_date": "2024-01-05",
               "sources": ["green"], "name": "queens_turn_of_year"}
    manifest = {"name": "queens_turn_of_year", "run_id": "r1", "total_trips": 123,
                "written_at": "2026-12-05T00:00:00+00:00",
                "files": {"png": {"name": "q.png", "bytes": 10, "sha256": "a" * 64},
                          "csv": {"name": "q.csv", "bytes": 5, "sha256": "b" * 64}}}
    events = OutletEventAccessors()
    lineage.emit_report(events, request, manifest, ["2023-12", "2024-01"], paths)
    extra, keys = event(events, lineage.reports_asset(paths))
    assert keys == {"queens_turn_of_year"}
    assert extra["partitions"] == [
        {"source": "green", "month": "2023-12", "rows_written": summary["rows_written"],
         "written_at": summary["written_at"]},
        {"source": "green", "month": "2024-01", "rows_written": None, "written_at": None},  # never ingested
    ]
    assert extra["request"] == {key: request[key] for key in ("borough", "start_date", "end_date", "sources")}
    assert extra["files"] == [{"name": "q.csv", "bytes": 5, "sha256": "b" * 64},
                              {"name": "q.png", "bytes": 10, "sha256": "a" * 64}]
    assert (extra["total_trips"], extra["run_id"]) == (123, "r1")


def test_assets_are_named_per_source_and_point_at_the_data(data_root):
    trips = lineage.trips_asset("yellow", data_root)
    assert trips.name == "yellow_trips" and trips.group == lineage.ASSET_GROUP
    assert trips.uri == f"file://{data_root.warehouse}/trips/source=yellow"
    assert lineage.reports_asset(data_root).uri == data_root.outputs.as_uri()
    assert [asset.name for asset in lineage.raw_lineage("green")["inlets"]] == ["green_drop"]
    assert [asset.name for asset in lineage.trips_lineage("green")["inlets"]] == ["green_raw"]
    inlets = lineage.report_lineage(["yellow", "green"])["inlets"]
    assert [asset.name for asset in inlets] == ["yellow_metrics", "green_metrics"]


def test_an_s3_root_gives_s3_uris(monkeypatch):
    monkeypatch.setenv("TAXIFLOW_DATA_DIR", "s3://taxiflow-bucket/prod")
    assert lineage.drop_asset("green").uri == "s3://taxiflow-bucket/prod/landing/green"
    assert lineage.metrics_asset("green").uri == (
        "s3://taxiflow-bucket/prod/warehouse/metrics/hourly_borough/source=green")
