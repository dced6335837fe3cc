"""One Airflow deployment on this machine (``make run``'s, or a test's on a free port and temporary
home): its environment, ports, secrets, supervisord programs, health and the REST reads it needs."""

from __future__ import annotations

import compileall
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
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import taxiflow
from taxiflow.config import DATA_DIR_ENV, INGEST_DAG_ID, METRICS_DAG_ID, REPORT_DAG_ID
from taxiflow.local import object_store
from taxiflow.local.leftovers import cluster_processes
from taxiflow.local.metadata_db import EmbeddedPostgres
from taxiflow.local.ports import free_port, listening
from taxiflow.local.supervisor import RUNNING_STATES, Program, Supervisord, render_config

LOG_SERVER_COMPONENT = "log-server"
LOCAL_COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer", LOG_SERVER_COMPONENT)
DATABASE_COMPONENT = "postgres"
OBJECT_STORE_COMPONENT, OBJECT_STORE_BUCKET = "seaweedfs", "taxiflow"  # make run STORAGE=s3
PORTS_FILE = "taxiflow-ports.json"
# The user name_run writes run notes as (docs/lineage.md): may edit DAG runs, nothing more.
RUN_NOTES_USER, RUN_NOTES_ROLE = "taxiflow-run-notes", "user"
# The daemons that do not survive losing their database (they exit some minutes later): restarted with it.
NEED_DATABASE = ("scheduler", "dag-processor", "triggerer")
TAXIFLOW_DAGS = (INGEST_DAG_ID, METRICS_DAG_ID, REPORT_DAG_ID)

# Settings that make the embedded default answer in seconds, measured with `make bench`
# (benchmarks/bench_live.py, which can also run with Airflow's defaults); a stack's extra_env wins.
LOCAL_AIRFLOW_SETTINGS: dict[str, str] = {
    # An idle scheduler loops again after 0.1 s instead of 1 s: each scheduling step of a run costs
    # ~0.05 s instead of ~0.5 s, for 19 % of a core when idle instead of 5 % (0.05 s: 33 %, for little more).
    "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.1",
    # LocalExecutor forks `parallelism` workers at start (default 32, ~150 MB each): 8 are more than 2 cores use.
    "AIRFLOW__CORE__PARALLELISM": "8",
    # A task queued by a scheduler that crashed is reset by the next one's orphan check: every 30 s, not 300 s.
    "AIRFLOW__SCHEDULER__ORPHANED_TASKS_CHECK_INTERVAL": "30",
}


def write_secret(path: Path, text: str) -> None:
    """Write a file only its owner can read (0600), also when it existed with wider permissions."""
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as handle:
        os.fchmod(handle.fileno(), 0o600)
        handle.write(text)


def airflow_executable() -> str:
    """The ``airflow`` script of the interpreter running this code (the project's venv)."""
    beside = Path(sys.executable).with_name("airflow")
    return str(beside) if beside.exists() else (shutil.which("airflow") or "airflow")


def compile_sources(project_dir: Path) -> None:
    """Write ``__pycache__`` for ``dags/``, ``plugins/`` and the package (only what changed): every
    parse and task imports them, and under ``PYTHONDONTWRITEBYTECODE`` each would compile them again."""
    for folder in (project_dir / "dags", project_dir / "plugins", Path(taxiflow.__file__).parent):
        if folder.is_dir():
            compileall.compile_dir(folder, quiet=2, workers=1)


def component_command(component: str, env: Mapping[str, str]) -> list[str]:
    """``airflow <component>``, except that the scheduler starts warm (:mod:`taxiflow.local.warm_start`,
    unless ``TAXIFLOW_WARM_START=0``) and it and the triggerer serve no logs (theirs would listen on
    every interface): ``log-server`` is Airflow's log server app on 127.0.0.1."""
    if component == LOG_SERVER_COMPONENT:
        return [sys.executable, "-m", "uvicorn", "--factory", "airflow.utils.serve_logs.log_server:get_app",
                "--host", "127.0.0.1", "--port", env["AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT"],
                "--no-access-log", "--log-level", "warning"]
    skip = ["--skip-serve-logs"] if component in ("scheduler", "triggerer") else []
    if component == "scheduler" and env.get("TAXIFLOW_WARM_START", "1") != "0":
        return [sys.executable, "-m", "taxiflow.local.warm_start", "scheduler", *skip]
    return [airflow_executable(), component, *skip]


