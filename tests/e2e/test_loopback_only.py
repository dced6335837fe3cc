"""The embedded default listens on loopback only: every listening socket of every process of the
deployment (api-server, scheduler and its workers, dag-processor, triggerer, the log server, the
embedded PostgreSQL) is bound to 127.0.0.1, read from /proc, not from what the code says."""

from __future__ import annotations

import ipaddress
import urllib.error
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

LISTEN = "0A"


def _address(hex_address: str) -> tuple[str, int]:
    host, port = hex_address.split(":")
    raw = bytes.fromhex(host)
    if len(raw) == 4:
        ip = ipaddress.IPv4Address(raw[::-1])
    else:  # /proc/net/tcp6 prints four little-endian 32-bit words
        ip = ipaddress.IPv6Address(b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4)))
    return str(ip), int(port, 16)


def listening_sockets() -> dict[str, tuple[str, int]]:
    """inode -> (address, port) of every listening TCP socket on this machine."""
    found = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == LISTEN:
                found[fields[9]] = _address(fields[1])
    return found


def socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for fd in (Path("/proc") / str(pid) / "fd").glob("*"):
        try:
            target = fd.readlink()
        except OSError:
            continue
        if str(target).startswith("socket:["):
            inodes.add(str(target)[len("socket:["):-1])
    return inodes


def test_every_process_of_the_deployment_listens_on_loopback_only(airflow_stack):
    stack = airflow_stack
    pids = set(stack.deployment_pids())  # supervisord, every program and child of it, the database's processes
    listening = listening_sockets()
    bound = {listening[inode] for pid in pids for inode in socket_inodes(pid) if inode in listening}
    ports = {port for _, port in bound}
    log_port = stack.ports()["log"]
    assert {stack.port, log_port} <= ports, bound  # the api-server and the log server are among them
    assert all(ipaddress.ip_address(host).is_loopback for host, _ in bound), sorted(bound)

    # the log server is Airflow's: it refuses a request not signed with the deployment's secret
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"http://127.0.0.1:{log_port}/log/dag_id=x/run_id=y/task_id=z/attempt=1.log",
                               timeout=10)
    assert refused.value.code == 403


def test_the_loopback_log_server_serves_the_deployments_logs_to_a_signed_request(airflow_stack):
    """What the api-server does for a running or deferred task's log: a GET to the address the task's
    hostname names (``[core] hostname_callable``: 127.0.0.1) on the log port, carrying the JWT the log
    server checks: signed with the deployment's ``[api] secret_key`` (HS512), audience
    ``task-instance-logs``, the log's path below the log folder as ``filename``."""
    import time
    import uuid

    import jwt

    from taxiflow.local.ports import loopback_hostname

    stack = airflow_stack
    relative = f"taxiflow-probe/{uuid.uuid4().hex}.log"
    text = "a line only this test wrote\n"
    (stack.home / "logs" / relative).parent.mkdir(parents=True, exist_ok=True)
    (stack.home / "logs" / relative).write_text(text)
    now = int(time.time())
    token = jwt.encode({"aud": "task-instance-logs", "filename": relative, "iat": now, "nbf": now, "exp": now + 30},
                       stack.env()["AIRFLOW__API__SECRET_KEY"], algorithm="HS512")
    url = f"http://{loopback_hostname()}:{stack.ports()['log']}/log/{relative}"

    with urllib.request.urlopen(urllib.request.Request(url, headers={"Authorization": token}), timeout=30) as answer:
        assert (answer.status, answer.read().decode()) == (200, text)
    # the same token for another file is refused: it names the one file it may read
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(urllib.request.Request(url.replace(".log", "-other.log"),
                                                      headers={"Authorization": token}), timeout=30)
    assert refused.value.code == 403
