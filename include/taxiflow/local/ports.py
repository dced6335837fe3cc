"""Loopback ports of a local deployment: free ones, taken ones, and the address components reach each other at."""

from __future__ import annotations

import errno
import socket


def loopback_hostname() -> str:
    """``[core] hostname_callable`` of the embedded default: every component and log server listens
    on 127.0.0.1, so that is the address other components reach them at (the machine's own name
    may resolve to a LAN address, or to Debian's 127.0.1.1, where nothing listens)."""
    return "127.0.0.1"


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_in_use(port: int) -> bool:
    """True if something already listens on (or holds) this TCP port, on any interface."""
    for family, address in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((address, port))
            except OSError as err:
                if err.errno == errno.EADDRINUSE:
                    return True
                if err.errno in (errno.EAFNOSUPPORT, errno.EADDRNOTAVAIL):
                    continue
                raise
    return False


def listening(port: int, host: str = "127.0.0.1") -> bool:
    """True if a connection to host:port is accepted."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1)
        return sock.connect_ex((host, port)) == 0
