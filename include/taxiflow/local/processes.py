"""Processes of a local deployment: one session per component, found and signalled by session id.

Each component is started with ``start_new_session=True``, so its PID is also its session id. Airflow
puts every task runner in a process group of its own (``setpgid``), but nothing it starts leaves the
session: the session is what holds a component's LocalExecutor workers, task supervisors and task
processes together, and what is left of a component after it was killed. Processes are found by
reading ``/proc`` for that session id, never by a name pattern.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import socket
import time
from collections.abc import Callable, Iterable
from pathlib import Path

PROC = Path("/proc")


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


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2:].split()  # state, ppid, pgrp, session, ...


def _live_processes(field: int, value: int) -> list[int]:
    """PIDs of the live (not zombie) processes whose ``stat`` field ``field`` (after the name) is ``value``."""
    found = []
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields and fields[0] != "Z" and int(fields[field]) == value:
            found.append(int(entry.name))
    return found


def session_members(session_id: int) -> list[int]:
    """PIDs of the live (not zombie) processes in this session."""
    return _live_processes(3, session_id)


def children(parent: int) -> list[int]:
    """PIDs of the live (not zombie) processes whose parent is ``parent``."""
    return _live_processes(1, parent)


def alive(pid: int) -> bool:
    """True if ``pid`` runs and is not a zombie."""
    fields = _stat_fields(pid)
    return fields is not None and fields[0] != "Z"


def signal_session(session_id: int, sig: signal.Signals) -> int:
    """Send ``sig`` to every process of the session; returns how many were signalled."""
    count = 0
    for pid in session_members(session_id):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
            count += 1
    return count


def end_sessions(session_ids: Iterable[int], timeout: float = 30, first: signal.Signals = signal.SIGTERM) -> None:
    """Stop these sessions: ``first`` to each leader (it stops its own children), then to every
    process left, then SIGKILL what is still there."""
    sessions = [sid for sid in session_ids if sid]
    for sid in sessions:
        if alive(sid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(sid, first)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(alive(sid) for sid in sessions):
        time.sleep(0.2)
    for sig, wait in ((first, 5.0), (signal.SIGKILL, 10.0)):
        for sid in sessions:
            signal_session(sid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and any(session_members(sid) for sid in sessions):
            time.sleep(0.1)


def _summed_kb_field(pids: Iterable[int], file: str, field: str) -> int:
    """Sum over ``pids`` of the ``<field>: <n> kB`` line of ``/proc/<pid>/<file>``, in bytes (a
    process that is gone counts 0)."""
    total = 0
    for pid in pids:
        try:
            for line in (PROC / str(pid) / file).read_text().splitlines():
                if line.startswith(f"{field}:"):
                    total += int(line.split()[1]) * 1024
                    break
        except OSError:
            pass
    return total


def rss_bytes(pids: Iterable[int]) -> int:
    """Resident memory of these processes together (VmRSS), in bytes."""
    return _summed_kb_field(pids, "status", "VmRSS")


def pss_bytes(pids: Iterable[int]) -> int:
    """Proportional memory of these processes together (``Pss`` of ``/proc/<pid>/smaps_rollup``, in
    bytes): a page shared by n processes counts 1/n in each, so the sum is what they really hold
    (``rss_bytes`` counts a shared page once per process: forked workers and their libraries many
    times over)."""
    return _summed_kb_field(pids, "smaps_rollup", "Pss")


def processes_in(folder: Path) -> list[int]:
    """PIDs of live processes whose working directory is ``folder``.

    PostgreSQL puts every child of the postmaster in a session of its own, and they all work in
    the data folder: that, not a name, is what finds a server's processes.
    """
    target = os.path.realpath(folder)
    found = []
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            try:
                if os.readlink(entry / "cwd") == target and alive(int(entry.name)):
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


def end_processes(pids_of: Callable[[], list[int]], timeout: float, first: signal.Signals) -> None:
    """Signal what ``pids_of()`` finds with ``first``, then SIGKILL what is still there after timeout."""
    for sig, wait in ((first, timeout), (signal.SIGKILL, 10.0)):
        for pid in pids_of():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and pids_of():
            time.sleep(0.2)
