"""``python -m taxiflow.data.check_storage``, the start-time check of the data root, against a real
SeaweedFS: what ``make run`` and a deployment's init step print for each bad S3 data root.

Each case runs the command in a fresh process, as a start script would: one line naming the URL and
the connection on stderr, exit status 2, no stack trace, nothing on stdout. Marked ``s3``: run
under the heavy lock (``flock /tmp/taxiflow-heavy.lock .venv/bin/python -m pytest <this file>``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from taxiflow.config import DATA_DIR_ENV, STORAGE_CONN_ENV
from tests.support.seaweedfs import free_ports

pytestmark = pytest.mark.s3

CONN_ID = "taxiflow_storage"


def check(env: dict[str, str], *command: str) -> subprocess.CompletedProcess[str]:
    """Run a command with only ``env``'s taxiflow settings and connections (none inherited)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("TAXIFLOW_", "AIRFLOW_CONN_"))}
    return subprocess.run(
        [sys.executable, *(command or ("-m", "taxiflow.data.check_storage"))], env={**clean, **env},
        capture_output=True, text=True, timeout=120,
    )


def s3_env(server, bucket: str | None = None, **connection_changes) -> dict[str, str]:
    connection = server.connection()
    extra = connection_changes.pop("extra", {})
    connection.update(connection_changes)
    connection["extra"] = {**connection["extra"], **extra}
    return {
        DATA_DIR_ENV: f"s3://{bucket or server.bucket}/data",
        STORAGE_CONN_ENV: CONN_ID,
        f"AIRFLOW_CONN_{CONN_ID.upper()}": json.dumps(connection),
    }


def assert_one_clear_line(result: subprocess.CompletedProcess[str], *words: str) -> str:
    assert result.returncode == 2, result
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def test_a_usable_bucket_is_named_on_one_line(seaweedfs):
    result = check(s3_env(seaweedfs))
    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        f"taxiflow: data in s3://{seaweedfs.bucket}/data (Airflow connection {CONN_ID!r}, "
        f"endpoint {seaweedfs.endpoint})\n"
    )
    assert result.stderr == ""


@pytest.mark.parametrize(
    ("case", "words"),
    [
        ("wrong keys", ["access denied", "key and secret"]),
        ("missing bucket", ["the bucket 'no-such-bucket' does not exist; create it first"]),
        ("unreachable endpoint", ["the endpoint is unreachable"]),
        ("no connection", ["the connection is not defined: set AIRFLOW_CONN_TAXIFLOW_STORAGE"]),
    ],
)
def test_a_bad_s3_data_root_gets_one_line_naming_url_and_connection(seaweedfs, case, words):
    bucket = seaweedfs.bucket
    if case == "wrong keys":
        env = s3_env(seaweedfs, password="not-the-secret")
    elif case == "missing bucket":
        bucket = "no-such-bucket"
        env = s3_env(seaweedfs, bucket=bucket)
    elif case == "unreachable endpoint":
        env = s3_env(seaweedfs, extra={"endpoint_url": f"http://127.0.0.1:{free_ports(1)[0]}"})
    else:
        env = {DATA_DIR_ENV: f"s3://{bucket}/data", STORAGE_CONN_ENV: CONN_ID}
    line = assert_one_clear_line(check(env), f"cannot use s3://{bucket}/data", f"Airflow connection {CONN_ID!r}",
                                 *words)
    if case != "no connection":
        assert "endpoint http://127.0.0.1:" in line


def test_a_data_root_that_is_no_folder_nor_s3_url_gets_one_line():
    assert_one_clear_line(check({DATA_DIR_ENV: "gs://bucket/data"}),
                          "TAXIFLOW_DATA_DIR must be a local folder or s3://<bucket>/<prefix>", "'gs://bucket/data'")


def test_make_run_with_a_bad_bucket_of_the_users_stops_before_anything_starts(seaweedfs, tmp_path):
    """``make run`` with the user's own ``TAXIFLOW_DATA_DIR=s3://...``: the same line, and no process started."""
    home = tmp_path / "home"
    result = check(s3_env(seaweedfs, password="not-the-secret"), "-m", "taxiflow.local.cli", "up",
                   "--home", str(home), "--project-dir", str(tmp_path), "--storage", "s3")
    assert_one_clear_line(result, f"cannot use s3://{seaweedfs.bucket}/data", f"Airflow connection {CONN_ID!r}",
                          "access denied")
    assert not home.exists()  # no supervisord, no database, no local SeaweedFS of its own
