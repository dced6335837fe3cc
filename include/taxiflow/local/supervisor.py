"""The local deployment's processes, run by supervisord (PyPI ``supervisor``) from a generated config.

supervisord starts each program when asked, restarts one that exits (with backoff), answers over a
Unix socket in the home (0700: no TCP port), keeps a log per program, and stops the ``airflow`` group
before the data stores, each as a process group. What it cannot know of Airflow is in the event
listener :func:`reap` (docs/local-stack.md, "Crashes").
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
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from taxiflow.local.leftovers import end_session, pid_alive

AIRFLOW_GROUP = "airflow"  # stopped first and together; the other programs (data stores) after it
RUNNING_STATES = ("STARTING", "RUNNING", "BACKOFF")  # supervisord's own: startProcess refuses these
LISTENER = "reaper"


@dataclass
class Program:
    """One ``[program:x]``: it starts when asked (``startProcess``), and again whenever it exits."""

    name: str
    command: list[str]
    directory: Path
    stopsignal: str = "TERM"
    environment: Mapping[str, str] = field(default_factory=dict)  # added to supervisord's own

    def settings(self, logs_dir: Path) -> dict[str, str]:
        environment = ",".join(f'{k}="{v}"' for k, v in self.environment.items())
        return {
            # 10: a program outside the ``airflow`` group (priority 100) is stopped after it
            "command": shlex.join(self.command), "directory": str(self.directory), "priority": "10",
            "autostart": "false", "autorestart": "true", "startsecs": "3", "startretries": "10",
            "stopsignal": self.stopsignal, "stopwaitsecs": "30", "stopasgroup": "true", "killasgroup": "true",
            "redirect_stderr": "true", "stdout_logfile": str(logs_dir / f"{self.name}.log"),
            "stdout_logfile_maxbytes": "50MB", "stdout_logfile_backups": "2",
            **({"environment": environment} if environment else {}),
        }


def socket_path(home: Path) -> Path:
    """``<home>/supervisor.sock``, or one named after the home in the temp folder when that path
    would pass the ~100 bytes a Unix socket's path may have."""
    if len(str(path := home / "supervisor.sock")) <= 100:
        return path
    return Path(tempfile.gettempdir()) / f"taxiflow-{hashlib.sha256(str(home).encode()).hexdigest()[:16]}.sock"


def render_config(home: Path, logs_dir: Path, programs: list[Program], airflow: list[str],
                  restart_with_database: list[str]) -> str:
    """supervisord.conf: the daemon, its socket, the programs (``airflow`` ones in a group) and the
    listener (:func:`reap`), which restarts ``restart_with_database`` when ``postgres`` dies."""
    sections: dict[str, dict[str, str]] = {
        "supervisord": {"logfile": str(logs_dir / "supervisord.log"), "pidfile": str(home / "supervisord.pid"),
                        "directory": str(home), "childlogdir": str(logs_dir), "identifier": "taxiflow"},
        "unix_http_server": {"file": str(socket_path(home)), "chmod": "0700"},
        "supervisorctl": {"serverurl": f"unix://{socket_path(home)}"},
        "rpcinterface:supervisor": {
            "supervisor.rpcinterface_factory": "supervisor.rpcinterface:make_main_rpcinterface"},
        **{f"program:{p.name}": p.settings(logs_dir) for p in programs},
        **({f"group:{AIRFLOW_GROUP}": {"programs": ",".join(airflow), "priority": "100"}} if airflow else {}),
        f"eventlistener:{LISTENER}": {
            "command": shlex.join([sys.executable, "-m", "taxiflow.local.supervisor", "reap", *restart_with_database]),
            "events": "PROCESS_STATE_EXITED", "autorestart": "true", "priority": "1", "stdout_logfile": "NONE",
            "stderr_logfile": str(logs_dir / f"{LISTENER}.log")},
    }  # values escape "%": supervisord expands %(name)s in them
    return "\n".join(f"[{name}]\n" + "".join(f"{k} = {v.replace('%', '%%')}\n" for k, v in settings.items())
                     for name, settings in sections.items())


