"""TlcHook, TlcPublishedSensor and TlcDownloadOperator against a real HTTP server on loopback.

The server serves the real TLC files from ``tests/data/tlc`` under TLC's URL layout; the hook
reaches it through ``AIRFLOW_CONN_NYC_TLC`` like it would in production. Nothing is mocked.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import pytest
from airflow.providers.http.sensors.http import HttpSensor
from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowNotFoundException

from taxiflow.components.hooks import TlcHook, TlcNotPublishedError
from taxiflow.components.operators import TlcDownloadOperator
from taxiflow.components.sensors import TlcPublishedSensor
from taxiflow.config import SUCCESS_MARKER, Partition
from taxiflow.data.storage import data_paths
from taxiflow.data.tlc import is_stale, trip_endpoint, trip_file_name
from tests.support.tlc_server import TlcServer, tlc_layout

SAMPLES = Path(__file__).resolve().parents[2] / "data" / "tlc"  # shipped with the repository
GREEN_DEC = "/trip-data/green_tripdata_2023-12.parquet"
ZONES = "/misc/taxi_zone_lookup.csv"

pytestmark = [
    pytest.mark.realdata,
    pytest.mark.skipif(not (SAMPLES / "green").is_dir(), reason=f"TLC samples not found at {SAMPLES}"),
]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def tlc(monkeypatch):
    """A TLC look-alike on a free loopback port, wired in through the ``nyc_tlc`` connection."""
    with TlcServer(tlc_layout(SAMPLES)) as server:
        monkeypatch.setenv("AIRFLOW_CONN_NYC_TLC", server.base_url)
        yield server


@pytest.fixture
def data_root(tmp_path, monkeypatch):
    monkeypatch.setenv("TAXIFLOW_DATA_DIR", str(tmp_path / "data"))
    return data_paths()


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.name.endswith(".part"))


# --- pure URL layout -------------------------------------------------------------------------------


def test_trip_file_layout_matches_tlc():
    assert trip_file_name("green", "2024-01") == "green_tripdata_2024-01.parquet"
    assert trip_endpoint("yellow", "2009-01") == "trip-data/yellow_tripdata_2009-01.parquet"
    assert trip_endpoint("fhv", "2015-01") == "trip-data/fhv_tripdata_2015-01.parquet"
    assert trip_endpoint("fhvhv", "2019-02") == "trip-data/fhvhv_tripdata_2019-02.parquet"


@pytest.mark.parametrize(
    ("source", "month", "first"), [("green", "2013-07", "2013-08"), ("fhvhv", "2019-01", "2019-02")]
)
def test_a_month_before_tlc_published_the_source_is_named(source, month, first):
    with pytest.raises(ValueError, match=f"TLC publishes {source} trips from {first} on"):
        trip_file_name(source, month)


def test_an_fhvhv_month_downloads_under_tlcs_name_and_ingests(monkeypatch, data_root, tmp_path):
    """A for-hire month through the same door: HEAD, download, _SUCCESS, then the ingest reads it."""
    import pandas as pd

    from taxiflow.data import ingest
    from taxiflow.data.raw import copy_to_raw

    head = pd.read_csv(SAMPLES / "eras" / "fhvhv_tripdata_2019-02.csv", dtype=str).iloc[:-1]  # last row is cut
    parquet = tmp_path / "fhvhv_tripdata_2019-02.parquet"
    pd.DataFrame({
        "hvfhs_license_num": head["hvfhs_license_num"], "dispatching_base_num": head["dispatching_base_num"],
        "pickup_datetime": pd.to_datetime(head["pickup_datetime"]),
        "dropoff_datetime": pd.to_datetime(head["dropoff_datetime"]),
        "PULocationID": head["PULocationID"].astype("int32"), "DOLocationID": head["DOLocationID"].astype("int32"),
    }).to_parquet(parquet)
    layout = {**tlc_layout(SAMPLES), "/trip-data/fhvhv_tripdata_2019-02.parquet": parquet}
    with TlcServer(layout) as server:
        monkeypatch.setenv("AIRFLOW_CONN_NYC_TLC", server.base_url)
        sensor = TlcPublishedSensor(task_id="wait", source="fhvhv", month="2019-02", poke_interval=1)
        assert sensor.poke({}) is True
        landed = Path(TlcDownloadOperator(task_id="download", source="fhvhv", month="2019-02").execute({}))
    assert landed == data_root.landing_dir(Partition("fhvhv", "2019-02")) / "fhvhv_tripdata_2019-02.parquet"
    assert sha256(landed) == sha256(parquet)
    copy_to_raw(Partition("fhvhv", "2019-02"))
    summary = ingest.process_partition(Partition("fhvhv", "2019-02"))
    assert summary["rows_written"] == len(head)
    assert summary["files"][0]["era"] == "fhvhv-2019-csv"


@pytest.mark.parametrize(
    ("source", "month", "message"),
    [
        ("purple", "2024-01", "source must be one of yellow, green, fhv, fhvhv, got 'purple'"),
        ("green", "2024-13", "YYYY-MM"),
    ],
)
def test_bad_source_or_month_is_named(source, month, message):
    with pytest.raises(ValueError, match=message):
        trip_file_name(source, month)


def test_is_stale_by_age(tmp_path):
    table = tmp_path / "zones.csv"
    assert is_stale(table, 30)  # missing
    table.write_text("x")
    assert not is_stale(table, 30)
    assert is_stale(table, 30, now=time.time() + 31 * 86400)


# --- connection ------------------------------------------------------------------------------------


def test_missing_connection_is_an_error_naming_it(monkeypatch, data_root):
    monkeypatch.delenv("AIRFLOW_CONN_NYC_TLC", raising=False)
    with TlcHook() as hook, pytest.raises(AirflowNotFoundException, match="connection 'nyc_tlc' is not defined") as err:
        hook.url_for(ZONES)
    assert "AIRFLOW_CONN_NYC_TLC=" in str(err.value)
    sensor = TlcPublishedSensor(task_id="wait", source="green", month="2023-12")
    with pytest.raises(AirflowNotFoundException, match="AIRFLOW_CONN_NYC_TLC="):
        sensor.poke({})
    operator = TlcDownloadOperator(task_id="download", source="green", month="2023-12")
    with pytest.raises(AirflowNotFoundException, match="'nyc_tlc'"):
        operator.execute({})
    assert not data_root.zone_table.exists()


def test_https_connection_uri_keeps_https(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_NYC_TLC", "https://mirror.example.org:8443")
    with TlcHook() as hook:
        url = hook.url_for(trip_endpoint("green", "2024-01"))
    assert url.startswith("https://mirror.example.org:8443/trip-data/")


def test_json_connection_keeps_https_for_the_sensors_hook_too(monkeypatch):
    """The form the sensor's docstring recommends: HttpHook itself then builds https URLs."""
    from airflow.providers.http.hooks.http import HttpHook

    monkeypatch.setenv("AIRFLOW_CONN_NYC_TLC", '{"conn_type": "http", "host": "https://mirror.example.org:8443"}')
    endpoint = trip_endpoint("green", "2024-01")
    assert HttpHook(method="HEAD", http_conn_id="nyc_tlc").url_from_endpoint(endpoint).startswith("https://mirror")
    with TlcHook() as hook:
        assert hook.url_for(endpoint) == "https://mirror.example.org:8443/" + endpoint


