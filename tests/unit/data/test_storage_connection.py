"""An S3 data root, and the report query's DuckDB, follow the Airflow connection when it changes.

Airflow's ``attach`` keeps one filesystem per connection id for the life of a process: without
``locations._follow_connection`` a process that outlived a change of the connection (a rotated key,
a moved endpoint, or a test session that starts a second server) kept the first endpoint and keys.
No server is needed: the filesystem is made, never used.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from taxiflow.config import DATA_DIR_ENV, STORAGE_CONN_ENV
from taxiflow.data import locations, storage

CONN_ID = "taxiflow_follow_test"  # its own id: Airflow's store cache is per process, shared by every test


@pytest.fixture
def point_at(monkeypatch):
    """Set the storage connection to an endpoint and keys, as a deployment or a test would."""
    monkeypatch.setenv(DATA_DIR_ENV, "s3://bucket/data")
    monkeypatch.setenv(STORAGE_CONN_ENV, CONN_ID)

    def point(endpoint: str, login: str = "key") -> None:
        monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps({
            "conn_type": "aws", "login": login, "password": "secret",
            "extra": {"endpoint_url": endpoint, "region_name": "us-east-1"},
        }))

    return point


def test_a_changed_endpoint_is_followed(point_at):
    point_at("http://127.0.0.1:1001")
    first = storage.root()
    assert first.fs.endpoint_url == "http://127.0.0.1:1001"
    point_at("http://127.0.0.1:1002")
    moved = storage.root()
    assert moved.fs.endpoint_url == "http://127.0.0.1:1002"
    assert (moved / "warehouse" / "trips").fs.endpoint_url == "http://127.0.0.1:1002"


def test_rotated_keys_are_followed(point_at):
    point_at("http://127.0.0.1:1003", login="old-key")
    assert access_key(storage.root().fs) == "old-key"
    point_at("http://127.0.0.1:1003", login="new-key")
    assert access_key(storage.root().fs) == "new-key"


def access_key(fs) -> str:
    return asyncio.run(fs.session.get_credentials()).access_key


def test_an_unchanged_connection_keeps_its_filesystem_and_listing_cache(point_at):
    point_at("http://127.0.0.1:1004")
    first = storage.root().fs
    first.dircache["bucket/data"] = []
    again = storage.root().fs
    assert again is first and "bucket/data" in again.dircache


def test_the_report_query_reads_through_the_changed_connection(point_at):
    """The report query keeps one DuckDB per process, which keeps the filesystem it registered."""
    from taxiflow.reports import query

    point_at("http://127.0.0.1:1005")
    query._cursor(storage.data_paths()).close()
    first = query._database
    query._cursor(storage.data_paths()).close()
    assert query._database is first  # unchanged: the database is reused
    point_at("http://127.0.0.1:1006")
    query._cursor(storage.data_paths()).close()
    assert query._database is not first and query._database_fs.endpoint_url == "http://127.0.0.1:1006"


# What the filesystem is made from, for connections as the docs (docs/object-storage.md) show them.
CONNECTIONS = {
    "keys and endpoint": {"conn_type": "aws", "login": "key", "password": "secret",
                          "extra": {"endpoint_url": "http://127.0.0.1:1007", "region_name": "us-east-1"}},
    "path-style store": {"conn_type": "aws", "login": "key", "password": "secret",
                         "extra": {"endpoint_url": "http://127.0.0.1:1008",
                                   "config_kwargs": {"s3": {"addressing_style": "path"}}}},
    "AWS, session token": {"conn_type": "aws", "login": "AKIA", "password": "secret",
                           "extra": {"region_name": "eu-west-1", "aws_session_token": "token"}},
    "S3 endpoint of its own": {"conn_type": "aws", "login": "key", "password": "secret",
                               "extra": {"endpoint_url": "http://127.0.0.1:1009",
                                         "service_config": {"s3": {"endpoint_url": "http://127.0.0.1:1010"}}}},
}


def made_from(fs) -> dict:
    """What a filesystem talks to and as whom: endpoint, client options, keys, region, anonymity."""
    credentials = asyncio.run(fs.session.get_credentials())
    return {"endpoint_url": fs.endpoint_url, "config_kwargs": fs.config_kwargs, "anon": fs.anon,
            "keys": (credentials.access_key, credentials.secret_key, credentials.token) if credentials else None,
            "region": fs.session.get_config_variable("region")}


@pytest.mark.parametrize("name", sorted(CONNECTIONS))
def test_the_filesystem_is_the_one_the_amazon_provider_makes(name, monkeypatch):
    """``locations.filesystem`` makes what the provider's ``get_fs`` makes from the same connection
    (without boto3 or the provider's hooks: tests/unit/local/test_stack.py checks a task's imports)."""
    from airflow.providers.amazon.aws.fs.s3 import get_fs
    from airflow.sdk import BaseHook

    conn_id = f"taxiflow_filesystem_{sorted(CONNECTIONS).index(name)}"
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(CONNECTIONS[name]))
    ours = locations.filesystem(conn_id, BaseHook.get_connection(conn_id))
    assert made_from(ours) == made_from(get_fs(conn_id))


def test_a_connection_that_assumes_a_role_is_left_to_the_amazon_provider(monkeypatch):
    """Assuming a role (``role_arn``) is the provider's S3Hook's own work: its filesystem is used.

    Only which maker is called is checked (``get_fs`` replaced): a real one would call AWS STS.
    """
    from airflow.sdk import BaseHook

    conn_id = "taxiflow_filesystem_role"
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({
        "conn_type": "aws", "extra": {"role_arn": "arn:aws:iam::123456789012:role/taxiflow",
                                      "region_name": "us-east-1", "endpoint_url": "http://127.0.0.1:1011"}}))
    calls = []
    monkeypatch.setattr("airflow.sdk.io.get_fs", lambda protocol, conn: calls.append((protocol, conn)) or "theirs")
    assert locations.filesystem(conn_id, BaseHook.get_connection(conn_id)) == "theirs"
    assert calls == [("s3", conn_id)]


@pytest.mark.parametrize("configured", ["s3://bucket/data", "s3://bucket", "s3://bucket/a/b/"])
def test_names_without_a_connection_are_the_urls_of_the_paths(point_at, monkeypatch, configured):
    """What DAG files declare (asset URIs, from ``names``) is where the tasks read and write."""
    point_at("http://127.0.0.1:1005")
    monkeypatch.setenv(DATA_DIR_ENV, configured)
    named, reached = storage.names(), storage.data_paths()
    for paths in (named, reached):
        assert storage.is_remote(paths.root)
    for place in ("landing", "raw", "outputs", "requests"):
        assert storage.url(getattr(named, place) / "green") == storage.url(getattr(reached, place) / "green")
    assert storage.url(named.metrics_source_dir("hourly_zone", "yellow")) == \
        storage.url(reached.metrics_source_dir("hourly_zone", "yellow"))
    assert storage.url(named.root) == configured.rstrip("/")
