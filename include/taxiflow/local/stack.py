"""A real Airflow 3 deployment on this machine, its processes run by supervisord (command line:
:mod:`taxiflow.local.cli`; supervision: :mod:`taxiflow.local.supervisor`).

``make run`` uses it for the embedded default (PostgreSQL from a pip wheel, LocalExecutor,
SimpleAuthManager; :mod:`taxiflow.local.metadata_db`), the end-to-end tests on a free loopback port
with a temporary home and data root, the production-shape test with an external PostgreSQL, Redis
and CeleryExecutor. This module knows what is Airflow's and taxiflow's: the environment, ports,
secrets and command lines, and when the deployment is healthy.
"""

from __future__ import annotations

import compileall
import contextlib
import json
import os
import secrets
import shlex
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
import xmlrpc.client
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import taxiflow
from taxiflow.config import DATA_DIR_ENV
from taxiflow.local.airflow_api import AirflowApiMixin
from taxiflow.local.metadata_db import EmbeddedPostgres
from taxiflow.local.ports import free_port, listening, port_in_use
from taxiflow.local.supervisor import (
    RUNNING_STATES,
    Program,
    Supervisord,
    end_session,
    pid_alive,
    process_command,
    render_config,
    session_processes,
)
from taxiflow.local.tuning import LOCAL_AIRFLOW_SETTINGS

__all__ = ["AirflowStack", "free_port"]

LOG_SERVER_COMPONENT = "log-server"
LOCAL_COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer", LOG_SERVER_COMPONENT)
DATABASE_COMPONENT = "postgres"
PORTS_FILE = "taxiflow-ports.json"
# env var -> (Airflow setting it becomes, component that must listen on it)
LOG_SERVER_PORTS = {
    "TAXIFLOW_WORKER_LOG_PORT": ("AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT", "scheduler"),
    "TAXIFLOW_TRIGGER_LOG_PORT": ("AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT", "triggerer"),
}

# The daemons that do not survive losing their database (they exit some minutes later): restarted with it.
NEED_DATABASE = ("scheduler", "dag-processor", "triggerer")

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


def airflow_executable() -> str:
    """The ``airflow`` script of the interpreter running this code (the project's venv)."""
    beside = Path(sys.executable).with_name("airflow")
    return str(beside) if beside.exists() else (shutil.which("airflow") or "airflow")


def compile_sources(project_dir: Path) -> None:
    """Write ``__pycache__`` for ``dags/``, ``plugins/`` and the taxiflow package (only what changed):
    every parse and task imports them, and where ``PYTHONDONTWRITEBYTECODE`` is set Python would
    compile them from source each time. A folder that cannot be written is skipped."""
    for folder in (project_dir / "dags", project_dir / "plugins", Path(taxiflow.__file__).parent):
        if folder.is_dir():
            compileall.compile_dir(folder, quiet=2, workers=1)


def component_command(component: str, env: Mapping[str, str], own_log_server: bool = False) -> list[str]:
    """The command line of one component: ``airflow <component>``, except that

    * a LocalExecutor scheduler starts warm (:mod:`taxiflow.local.warm_start`, unless
      ``TAXIFLOW_WARM_START=0``), so its workers fork with the tasks' libraries already imported;
    * with ``own_log_server`` (the embedded default), the scheduler and triggerer serve no logs
      (``--skip-serve-logs``: theirs would listen on every interface) and ``log-server`` is Airflow's
      log server app on 127.0.0.1 at ``[logging] worker_log_server_port``.
    """
    if component == LOG_SERVER_COMPONENT:
        return [sys.executable, "-m", "uvicorn", "--factory", "airflow.utils.serve_logs.log_server:get_app",
                "--host", "127.0.0.1", "--port", env["AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT"],
                "--no-access-log", "--log-level", "warning"]
    skip = ["--skip-serve-logs"] if own_log_server and component in ("scheduler", "triggerer") else []
    if (component == "scheduler" and env.get("AIRFLOW__CORE__EXECUTOR") == "LocalExecutor"
            and env.get("TAXIFLOW_WARM_START", "1") != "0"):
        return [sys.executable, "-m", "taxiflow.local.warm_start", "scheduler", *skip]
    return [airflow_executable(), *component.split(), *skip]


