"""A SeaweedFS S3 server (``weed mini``) of the tests' and benchmarks' own, on free loopback ports.

``make run STORAGE=s3`` runs the same command line as a supervisord program
(:mod:`taxiflow.local.object_store`); here it is a plain child process, stopped by its process id.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from taxiflow.config import STORAGE_CONN_ID_DEFAULT
from taxiflow.local import object_store


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

    def connection(self) -> dict:
        """The Airflow connection (as JSON for ``AIRFLOW_CONN_<ID>``) that reaches this server."""
        return object_store.connection(self.endpoint, self.access_key, self.secret_key)

    def env(self, prefix: str = "data", conn_id: str = STORAGE_CONN_ID_DEFAULT) -> dict[str, str]:
        """Environment that makes taxiflow keep its data in this server's bucket, under ``prefix``."""
        return object_store.taxiflow_env(self.endpoint, self.bucket, self.secret_key, prefix,
                                         access_key=self.access_key, conn_id=conn_id)

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


def start_seaweedfs(directory: Path, bucket: str = "taxiflow", access_key: str = "taxiflow",
                    secret_key: str = "taxiflow-secret", timeout: float = 60,
                    ports: dict[str, int] | None = None) -> SeaweedFS:
    """Start ``weed mini`` with its data in ``directory``; return once the bucket answers.

    ``ports`` (flag -> port, as a running server's ``ports``) starts it where it ran before; by
    default every port is a free one.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    flags = object_store.PORT_FLAGS
    ports = dict(ports) if ports else dict(zip(flags, free_ports(len(flags)), strict=True))
    env = {**os.environ, "AWS_ACCESS_KEY_ID": access_key, "AWS_SECRET_ACCESS_KEY": secret_key}
    log_file = directory / "weed.log"
    with open(log_file, "ab") as log:
        process = subprocess.Popen(object_store.weed_command(directory, bucket, ports), stdout=log,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                   start_new_session=True)
    server = SeaweedFS(process=process, endpoint=f"http://127.0.0.1:{ports['s3.port']}", bucket=bucket,
                       access_key=access_key, secret_key=secret_key, directory=directory, log_file=log_file,
                       ports=ports)
    try:
        wait_for_bucket(
            server.endpoint, bucket, access_key, secret_key, timeout,
            lambda: None if process.poll() is None else f"weed mini exited with {process.returncode}; see {log_file}")
    except BaseException:
        server.stop()
        raise
    return server


def wait_for_bucket(endpoint: str, bucket: str, access_key: str, secret_key: str, timeout: float,
                    failed: Callable[[], str | None]) -> None:
    """Until the bucket answers to the keys (``weed mini`` creates it after its S3 port opens);
    ``failed()`` says why the server will never answer (it exited), or None."""
    import boto3  # type: ignore[import-untyped]
    import botocore.config  # type: ignore[import-untyped]
    import botocore.exceptions  # type: ignore[import-untyped]

    client = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=access_key,
                          aws_secret_access_key=secret_key, region_name="us-east-1",
                          config=botocore.config.Config(retries={"total_max_attempts": 1}, connect_timeout=2))
    deadline = time.monotonic() + timeout
    while True:
        if why := failed():
            raise RuntimeError(f"SeaweedFS did not start: {why}")
        try:
            client.head_bucket(Bucket=bucket)
            return
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError):  # not up yet
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"SeaweedFS S3 at {endpoint}, bucket {bucket!r}: no answer within {timeout:.0f} s")
        time.sleep(0.2)
