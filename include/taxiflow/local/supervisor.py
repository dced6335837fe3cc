"""The local deployment's processes, run by supervisord (PyPI ``supervisor``) from a generated config.

supervisord starts every program, restarts one that exits (backing off when it keeps failing),
reports status over a Unix socket in the home (mode 0700: no TCP port), keeps one log per program
and stops them all, each as a process group. What it cannot know is Airflow's, and lives in the
event listener :func:`reap`: a component that crashed leaves its children behind (a scheduler's
LocalExecutor workers wait forever on a queue no one fills), so the listener kills the dead
program's process group; and when the database died, the daemons that cannot survive losing it are
restarted with it. One more program (e.g. an object store) is one more :class:`Program`.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time
import xmlrpc.client
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

RUNNING_STATES = ("STARTING", "RUNNING", "BACKOFF")  # supervisord's own: startProcess refuses these
LISTENER = "reaper"


@dataclass
class Program:
    """One ``[program:x]`` section: what runs, where, and how it is stopped. It starts when asked
    (``startProcess``), and again whenever it exits."""

    name: str
    command: list[str]
    directory: Path
    stopsignal: str = "TERM"
    priority: int = 100

    def section(self, logs_dir: Path) -> str:
        settings = {
            "command": shlex.join(self.command).replace("%", "%%"),  # supervisord expands %(name)s
            "directory": str(self.directory), "priority": str(self.priority),
            "autostart": "false", "autorestart": "true", "startsecs": "3", "startretries": "10",
            "stopsignal": self.stopsignal, "stopwaitsecs": "30", "stopasgroup": "true", "killasgroup": "true",
            "redirect_stderr": "true", "stdout_logfile": str(logs_dir / f"{self.name}.log"),
            "stdout_logfile_maxbytes": "50MB", "stdout_logfile_backups": "2",
        }
        return f"[program:{self.name}]\n" + "".join(f"{k} = {v}\n" for k, v in settings.items())


def socket_path(home: Path) -> Path:
    """``<home>/supervisor.sock``, or one named after the home in the temp folder when that path
    would pass the ~100 bytes a Unix socket's path may have."""
    path = home / "supervisor.sock"
    if len(str(path)) <= 100:
        return path
    return Path(tempfile.gettempdir()) / f"taxiflow-{hashlib.sha256(str(home).encode()).hexdigest()[:16]}.sock"


def render_config(home: Path, logs_dir: Path, programs: list[Program], restart_with: dict[str, list[str]]) -> str:
    """supervisord.conf: the daemon, its socket, the programs and the listener (:func:`reap`).
    ``restart_with``: program -> programs to restart when it exits unexpectedly."""
    rules = ";".join(f"{dead}:{','.join(others)}" for dead, others in restart_with.items())
    listener = shlex.join([sys.executable, "-m", "taxiflow.local.supervisor", "reap", rules]).replace("%", "%%")
    return (
        f"[supervisord]\nlogfile = {logs_dir / 'supervisord.log'}\npidfile = {home / 'supervisord.pid'}\n"
        f"directory = {home}\nchildlogdir = {logs_dir}\nidentifier = taxiflow\n\n"
        f"[unix_http_server]\nfile = {socket_path(home)}\nchmod = 0700\n\n"
        f"[supervisorctl]\nserverurl = unix://{socket_path(home)}\n\n"
        "[rpcinterface:supervisor]\n"
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n\n"
        + "\n".join(p.section(logs_dir) for p in programs)
        + f"\n[eventlistener:{LISTENER}]\ncommand = {listener}\nevents = PROCESS_STATE_EXITED\nautorestart = true\n"
        f"priority = 1\nstdout_logfile = NONE\nstderr_logfile = {logs_dir / f'{LISTENER}.log'}\n"
    )


