"""The only place that hunts processes by hand (``psutil``, ``os.getsid``: POSIX, no ``/proc``).

Airflow puts each task process in a process group of its own (``killasgroup`` misses it) but never in
a session of its own: what is left in supervisord's session (its PID) after a shutdown is ours.
PostgreSQL's processes have sessions of their own; they all work in the cluster's data folder.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

import psutil


def pid_alive(pid: int) -> bool:
    """True if ``pid`` runs (a zombie counts as gone)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def session_processes(sid: int) -> list[int]:
    """Live processes of session ``sid``."""
    found = []
    for pid in psutil.pids():
        with contextlib.suppress(OSError):
            if os.getsid(pid) == sid and pid_alive(pid):
                found.append(pid)
    return found


def end_session(sid: int, timeout: float = 10) -> None:
    """SIGTERM, then SIGKILL, whatever is left in session ``sid``."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in session_processes(sid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and session_processes(sid):
            time.sleep(0.2)


def cluster_processes(data_dir: Path) -> list[int]:
    """Live processes of the PostgreSQL cluster in ``data_dir``: the postmaster and its children."""
    target, found = os.path.realpath(data_dir), []
    for proc in psutil.process_iter():
        with contextlib.suppress(psutil.Error, OSError):
            if proc.status() != psutil.STATUS_ZOMBIE and proc.cwd() == target:
                found.append(proc.pid)
    return found