# --- publication -----------------------------------------------------------------------------------


def test_sensor_true_for_published_month(tlc):
    sensor = TlcPublishedSensor(task_id="wait", source="green", month="2023-12")
    assert sensor.mode == "reschedule"
    assert sensor.poke({}) is True
    assert tlc.count("HEAD", GREEN_DEC) == 1


def test_sensor_keeps_waiting_for_unpublished_month(tlc):
    sensor = TlcPublishedSensor(task_id="wait", source="green", month="2024-02")
    assert sensor.poke({}) is False
    assert tlc.requests[-1][:3] == ("HEAD", "/trip-data/green_tripdata_2024-02.parquet", 404)


def test_forbidden_means_not_published_but_server_error_raises(tlc):
    tlc.status_for["/trip-data/green_tripdata_2024-01.parquet"] = 403
    tlc.status_for[GREEN_DEC] = 503
    assert TlcPublishedSensor(task_id="wait", source="green", month="2024-01").poke({}) is False
    with pytest.raises(AirflowException, match="503"):
        TlcPublishedSensor(task_id="wait", source="green", month="2023-12").poke({})
    assert tlc.count("HEAD", GREEN_DEC) == 1  # the task's retries, not the poke, try again


def test_sensor_is_the_providers_http_sensor_with_head():
    sensor = TlcPublishedSensor(task_id="wait", source="green", month="{{ params.month }}")
    assert isinstance(sensor, HttpSensor)
    assert (sensor.method, sensor.http_conn_id) == ("HEAD", "nyc_tlc")
    assert {"source", "month", "endpoint"} <= set(sensor.template_fields)


def test_sensor_fails_without_retry_on_bad_month(tlc):
    sensor = TlcPublishedSensor(task_id="wait", source="green", month="2024-1")
    with pytest.raises(AirflowFailException, match="YYYY-MM"):
        sensor.poke({})
    assert tlc.requests == []


def test_hook_reuses_one_connection(tlc, data_root):
    with TlcHook() as hook:
        hook.download_zone_table(data_root.zone_table, max_age_days=0)
        hook.download("green", "2023-12", data_root.landing_dir(Partition("green", "2023-12")))
        hook.download("green", "2024-01", data_root.landing_dir(Partition("green", "2024-01")))
    ports = {port for _, _, _, port in tlc.requests}
    assert len(tlc.requests) == 3 and len(ports) == 1


# --- downloads -------------------------------------------------------------------------------------