class Supervisord:
    """The supervisord of one home: started, asked and shut down over its Unix socket."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.config = home / "supervisord.conf"
        self.socket = socket_path(home)

    def rpc(self) -> Any:
        from supervisor.xmlrpc import SupervisorTransport

        transport = SupervisorTransport(None, None, f"unix://{self.socket}")
        return xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport).supervisor

    def pid(self) -> int | None:
        """supervisord's PID (also its session id: it daemonizes with setsid), if it answers."""
        if not self.socket.exists():
            return None
        try:
            return int(self.rpc().getPID())
        except (OSError, xmlrpc.client.Fault, xmlrpc.client.ProtocolError):
            return None

    def start(self, env: dict[str, str]) -> None:
        """Start supervisord (it daemonizes; every program inherits ``env``) and wait for its socket."""
        subprocess.run([str(Path(sys.executable).with_name("supervisord")), "-c", str(self.config)],
                       env=env, cwd=self.home, check=True, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while self.pid() is None:
            if time.monotonic() > deadline:
                raise RuntimeError(f"supervisord did not answer on {self.socket} within 30 s")
            time.sleep(0.1)

    def processes(self) -> dict[str, dict]:
        """Program -> supervisord's process info (``statename``, ``pid``, ``description``, ...)."""
        if self.pid() is None:
            return {}
        return {info["name"]: info for info in self.rpc().getAllProcessInfo() if info["group"] != LISTENER}

    def shutdown(self, first: list[str], timeout: float = 120) -> int | None:
        """Stop the ``first`` programs together, then the rest and supervisord (which stops one
        program at a time); returns supervisord's session id."""
        if (sid := self.pid()) is None:
            return None
        deadline = time.monotonic() + timeout
        with contextlib.suppress(OSError, xmlrpc.client.Fault):
            server = self.rpc()
            for name in first:
                with contextlib.suppress(xmlrpc.client.Fault):  # one that is not running
                    server.stopProcess(name, False)
            while time.monotonic() < deadline and any(
                    self.processes().get(name, {}).get("statename") == "STOPPING" for name in first):
                time.sleep(0.2)
            server.shutdown()
        while time.monotonic() < deadline and pid_alive(sid):
            time.sleep(0.2)
        return sid

    def end_leftovers(self) -> None:
        """What a supervisord that was killed left running: every process of its session (unless
        its PID now leads another program's session)."""
        pid_file = self.home / "supervisord.pid"
        if pid_file.exists():
            sid = int(pid_file.read_text().split()[0])
            with contextlib.suppress(psutil.Error):
                if pid_alive(sid) and str(self.config) not in " ".join(psutil.Process(sid).cmdline()):
                    sid = 0  # another program's now
            if sid:
                end_session(sid)
            pid_file.unlink()


def pid_alive(pid: int) -> bool:
    """True if ``pid`` runs (a zombie counts as gone)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def session_processes(sid: int) -> list[int]:
    """Live processes of session ``sid``: what supervisord and its programs left (portable: ``getsid``)."""
    found = []
    for pid in psutil.pids():
        with contextlib.suppress(OSError):
            if os.getsid(pid) == sid and pid_alive(pid):
                found.append(pid)
    return found


def end_session(sid: int, timeout: float = 10) -> None:
    """SIGTERM, then SIGKILL, whatever is left in session ``sid`` (e.g. after supervisord was killed)."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10.0)):
        for pid in session_processes(sid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and session_processes(sid):
            time.sleep(0.2)


def reap(rules: str) -> None:
    """supervisord event listener: on PROCESS_STATE_EXITED, SIGKILL what is left of the dead
    program's process group, and SIGKILL the programs ``rules`` ("db:a,b;...") restart with it
    (supervisord starts them again, backing off until the database answers)."""
    from supervisor import childutils

    restart = {dead: others.split(",") for dead, _, others in (r.partition(":") for r in rules.split(";") if r)}
    while True:
        _headers, payload = childutils.listener.wait(sys.stdin, sys.stdout)
        fields = dict(token.split(":", 1) for token in payload.split())
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(int(fields["pid"]), signal.SIGKILL)
        if fields.get("expected") == "0" and fields["processname"] in restart:
            server = childutils.getRPCInterface(os.environ).supervisor
            for name in restart[fields["processname"]]:
                with contextlib.suppress(xmlrpc.client.Fault):  # one that is not running is left alone
                    server.signalProcess(name, "KILL")  # one stuck on its lost database would not stop on TERM
                    print(f"{name}: restarted, {fields['processname']} died", file=sys.stderr, flush=True)
        childutils.listener.ok(sys.stdout)


if __name__ == "__main__" and sys.argv[1:2] == ["reap"]:
    reap(sys.argv[2] if len(sys.argv) > 2 else "")
