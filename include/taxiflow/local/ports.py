"""Loopback ports, and the address a local deployment's components reach each other at (imported by
every Airflow process as ``[core] hostname_callable``: kept light)."""

from __future__ import annotations

import socket


def loopback_hostname() -> str:
    """Everything listens on 127.0.0.1; the machine's own name may resolve to a LAN address, or to
    Debian's 127.0.1.1, where nothing listens."""
    return "127.0.0.1"


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def listening(port: int) -> bool:
    """True if 127.0.0.1:port accepts a connection: something listens there (or on every interface)."""
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0
