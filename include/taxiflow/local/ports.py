"""Loopback ports of a local deployment: free ones, taken ones, and the address components reach each other at."""

from __future__ import annotations

import socket


def loopback_hostname() -> str:
    """``[core] hostname_callable`` of the embedded default: everything listens on 127.0.0.1 (the
    machine's own name may resolve to a LAN address, or to Debian's 127.0.1.1, where nothing listens)."""
    return "127.0.0.1"


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def listening(port: int, host: str = "127.0.0.1") -> bool:
    """True if a connection to host:port is accepted: something listens there (or on every interface)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1)
        return sock.connect_ex((host, port)) == 0