class Supervisord:
    """The supervisord of one home: started, asked and shut down over its Unix socket."""

    def __init__(self, home: Path) -> None:
        self.home, self.config, self.socket = home, home / "supervisord.conf", socket_path(home)
        self.pid_file = home / "supervisord.pid"

    def rpc(self) -> Any:
        from supervisor import childutils

        return childutils.getRPCInterface({"SUPERVISOR_SERVER_URL": f"unix://{self.socket}"}).supervisor

    def pid(self) -> int | None:
        """supervisord's PID (also its session id: it daemonizes with setsid), if it answers."""
        try:
            return int(self.rpc().getPID()) if self.socket.exists() else None
        except (OSError, xmlrpc.client.Fault, xmlrpc.client.ProtocolError):
            return None

    def start(self, env: dict[str, str]) -> None:
        """Start supervisord; every program inherits ``env``. It opens its socket before it daemonizes,
        so it answers once this returns."""
        subprocess.run([str(Path(sys.executable).with_name("supervisord")), "-c", str(self.config)],
                       env=env, cwd=self.home, check=True, stdin=subprocess.DEVNULL)

    def processes(self) -> dict[str, dict]:
        """Program -> supervisord's process info (``statename``, ``pid``, ``group``, ...)."""
        if self.pid() is None:
            return {}
        return {info["name"]: info for info in self.rpc().getAllProcessInfo() if info["group"] != LISTENER}

    def start_programs(self, names: list[str]) -> None:
        """Ask supervisord to start these programs (one that started meanwhile is left as it is)."""
        processes = self.processes()
        for name in names:
            with contextlib.suppress(xmlrpc.client.Fault):
                self.rpc().startProcess(f"{processes[name]['group']}:{name}", False)

    def shutdown(self, timeout: float = 120) -> None:
        """Stop every program and supervisord, then end what is left of its session (task processes,
        or all of it when supervisord itself was killed: :mod:`taxiflow.local.leftovers`)."""
        if (sid := self.pid()) is not None:
            with contextlib.suppress(OSError, xmlrpc.client.Fault):
                self.rpc().shutdown()
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and pid_alive(sid):
                time.sleep(0.2)
        elif self.pid_file.exists():  # killed: its session, unless its PID now leads another program
            sid = int(self.pid_file.read_text().split()[0])
            with contextlib.suppress(psutil.Error):
                if pid_alive(sid) and str(self.config) not in " ".join(psutil.Process(sid).cmdline()):
                    sid = None
        if sid:
            end_session(sid)
        self.pid_file.unlink(missing_ok=True)


def reap(restart_with_database: list[str]) -> None:
    """supervisord event listener: on PROCESS_STATE_EXITED, SIGKILL what is left of the dead
    program's process group (a killed scheduler's LocalExecutor workers); when ``postgres`` died,
    SIGKILL ``restart_with_database`` too (supervisord starts them again, backing off until the
    database answers)."""
    from supervisor import childutils

    while True:
        _headers, payload = childutils.listener.wait(sys.stdin, sys.stdout)
        fields = dict(token.split(":", 1) for token in payload.split())
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(int(fields["pid"]), signal.SIGKILL)
        if fields.get("expected") == "0" and fields["processname"] == "postgres":
            server = childutils.getRPCInterface(os.environ).supervisor
            for name in restart_with_database:
                with contextlib.suppress(xmlrpc.client.Fault):  # one that is not running is left alone
                    server.signalProcess(f"{AIRFLOW_GROUP}:{name}", "KILL")  # one stuck on it ignores TERM
                    print(f"{name}: restarted, postgres died", file=sys.stderr, flush=True)
        childutils.listener.ok(sys.stdout)


if __name__ == "__main__" and sys.argv[1:2] == ["reap"]:
    reap(sys.argv[2:])
