"""Listings see what another host wrote below them, also in a long-lived process (s3fs caches listings)."""

from __future__ import annotations

import json
import os

from taxiflow.config import DataPaths
from taxiflow.data import storage


def write_as_another_host(path: storage.DataPath, data: bytes) -> None:
    """Write ``path`` without this process's filesystem object (so none of its caches hears of it)."""
    if not storage.is_remote(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return
    import boto3  # type: ignore[import-untyped]

    conn = json.loads(os.environ[f"AIRFLOW_CONN_{path.conn_id.upper()}"])
    client = boto3.client("s3", endpoint_url=conn["extra"]["endpoint_url"], region_name="us-east-1",
                          aws_access_key_id=conn["login"], aws_secret_access_key=conn["password"])
    bucket, _, key = path.path.partition("/")
    client.put_object(Bucket=bucket, Key=key, Body=data)


def test_a_walk_below_a_folder_sees_a_subfolder_another_host_added(any_root: DataPaths):
    trips = any_root.warehouse / "trips"
    storage.write_bytes(trips / "source=green" / "month=2024-01" / "_summary.json", b"{}")
    assert [p.parent.name for p in storage.glob(trips, "*/*/_summary.json")] == ["month=2024-01"]

    write_as_another_host(trips / "source=green" / "month=2024-02" / "_summary.json", b"{}")
    assert [p.parent.name for p in storage.glob(trips, "*/*/_summary.json")] == ["month=2024-01", "month=2024-02"]
    assert storage.files_below(trips) == [
        "source=green/month=2024-01/_summary.json", "source=green/month=2024-02/_summary.json"]
