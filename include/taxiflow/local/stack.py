"""Run a real Airflow 3 deployment on this machine (commands: :mod:`taxiflow.local.commands`).

``make run`` uses it for the embedded default (PostgreSQL from a pip wheel, LocalExecutor,
SimpleAuthManager; see :mod:`taxiflow.local.metadata_db`), the end-to-end tests use it on a free
loopback port with a temporary ``AIRFLOW_HOME`` and data root, and the production-shape test uses it
with an external PostgreSQL, Redis, CeleryExecutor and a Celery worker.

Every process is started in its own session and its PID recorded in ``<home>/taxiflow-stack.json``;
a component is stopped by ending every process of its session (its LocalExecutor workers and task
processes too), never by a name pattern. The command line is :mod:`taxiflow.local.cli`.
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from taxiflow.config import DATA_DIR_ENV
from taxiflow.local.airflow_api import AirflowApiMixin
from taxiflow.local.commands import LOG_SERVER_COMPONENT, airflow_executable, compile_sources, component_command
from taxiflow.local.metadata_db import EmbeddedPostgres
from taxiflow.local.processes import alive, end_sessions, free_port, listening, port_in_use, session_members

LOCAL_COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer", LOG_SERVER_COMPONENT)
CELERY_COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer", "celery worker")
DATABASE_COMPONENT = "postgres"
PIDS_FILE = "taxiflow-stack.json"
PORTS_FILE = "taxiflow-ports.json"
# env var -> (Airflow setting it becomes, component that must listen on it)
LOG_SERVER_PORTS = {
    "TAXIFLOW_WORKER_LOG_PORT": ("AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT", "scheduler"),
    "TAXIFLOW_TRIGGER_LOG_PORT": ("AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT", "triggerer"),
}

# SQLite allows one writer at a time. A one-off CLI command competing with the daemons can hit
# sqlite3's 5 s default and fail with "database is locked"; it holds nothing while it waits, so it may
# wait 30 s. Read by Airflow through [database] sql_alchemy_connect_args, for SQLite deployments only.
SQLITE_CLI_CONNECT_ARGS = {"timeout": 30}
SQLITE_LOCKED = "database is locked"
ALREADY_DONE = ("already exists", "Another backfill is running")


def write_secret(path: Path, text: str) -> None:
    """Write a file only its owner can read (0600), also when it existed with wider permissions."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        os.fchmod(handle.fileno(), 0o600)
        handle.write(text)


def local_tuning() -> dict[str, str]:
    """``taxiflow.local.tuning.LOCAL_AIRFLOW_SETTINGS``: Airflow settings for the embedded default."""
    try:
        from taxiflow.local import tuning
    except ImportError:
        return {}
    return dict(getattr(tuning, "LOCAL_AIRFLOW_SETTINGS", {}))