@dataclass
class AirflowStack:
    """One deployment: its home, port, metadata database (PostgreSQL under ``<home>/postgres``, unless
    ``extra_env`` names another in ``AIRFLOW__DATABASE__SQL_ALCHEMY_CONN``), environment and programs."""

    home: Path
    project_dir: Path
    data_dir: Path
    port: int = 8080
    users: Mapping[str, str] = field(default_factory=lambda: {"admin": "admin"})  # name -> password
    roles: Mapping[str, str] = field(default_factory=dict)  # name -> SimpleAuthManager role (default admin)
    extra_env: Mapping[str, str] = field(default_factory=dict)
    object_store: bool = False  # a local SeaweedFS holds the data (make run STORAGE=s3)

    def __post_init__(self) -> None:
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.logs_dir = self.home / "process-logs"
        self.passwords_file = self.home / "simple_auth_manager_passwords.json"
        self.supervisord = Supervisord(self.home)

    @property
    def embedded_db(self) -> EmbeddedPostgres | None:
        if "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN" in self.extra_env:
            return None
        return EmbeddedPostgres(self.home / "postgres", port=self.ports()["postgres"])

    def all_components(self) -> tuple[str, ...]:
        """Every program of the deployment, the data stores first."""
        stores = [DATABASE_COMPONENT] * bool(self.embedded_db) + [OBJECT_STORE_COMPONENT] * self.object_store
        return (*stores, *LOCAL_COMPONENTS)

    def ports(self) -> dict[str, int]:
        """The database's, log server's (and SeaweedFS's) ports: chosen free once per home and kept in
        ``<home>/taxiflow-ports.json`` (SeaweedFS's also through runs without it: its files remember them)."""
        path = self.home / PORTS_FILE
        kept = json.loads(path.read_text()) if path.exists() else {}
        ports = dict(kept)
        for key in ("postgres", "log", *object_store.PORT_FLAGS * self.object_store):
            while key not in ports:
                if (port := free_port()) not in ports.values():  # not one chosen a moment ago
                    ports[key] = port
        if ports != kept:
            self.home.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(ports))
        return ports

    def _home_secret(self, name: str, nbytes: int) -> str:
        """``<home>/<name>``: a secret made once per home (0600) and shared by every process; each
        making its own would break what it signs. ``jwt_secret`` signs task tokens, ``api_secret_key``
        the api-server's requests to the log server (64 bytes: HS512 wants that many)."""
        if not (secret_file := self.home / name).exists():
            self.home.mkdir(parents=True, exist_ok=True)
            write_secret(secret_file, secrets.token_urlsafe(nbytes))
        return secret_file.read_text()

    def accounts(self) -> dict[str, str]:
        """Every API user's password: ``users`` and the one ``name_run`` writes run notes as."""
        return {**self.users, RUN_NOTES_USER: self._home_secret("run_notes_password", 16)}

    def prepare_home(self) -> None:
        """Create the home (enterable, not listable, by others) and write its files, secrets 0600 (``env.sh``,
        for ``make airflow``, holds the JWT secret and the database password)."""
        for folder in (self.home, self.data_dir, self.logs_dir):
            folder.mkdir(parents=True, exist_ok=True)
        self.home.chmod(0o711)
        write_secret(self.passwords_file, json.dumps(self.accounts()))
        if self.embedded_db:
            self.embedded_db.init()
        env = self.env()
        lines = [f"export {k}={shlex.quote(env[k])}" for k in sorted(env) if k.startswith(("AIRFLOW", "TAXIFLOW"))]
        lines.append(f"export PATH={shlex.quote(str(Path(airflow_executable()).parent))}:\"$PATH\"")
        write_secret(self.home / "env.sh", "# source it to use the airflow CLI against this deployment\n"
                     + "\n".join(lines) + "\n")

    def env(self) -> dict[str, str]:
        """The environment every Airflow process and one-off command runs with."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW__")}
        log_port = str(self.ports()["log"])
        roles = {**{user: self.roles.get(user, "admin") for user in self.users}, RUN_NOTES_USER: RUN_NOTES_ROLE}
        env.update({
            "AIRFLOW_HOME": str(self.home),
            DATA_DIR_ENV: str(self.data_dir),
            "AIRFLOW__CORE__DAGS_FOLDER": str(self.project_dir / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(self.project_dir / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(f"{u}:{role}" for u, role in roles.items()),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(self.passwords_file),
            # name_run notes each ingest run's month through /api/v2, as this least-privileged user
            "AIRFLOW_CONN_TAXIFLOW_API": json.dumps({
                "conn_type": "http", "host": self.base_url, "login": RUN_NOTES_USER,
                "password": self.accounts()[RUN_NOTES_USER]}),
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(self.port),
            "AIRFLOW__API__BASE_URL": self.base_url,  # and so the execution API at <base_url>/execution/
            "AIRFLOW__API_AUTH__JWT_SECRET": self._home_secret("jwt_secret", 32),
            "AIRFLOW__API__SECRET_KEY": self._home_secret("api_secret_key", 64),
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "10",
            # a task whose worker was killed is retried after 90 s, not Airflow's 300 s
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "90",
            # one log server serves task and trigger logs, the log-server program on loopback, where the
            # api-server must then fetch them (127.0.0.1, not a name that may resolve elsewhere)
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": log_port,
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": log_port,
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": "taxiflow.local.ports.loopback_hostname",
            "PYTHONUNBUFFERED": "1",
            **({"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.embedded_db.url()} if self.embedded_db else {}),
            **LOCAL_AIRFLOW_SETTINGS,
            **self.object_store_env(),
            **self.extra_env,
        })
        return env

    def object_store_env(self) -> dict[str, str]:
        """What points taxiflow at the local SeaweedFS's bucket (none without one)."""
        if not self.object_store:
            return {}
        endpoint = f"http://127.0.0.1:{self.ports()['s3.port']}"
        return object_store.taxiflow_env(endpoint, OBJECT_STORE_BUCKET, self._home_secret("seaweedfs_secret", 24))

    def airflow(self, *args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
        """Run one ``airflow`` CLI command against this deployment and capture its output. What it
        writes is its owner's alone (umask 077): ``db migrate`` writes ``airflow.cfg`` with the secrets."""
        result = subprocess.run([airflow_executable(), *args], env=self.env(), cwd=self.home,
                                capture_output=True, text=True, timeout=timeout, umask=0o077)
        if check and result.returncode != 0:
            raise RuntimeError(
                f"airflow {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
        return result

    def migrate(self) -> None:
        """Prepare the home, start the embedded database if needed, and ``airflow db migrate``."""
        self.prepare_home()
        self.start_database()
        self.airflow("db", "migrate", timeout=600)

    def programs(self) -> list[Program]:
        """The supervisord programs: the data stores (first) and Airflow's."""
        env = self.env()
        programs = [Program(c, component_command(c, env), self.home) for c in LOCAL_COMPONENTS]
        if self.object_store:
            ports = {flag: port for flag, port in self.ports().items() if flag in object_store.PORT_FLAGS}
            secret = self._home_secret("seaweedfs_secret", 24)
            keys = {"AWS_ACCESS_KEY_ID": object_store.ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": secret}
            (directory := self.home / OBJECT_STORE_COMPONENT).mkdir(parents=True, exist_ok=True)
            command = object_store.weed_command(directory, OBJECT_STORE_BUCKET, ports)
            programs.insert(0, Program(OBJECT_STORE_COMPONENT, command, directory, environment=keys))
        if db := self.embedded_db:  # INT: PostgreSQL's "fast" shutdown
            programs.insert(0, Program(DATABASE_COMPONENT, db.serve_command(), db.root, stopsignal="INT"))
        return programs

    def _supervise(self, programs: Iterable[str]) -> Callable[[], str | None]:
        """Have supervisord run these programs: start it with the deployment's config if it does not
        run (a program starts only when asked), then start those that do not run, after checking their
        ports are free. Returns what says why the first one will never start (supervisord gave up)."""
        running = self.supervisord.processes()
        todo = [name for name in programs if running.get(name, {}).get("statename") not in RUNNING_STATES]
        ports = self.ports()  # todo only has postgres when the database is embedded
        kept = f"kept in {self.home / PORTS_FILE}: delete the file to choose new ones"
        needed = {"api-server": (self.port, "make run PORT=..."), LOG_SERVER_COMPONENT: (ports["log"], kept),
                  DATABASE_COMPONENT: (ports["postgres"], kept)}
        if taken := [f"port {needed[c][0]} ({c}; {needed[c][1]})" for c in todo
                     if c in needed and listening(needed[c][0])]:
            raise RuntimeError("cannot start: already in use by another program: " + ", ".join(taken))
        if not running:
            self.logs_dir.mkdir(parents=True, exist_ok=True)
            airflow = [c for c in self.all_components() if c not in (DATABASE_COMPONENT, OBJECT_STORE_COMPONENT)]
            self.supervisord.config.write_text(render_config(self.home, self.logs_dir, self.programs(), airflow,
                                                             list(NEED_DATABASE)))
            self.supervisord.shutdown()  # what a supervisord that was killed left running
            self.supervisord.start(self.env())
        self.supervisord.start_programs(todo)
        first = next(iter(todo), "")
        return lambda: f"FATAL\n{self.tail_logs(first)}" if self.status().get(first, {}).get("state") == "FATAL" \
            else None

    def start_database(self) -> None:
        """Have supervisord run the embedded PostgreSQL; wait as long as its crash recovery takes."""
        if db := self.embedded_db:
            db.wait_ready(self._supervise([DATABASE_COMPONENT]))

    def start_object_store(self) -> Callable[[], str | None]:
        """Have supervisord run the local SeaweedFS (``object_store``); see :meth:`_supervise` for what
        it returns (``make run`` then waits with its check of the data root)."""
        return self._supervise([OBJECT_STORE_COMPONENT])

    def start(self) -> None:
        """Have supervisord run every program (start those that do not run)."""
        compile_sources(self.project_dir)
        self._supervise(self.all_components())

    def wait_until_healthy(self, dag_ids: Iterable[str] = TAXIFLOW_DAGS, timeout: float = 180) -> None:
        """Wait for every program to run, the api-server to answer, the daemons to heartbeat, the log
        server to listen and the dag-processor to have parsed ``dag_ids``. A program supervisord gave
        up on, or a DAG import error, raises at once."""
        deadline, last, wanted, token = time.monotonic() + timeout, "no answer yet", set(dag_ids), None
        while time.monotonic() < deadline:
            status = self.status()
            if fatal := [name for name, info in status.items() if info["state"] == "FATAL"]:
                raise RuntimeError(f"{', '.join(fatal)} kept exiting; supervisord gave up\n"
                                   + "\n".join(self.tail_logs(name) for name in fatal))
            health = self.api_get("/api/v2/monitor/health") or {}
            expected = ("metadatabase", "scheduler", "triggerer", "dag_processor")
            unhealthy = [k for k in expected if health.get(k, {}).get("status") != "healthy"]
            unhealthy += [f"{name} {info['state']}" for name, info in status.items() if not info["running"]]
            if LOG_SERVER_COMPONENT in status and not listening(self.ports()["log"]):
                unhealthy.append(f"log server on :{self.ports()['log']}")
            if not unhealthy and wanted:
                token = token or self.token()
                if (errors := self.api_get("/api/v2/importErrors", token)) and errors.get("total_entries"):
                    raise RuntimeError(f"DAG import errors: {json.dumps(errors, indent=1)}")
                dags = self.api_get("/api/v2/dags?limit=100", token) or {"dags": []}
                missing = wanted - {dag["dag_id"] for dag in dags["dags"]}
                unhealthy = [f"DAGs not parsed: {sorted(missing)}"] if missing else []
            if not unhealthy:
                return
            last = f"not healthy yet: {unhealthy}"
            time.sleep(1)
        raise TimeoutError(f"Airflow at {self.base_url} not healthy after {timeout}s: {last}\n{self.tail_logs()}")

    def token(self, username: str | None = None) -> str:
        """A JWT from ``POST /auth/token`` for one of ``users`` (default: the first, ``make run``'s)."""
        username = username or next(iter(self.users))
        body = json.dumps({"username": username, "password": self.users[username]}).encode()
        request = urllib.request.Request(f"{self.base_url}/auth/token", data=body, method="POST",
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as resp:
            return json.load(resp)["access_token"]

    def api_get(self, path: str, token: str | None = None) -> Any:
        """The JSON body of ``GET <path>``, or None when the api-server does not answer it (yet)."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            with urllib.request.urlopen(urllib.request.Request(self.base_url + path, headers=headers),
                                        timeout=60) as resp:
                return json.load(resp)
        except (urllib.error.URLError, ConnectionError, TimeoutError, json.JSONDecodeError):
            return None

    def tail_logs(self, component: str | None = None, lines: int = 60) -> str:
        """The last lines of one component's log (or of every component's)."""
        chunks = []
        for name in [component] if component else self.all_components():
            if (path := self.logs_dir / f"{name}.log").exists():
                text = path.read_text(errors="replace").splitlines()[-lines:]
                chunks.append(f"--- {name} ({path}) ---\n" + "\n".join(text))
        return "\n".join(chunks)

    def status(self) -> dict[str, dict]:
        """Per program, supervisord's pid, state (RUNNING, BACKOFF, FATAL...), running (empty: not running)."""
        return {name: {"pid": info["pid"], "state": info["statename"], "running": info["statename"] == "RUNNING"}
                for name, info in self.supervisord.processes().items()}

    def stop(self, timeout: float = 120) -> None:
        """Stop every program (Airflow before the data stores), supervisord and what is left of its
        session; wait for the database's processes to leave (a killed postmaster's leave on their own)."""
        self.supervisord.shutdown(timeout)
        deadline = time.monotonic() + 30
        while (db := self.embedded_db) and cluster_processes(db.data_dir) and time.monotonic() < deadline:
            time.sleep(0.2)