def test_download_operator_lands_file_and_success_marker(tlc, data_root):
    operator = TlcDownloadOperator(task_id="download", source="green", month="2023-12")
    result = Path(operator.execute({}))

    landing = data_root.landing_dir(Partition("green", "2023-12"))
    assert result == landing / "green_tripdata_2023-12.parquet"
    assert sha256(result) == sha256(SAMPLES / "green" / "green_tripdata_2023-12.parquet")
    manifest = json.loads((landing / SUCCESS_MARKER).read_text())
    assert manifest == {"file": result.name, "bytes": result.stat().st_size, "sha256": sha256(result)}
    assert sha256(data_root.zone_table) == sha256(SAMPLES / "taxi_zone_lookup.csv")
    assert leftovers(data_root.root) == []


def test_download_records_the_drop_asset_event(tlc, data_root):
    from airflow.sdk.execution_time.context import OutletEventAccessors

    from taxiflow.components import lineage

    events = OutletEventAccessors()  # what a running task's context holds
    result = Path(TlcDownloadOperator(task_id="download", source="green", month="2023-12").execute(
        {"outlet_events": events}))
    drop = events[lineage.drop_asset("green", data_root)]
    assert drop.partition_keys == {"2023-12"}
    assert drop.extra["files"] == [{"name": result.name, "bytes": result.stat().st_size, "sha256": sha256(result)}]


def test_broken_transfer_is_retried_from_scratch(tlc, data_root):
    tlc.drop_first[GREEN_DEC] = 2
    operator = TlcDownloadOperator(
        task_id="download", source="green", month="2023-12", max_attempts=3, retry_wait_seconds=0
    )
    result = Path(operator.execute({}))

    assert tlc.count("GET", GREEN_DEC) == 3
    assert sha256(result) == sha256(SAMPLES / "green" / "green_tripdata_2023-12.parquet")
    assert (result.parent / SUCCESS_MARKER).is_file()
    assert leftovers(data_root.root) == []


def test_persistent_failure_leaves_no_file_and_no_marker(tlc, data_root):
    landing = data_root.landing_dir(Partition("green", "2023-12"))
    landing.mkdir(parents=True)
    (landing / SUCCESS_MARKER).write_text("{}")  # from an earlier run: must not outlive a failed one
    tlc.drop_first[GREEN_DEC] = 100
    operator = TlcDownloadOperator(
        task_id="download", source="green", month="2023-12", max_attempts=3, retry_wait_seconds=0
    )
    with pytest.raises(Exception, match=r"Connection broken|IncompleteRead|delivered"):
        operator.execute({})

    assert tlc.count("GET", GREEN_DEC) == 3
    assert sorted(p.name for p in landing.iterdir()) == []
    assert leftovers(data_root.root) == []


def test_unpublished_download_fails_at_once(tlc, data_root):
    with TlcHook(max_attempts=3, retry_wait_seconds=0) as hook, pytest.raises(TlcNotPublishedError, match="404"):
        hook.download("green", "2024-02", data_root.landing_dir(Partition("green", "2024-02")))
    assert tlc.count("GET", "/trip-data/green_tripdata_2024-02.parquet") == 1
    assert list(data_root.landing_dir(Partition("green", "2024-02")).iterdir()) == []


def test_zone_table_refreshed_only_when_old(tlc, data_root):
    table = data_root.zone_table
    table.parent.mkdir(parents=True)
    table.write_text("stale copy\n")
    with TlcHook() as hook:
        hook.download_zone_table(table, max_age_days=30)  # fresh: kept
        assert table.read_text() == "stale copy\n" and tlc.count("GET", ZONES) == 0

        old = time.time() - 31 * 86400
        os.utime(table, (old, old))
        assert hook.download_zone_table(table, max_age_days=30) == table
    assert tlc.count("GET", ZONES) == 1
    assert sha256(table) == sha256(SAMPLES / "taxi_zone_lookup.csv")
    assert time.time() - table.stat().st_mtime < 60


def test_operator_keeps_old_zone_table_when_refresh_fails(tlc, data_root):
    table = data_root.zone_table
    table.parent.mkdir(parents=True)
    table.write_text("old copy\n")
    old = time.time() - 90 * 86400
    os.utime(table, (old, old))
    tlc.status_for[ZONES] = 404

    TlcDownloadOperator(task_id="download", source="green", month="2024-01").execute({})

    assert table.read_text() == "old copy\n"
    assert (data_root.landing_dir(Partition("green", "2024-01")) / SUCCESS_MARKER).is_file()


def test_concurrent_zone_table_refreshes_do_not_collide(tlc, data_root):
    """Each source's download task may refresh the zone table at once: both must succeed."""
    from concurrent.futures import ThreadPoolExecutor

    def refresh(_):
        with TlcHook() as hook:
            return hook.download_zone_table(data_root.zone_table, max_age_days=0)

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(refresh, range(4)))
    assert results == [data_root.zone_table] * 4
    assert sha256(data_root.zone_table) == sha256(SAMPLES / "taxi_zone_lookup.csv")
    assert leftovers(data_root.root) == []