@dataclass
class AirflowStack(AirflowApiMixin):
    """One Airflow deployment: its home, port, metadata database, environment and processes.

    ``metadata_db``: ``"postgres"`` (embedded, under ``<home>/postgres``) or ``"sqlite"``; an
    ``AIRFLOW__DATABASE__SQL_ALCHEMY_CONN`` in ``extra_env`` (an external database) overrides both.
    """

    home: Path
    project_dir: Path
    data_dir: Path
    port: int = 8080
    users: Mapping[str, str] = field(default_factory=lambda: {"admin": "admin"})  # name -> password
    roles: Mapping[str, str] = field(default_factory=dict)  # name -> SimpleAuthManager role (default admin)
    extra_env: Mapping[str, str] = field(default_factory=dict)
    components: tuple[str, ...] = LOCAL_COMPONENTS
    metadata_db: str = "postgres"
    processes: dict[str, subprocess.Popen] = field(default_factory=dict, repr=False)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def logs_dir(self) -> Path:
        return self.home / "process-logs"

    @property
    def passwords_file(self) -> Path:
        return self.home / "simple_auth_manager_passwords.json"

    @property
    def embedded_db(self) -> EmbeddedPostgres | None:
        """The embedded PostgreSQL, if this deployment runs one."""
        if self.metadata_db != "postgres" or "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN" in self.extra_env:
            return None
        return EmbeddedPostgres(self.home / "postgres", port=self.ports()["postgres"])

    def all_components(self) -> tuple[str, ...]:
        """Every process of the deployment, the database first."""
        return ((DATABASE_COMPONENT,) if self.embedded_db else ()) + tuple(self.components)

    def ports(self) -> dict[str, int]:
        """Ports besides the api-server's, chosen free once per home (or from the environment) and kept."""
        path = self.home / PORTS_FILE
        ports = json.loads(path.read_text()) if path.exists() else {}
        wanted = {"postgres": "TAXIFLOW_POSTGRES_PORT", **{name: name for name in LOG_SERVER_PORTS}}
        changed = False
        for key, env_name in wanted.items():
            given = self.extra_env.get(env_name) or os.environ.get(env_name)
            value = int(given) if given else ports.get(key) or free_port()
            changed |= ports.get(key) != value
            ports[key] = value
        if changed:
            self.home.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(ports))
        return ports

    def _home_secret(self, name: str, nbytes: int) -> str:
        """``<home>/<name>``: a secret made once per home (0600) and shared by every process; each
        making its own would break what it signs. ``jwt_secret`` signs task tokens, ``api_secret_key``
        the api-server's requests to the log server (64 bytes: HS512 wants that many; Airflow's
        generated default is shorter)."""
        secret_file = self.home / name
        if not secret_file.exists():
            self.home.mkdir(parents=True, exist_ok=True)
            write_secret(secret_file, secrets.token_urlsafe(nbytes))
        return secret_file.read_text()

    def prepare_home(self) -> None:
        """Create the home (enterable, not listable, by others) and write its files, secrets 0600."""
        self.home.mkdir(parents=True, exist_ok=True)
        self.home.chmod(0o711)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        write_secret(self.passwords_file, json.dumps(dict(self.users)))
        self._home_secret("jwt_secret", 32)
        if self.embedded_db:
            self.embedded_db.init()
        self.write_env_file()

    def env(self, cli: bool = False) -> dict[str, str]:
        """The environment every Airflow process (or, with ``cli``, one-off command) runs with."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW__")}
        ports = self.ports()
        env.update(
            {
                "AIRFLOW_HOME": str(self.home),
                DATA_DIR_ENV: str(self.data_dir),
                "AIRFLOW__CORE__DAGS_FOLDER": str(self.project_dir / "dags"),
                "AIRFLOW__CORE__PLUGINS_FOLDER": str(self.project_dir / "plugins"),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                # 8 task slots: enough for two cores; every slot is a ~150 MB worker process
                "AIRFLOW__CORE__PARALLELISM": "8",
                "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(
                    f"{user}:{self.roles.get(user, 'admin')}" for user in self.users
                ),
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(self.passwords_file),
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.base_url}/execution/",
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__PORT": str(self.port),
                "AIRFLOW__API__BASE_URL": self.base_url,
                "AIRFLOW__API_AUTH__JWT_SECRET": self._home_secret("jwt_secret", 32),
                "AIRFLOW__API__SECRET_KEY": self._home_secret("api_secret_key", 64),
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "10",
                "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "30",
                "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
                # a task whose worker was killed is retried after 90 s, not Airflow's 300 s
                "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "90",
                "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
                "PYTHONUNBUFFERED": "1",
            }
        )
        for env_name, (setting, _component) in LOG_SERVER_PORTS.items():
            env[setting] = str(ports[env_name])
        if LOG_SERVER_COMPONENT in self.components:  # one loopback log server serves task and trigger logs
            env["AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT"] = env["AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT"]
            # the address the api-server fetches a running task's log from: that server, on loopback
            env["AIRFLOW__CORE__HOSTNAME_CALLABLE"] = "taxiflow.local.processes.loopback_hostname"
        if self.embedded_db:
            env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = self.embedded_db.url()
        env.update(local_tuning())
        env.update(self.extra_env)
        if cli and env.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "sqlite").startswith("sqlite"):
            env.setdefault("AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS",
                           "taxiflow.local.stack.SQLITE_CLI_CONNECT_ARGS")
        return env

    def airflow(
        self, *args: str, check: bool = True, timeout: float = 300, attempts: int = 5
    ) -> subprocess.CompletedProcess:
        """Run one ``airflow`` CLI command against this deployment and capture its output.

        On SQLite a command can lose a write race to the scheduler ("database is locked"). Airflow
        rolls such a command back, so it is run again; if an earlier attempt did commit, the retry's
        "already exists" counts as success.
        """
        lost_a_race = False
        for attempt in range(1, attempts + 1):
            result = subprocess.run(
                [airflow_executable(), *args], env=self.env(cli=True), cwd=self.home,
                capture_output=True, text=True, timeout=timeout,
            )
            output = result.stdout + result.stderr
            if result.returncode == 0:
                break
            if lost_a_race and any(text in output for text in ALREADY_DONE):
                result = subprocess.CompletedProcess(result.args, 0, result.stdout, result.stderr)
                break
            if SQLITE_LOCKED not in output or attempt == attempts:
                break
            lost_a_race = True
            time.sleep(2 * attempt)
        if check and result.returncode != 0:
            raise RuntimeError(
                f"airflow {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
        return result

    def migrate(self) -> None:
        """Prepare the home, start the embedded database if needed, and ``airflow db migrate``."""
        self.prepare_home()
        self.start_database()
        self.airflow("db", "migrate", timeout=600)
        for generated in ("airflow.cfg", "webserver_config.py"):
            if (self.home / generated).exists():
                (self.home / generated).chmod(0o600)

    def write_env_file(self) -> Path:
        """``<home>/env.sh`` (0600: it holds the JWT secret and the database password)."""
        env = self.env(cli=True)
        keep = sorted(k for k in env if k.startswith(("AIRFLOW", "TAXIFLOW")))
        lines = [f"export {k}={shlex.quote(env[k])}" for k in keep]
        lines.append(f"export PATH={shlex.quote(str(Path(airflow_executable()).parent))}:\"$PATH\"")
        path = self.home / "env.sh"
        header = "# source this file to use the airflow CLI against taxiflow's local Airflow\n"
        write_secret(path, header + "\n".join(lines) + "\n")
        return path

    def _log_path(self, component: str) -> Path:
        return self.logs_dir / f"{component.replace(' ', '-')}.log"

    def start_database(self) -> None:
        """Start the embedded PostgreSQL unless it runs; wait as long as its crash recovery takes."""
        db = self.embedded_db
        if db is None:
            return
        recorded = self._read_pids().get(DATABASE_COMPONENT)
        proc = self.processes.get(DATABASE_COMPONENT)
        if (proc is not None and proc.poll() is None) or (recorded and alive(recorded)):
            db.wait_ready()
            return
        db.end_server(timeout=10)  # what a killed server left behind (children in sessions of their own)
        db.remove_stale_pid_file(recorded)
        if port_in_use(db.port):
            raise RuntimeError(f"port {db.port} for the embedded PostgreSQL is taken by another program: "
                               f"free it or set TAXIFLOW_POSTGRES_PORT (kept in {self.home / PORTS_FILE})")
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        proc = db.start(self._log_path(DATABASE_COMPONENT))
        self.processes[DATABASE_COMPONENT] = proc
        self._write_pids()
        db.wait_ready(proc, self._log_path(DATABASE_COMPONENT))

    def log_server_ports(self) -> dict[str, tuple[int, str]]:
        """Component -> (port its log server listens on, variable that sets it), as the processes see it."""
        env = self.env()
        if LOG_SERVER_COMPONENT in self.components:
            return {LOG_SERVER_COMPONENT: (int(env["AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT"]),
                                           "TAXIFLOW_WORKER_LOG_PORT")}
        ports = {component: (int(env[setting]), env_name)
                 for env_name, (setting, component) in LOG_SERVER_PORTS.items()}
        if env["AIRFLOW__CORE__EXECUTOR"] != "LocalExecutor":
            ports.pop("scheduler")  # only a LocalExecutor scheduler serves its workers' logs
        return ports

    def _check_ports_free(self, components: Iterable[str]) -> None:
        needed = [(self.port, "api-server", "PORT (make run PORT=...)")] if "api-server" in components else []
        needed += [(port, component, how) for component, (port, how) in self.log_server_ports().items()
                   if component in components]
        taken = [f"port {port} ({component}; set {how})" for port, component, how in needed if port_in_use(port)]
        if taken:
            raise RuntimeError("cannot start: already in use by another program: " + ", ".join(taken))

    def start(self, components: Iterable[str] | None = None) -> None:
        """Start the database (if embedded and down) and each component in its own session."""
        wanted = [c for c in (components or self.components) if c != DATABASE_COMPONENT]
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        self.start_database()
        recorded = self._read_pids()
        end_sessions([recorded[c] for c in wanted if c in recorded], timeout=10)  # what a dead one left
        self._check_ports_free(wanted)
        compile_sources(self.project_dir)
        env = self.env()
        for component in wanted:
            with open(self._log_path(component), "ab") as log:
                self.processes[component] = subprocess.Popen(
                    component_command(component, env, own_log_server=LOG_SERVER_COMPONENT in self.components),
                    env=env, cwd=self.home, stdout=log,
                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
                )
        self._write_pids()

    def wait_until_healthy(self, timeout: float = 180) -> None:
        """Wait for the api-server to answer, the daemons to heartbeat and the log servers to listen."""
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        log_ports = {component: port for component, (port, _how) in self.log_server_ports().items()
                     if component in self.components}
        while time.monotonic() < deadline:
            self._raise_if_any_died()
            try:
                with urllib.request.urlopen(f"{self.base_url}/api/v2/monitor/health", timeout=5) as resp:
                    health = json.load(resp)
                expected = {"metadatabase", "scheduler", "triggerer", "dag_processor"}
                unhealthy = [k for k in expected if health.get(k, {}).get("status") != "healthy"]
                unhealthy += [f"{c} log server on :{p}" for c, p in log_ports.items() if not listening(p)]
                if not unhealthy:
                    return
                last = f"not healthy yet: {unhealthy}"
            except (urllib.error.URLError, ConnectionError, TimeoutError, json.JSONDecodeError) as err:
                last = repr(err)
            time.sleep(1)
        raise TimeoutError(f"Airflow at {self.base_url} not healthy after {timeout}s: {last}\n{self.tail_logs()}")

    def _raise_if_any_died(self) -> None:
        for component, proc in self.processes.items():
            if proc.poll() is not None:
                raise RuntimeError(f"{component} exited with {proc.returncode}\n{self.tail_logs(component)}")

    def tail_logs(self, component: str | None = None, lines: int = 60) -> str:
        """The last lines of one component's log (or of every component's)."""
        names = [component] if component else list(self.processes) or list(self.all_components())
        chunks = []
        for name in names:
            path = self._log_path(name)
            if path.exists():
                text = path.read_text(errors="replace").splitlines()[-lines:]
                chunks.append(f"--- {name} ({path}) ---\n" + "\n".join(text))
        return "\n".join(chunks)

    def recorded_pids(self) -> dict[str, int]:
        """Component -> PID (= session id) of this deployment, from memory or the PIDs file."""
        return {**self._read_pids(), **{name: proc.pid for name, proc in self.processes.items()}}

    def status(self) -> dict[str, dict]:
        """Per component: pid, whether it runs, and how many processes of its session are left."""
        pids = self.recorded_pids()
        status = {name: {"pid": pid, "running": alive(pid), "processes": len(session_members(pid))}
                  for name, pid in pids.items()}
        if DATABASE_COMPONENT in status and self.embedded_db is not None:
            status[DATABASE_COMPONENT]["processes"] = len(self.embedded_db.server_processes())
        return status

    def stop(self, timeout: float = 30, components: Iterable[str] | None = None) -> None:
        """End every process of each component's session: Airflow first, then the database."""
        pids = self.recorded_pids()
        names = list(components) if components is not None else list(pids)
        airflow_sessions = [pids[n] for n in names if n in pids and n != DATABASE_COMPONENT]
        end_sessions(airflow_sessions, timeout=timeout)
        if DATABASE_COMPONENT in names and self.embedded_db is not None:
            self.embedded_db.end_server(timeout=timeout)
        for name in names:
            proc = self.processes.pop(name, None)
            if proc is not None:
                proc.poll()
        remaining = {n: p for n, p in pids.items() if n not in names}
        if remaining:
            self._write_pids(remaining)
        else:
            (self.home / PIDS_FILE).unlink(missing_ok=True)

    def _write_pids(self, pids: Mapping[str, int] | None = None) -> None:
        if pids is None:
            recorded = {**self._read_pids(), **{n: p.pid for n, p in self.processes.items()}}
        else:
            recorded = dict(pids)
        (self.home / PIDS_FILE).write_text(json.dumps({"port": self.port, "pids": recorded}))

    def _read_pids(self) -> dict[str, int]:
        path = self.home / PIDS_FILE
        return json.loads(path.read_text())["pids"] if path.exists() else {}


if __name__ == "__main__":
    from taxiflow.local.cli import main

    raise SystemExit(main())
