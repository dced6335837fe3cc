"""Listings of an S3 data root show what other hosts wrote since (s3fs caches folder listings).

Marked ``s3``: run under the heavy lock.
"""

from __future__ import annotations

import boto3  # type: ignore[import-untyped]
import pytest

from taxiflow.data import storage

pytestmark = pytest.mark.s3


@pytest.mark.parametrize("any_root", [pytest.param("s3", marks=pytest.mark.s3)], indirect=True)
def test_a_month_another_host_writes_below_a_listed_folder_shows(any_root, seaweedfs):
    trips = any_root.root / "warehouse" / "trips"
    storage.write_bytes(trips / "source=green" / "month=2023-12" / "_summary.json", b"{}")
    assert [p.parent.name for p in storage.glob(trips, "*/*/_summary.json")] == ["month=2023-12"]
    other_host = boto3.client("s3", endpoint_url=seaweedfs.endpoint, aws_access_key_id=seaweedfs.access_key,
                              aws_secret_access_key=seaweedfs.secret_key, region_name="us-east-1")
    bucket, _, prefix = trips.path.partition("/")
    other_host.put_object(Bucket=bucket, Key=f"{prefix}/source=green/month=2024-01/_summary.json", Body=b"{}")
    assert [p.parent.name for p in storage.glob(trips, "*/*/_summary.json")] == ["month=2023-12", "month=2024-01"]
    assert [p.name for p in storage.list_dir(trips / "source=green")] == ["month=2023-12", "month=2024-01"]