def program_name(component: str) -> str:
    """supervisord's name for a component (``celery worker`` -> ``celery-worker``)."""
    return component.replace(" ", "-")


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

    @property
    def supervisord(self) -> Supervisord:
        return Supervisord(self.home)

    def all_components(self) -> tuple[str, ...]:
        """Every program of the deployment (supervisord's names), the database first."""
        return ((DATABASE_COMPONENT,) if self.embedded_db else ()) + tuple(map(program_name, self.components))

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
            env["AIRFLOW__CORE__HOSTNAME_CALLABLE"] = "taxiflow.local.ports.loopback_hostname"
        if self.embedded_db:
            env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = self.embedded_db.url()
        env.update(LOCAL_AIRFLOW_SETTINGS)
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
        wanted = set(components)
        needed = [(self.port, "api-server", "PORT (make run PORT=...)")] if "api-server" in wanted else []
        needed += [(port, component, how) for component, (port, how) in self.log_server_ports().items()
                   if component in wanted]
        if self.embedded_db and DATABASE_COMPONENT in wanted:
            needed.append((self.embedded_db.port, DATABASE_COMPONENT,
                           f"TAXIFLOW_POSTGRES_PORT (kept in {self.home / PORTS_FILE})"))
        taken = [f"port {port} ({component}; set {how})" for port, component, how in needed if port_in_use(port)]
        if taken:
            raise RuntimeError("cannot start: already in use by another program: " + ", ".join(taken))

    def programs(self, components: Iterable[str]) -> list[Program]:
        """The supervisord programs for these components (and the embedded database). One more
        program (e.g. an object store) is one more :class:`Program` appended here."""
        env, own_log_server = self.env(), LOG_SERVER_COMPONENT in self.components
        programs = [Program(program_name(c), component_command(c, env, own_log_server), self.home)
                    for c in self.components if program_name(c) in components]
        db = self.embedded_db
        if db is not None:
            programs.insert(0, Program(DATABASE_COMPONENT, db.serve_command(), db.root, stopsignal="INT",
                                       priority=10))  # INT: PostgreSQL's "fast" shutdown
        return programs

    def _supervise(self, components: Iterable[str]) -> None:
        """Have supervisord run these components (and the database), besides those it runs already:
        write the config, then start supervisord, or apply the config and start what is not running."""
        sup = self.supervisord
        running = sup.processes()
        wanted = set(components) | set(running) | {DATABASE_COMPONENT}
        self._check_ports_free(c for c in wanted if running.get(c, {}).get("statename") not in RUNNING_STATES)
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        restart_with = {DATABASE_COMPONENT: [c for c in NEED_DATABASE if c in wanted]} if self.embedded_db else {}
        sup.config.write_text(render_config(self.home, self.logs_dir, self.programs(wanted), restart_with))
        if not running and sup.pid() is None:
            self._end_leftovers()
            sup.start(self.env())
            return
        sup.update()
        for name, info in sup.processes().items():
            if name in wanted and info["statename"] not in RUNNING_STATES:
                with contextlib.suppress(xmlrpc.client.Fault):  # supervisord started it meanwhile
                    sup.rpc().startProcess(name, False)

    def _end_leftovers(self) -> None:
        """What a supervisord that was killed left running: every process of its session (unless
        its PID now leads another program's session)."""
        pid_file = self.home / "supervisord.pid"
        if pid_file.exists():
            sid = int(pid_file.read_text().split()[0])
            if not pid_alive(sid) or str(self.supervisord.config) in " ".join(process_command(sid)):
                end_session(sid)
            pid_file.unlink()

    def start_database(self) -> None:
        """Have supervisord run the embedded PostgreSQL; wait as long as its crash recovery takes."""
        db = self.embedded_db
        if db is None:
            return
        self._supervise([DATABASE_COMPONENT])

        def failed() -> str | None:
            info = self.supervisord.processes().get(DATABASE_COMPONENT, {})
            return (info.get("statename") == "FATAL" and f"FATAL\n{self.tail_logs(DATABASE_COMPONENT)}") or None

        db.wait_ready(failed)

    def start(self, components: Iterable[str] | None = None) -> None:
        """Start the database (if embedded) and the components (default: all) under supervisord."""
        compile_sources(self.project_dir)
        self._supervise(program_name(c) for c in (components or self.components))

    def wait_until_healthy(self, timeout: float = 180) -> None:
        """Wait for every program to run, the api-server to answer, the daemons to heartbeat and the
        log servers to listen."""
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        log_ports = {component: port for component, (port, _how) in self.log_server_ports().items()
                     if component in self.all_components()}
        while time.monotonic() < deadline:
            status = self.status()
            fatal = [name for name, info in status.items() if info["state"] == "FATAL"]
            if fatal:
                raise RuntimeError(f"{', '.join(fatal)} kept exiting; supervisord gave up\n"
                                   + "\n".join(self.tail_logs(name) for name in fatal))
            try:
                with urllib.request.urlopen(f"{self.base_url}/api/v2/monitor/health", timeout=5) as resp:
                    health = json.load(resp)
                expected = {"metadatabase", "scheduler", "triggerer", "dag_processor"}
                unhealthy = [k for k in expected if health.get(k, {}).get("status") != "healthy"]
                unhealthy += [f"{c} log server on :{p}" for c, p in log_ports.items() if not listening(p)]
                unhealthy += [f"{name} {info['state']}" for name, info in status.items() if not info["running"]]
                if not unhealthy:
                    return
                last = f"not healthy yet: {unhealthy}"
            except (urllib.error.URLError, ConnectionError, TimeoutError, json.JSONDecodeError) as err:
                last = repr(err)
            time.sleep(1)
        raise TimeoutError(f"Airflow at {self.base_url} not healthy after {timeout}s: {last}\n{self.tail_logs()}")

    def tail_logs(self, component: str | None = None, lines: int = 60) -> str:
        """The last lines of one component's log (or of every component's)."""
        chunks = []
        for name in [program_name(component)] if component else self.all_components():
            path = self.logs_dir / f"{name}.log"
            if path.exists():
                text = path.read_text(errors="replace").splitlines()[-lines:]
                chunks.append(f"--- {name} ({path}) ---\n" + "\n".join(text))
        return "\n".join(chunks)

    def status(self) -> dict[str, dict]:
        """Per program, as supervisord sees it: pid, state (RUNNING, BACKOFF, FATAL...), running;
        empty when supervisord does not run."""
        return {name: {"pid": info["pid"], "state": info["statename"], "running": info["statename"] == "RUNNING",
                       "description": info["description"]}
                for name, info in self.supervisord.processes().items()}

    def recorded_pids(self) -> dict[str, int]:
        """Program -> PID of each running program (also its process group id)."""
        return {name: info["pid"] for name, info in self.status().items() if info["pid"]}

    def deployment_pids(self) -> list[int]:
        """Every live process of the deployment: supervisord's session (its programs, their
        children and task processes) and the embedded database's server processes."""
        sid = self.supervisord.pid()
        pids = session_processes(sid) if sid else []
        return sorted(set(pids) | set(self.embedded_db.server_processes() if self.embedded_db else []))

    def stop(self, timeout: float = 120) -> None:
        """Stop every program (each as a process group; Airflow before the database) and supervisord,
        then end what is left of its session and of the database's processes."""
        sid = self.supervisord.shutdown([c for c in self.all_components() if c != DATABASE_COMPONENT], timeout)
        if sid:
            end_session(sid)
        self._end_leftovers()
        db = self.embedded_db
        deadline = time.monotonic() + 30  # a killed postmaster's children leave on their own
        while db is not None and db.server_processes() and time.monotonic() < deadline:
            time.sleep(0.2)
