"""Run a real Airflow 3 deployment on this machine: api-server, scheduler, dag-processor, triggerer.

``make run`` uses it for the embedded default (SQLite, LocalExecutor, SimpleAuthManager), the
end-to-end tests use it on a free loopback port with a temporary ``AIRFLOW_HOME`` and data root, and
the production-shape test uses it with PostgreSQL, Redis, CeleryExecutor and a Celery worker.

Every process is started in its own session and stopped by the PID this module recorded (the whole
process group of that PID), never by a name pattern.

    python -m taxiflow.local.stack up --home .airflow --port 8080      # start, wait until healthy
    python -m taxiflow.local.stack down --home .airflow                # stop what `up` started
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from taxiflow.config import DATA_DIR_ENV, INGEST_DAG_ID, METRICS_DAG_ID, REPORT_DAG_ID, SOURCE_NAMES
from taxiflow.data.tlc import TLC_PUBLIC_BASE_URL

LOCAL_COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
CELERY_COMPONENTS = (*LOCAL_COMPONENTS, "celery worker")
PIDS_FILE = "taxiflow-stack.json"

# SQLite allows one writer at a time. A one-off CLI command (`backfill create`, `dags trigger`)
# competing with the scheduler and the api-server can hit sqlite3's 5 s default and fail with
# "database is locked"; it holds nothing while it waits, so it may wait 30 s. The long-running
# processes keep Airflow's default: a longer wait there only stretches stalls between them.
# Read by Airflow through [database] sql_alchemy_connect_args, for SQLite deployments only.
SQLITE_CLI_CONNECT_ARGS = {"timeout": 30}
SQLITE_LOCKED = "database is locked"
ALREADY_DONE = ("already exists", "Another backfill is running")


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def airflow_executable() -> str:
    """The ``airflow`` script of the interpreter running this code (the project's venv)."""
    beside = Path(sys.executable).with_name("airflow")
    return str(beside) if beside.exists() else (shutil.which("airflow") or "airflow")


@dataclass
class AirflowStack:
    """One Airflow deployment: its home, port, environment and the processes it runs."""

    home: Path
    project_dir: Path
    data_dir: Path
    port: int = 8080
    users: Mapping[str, str] = field(default_factory=lambda: {"admin": "admin"})  # name -> password
    roles: Mapping[str, str] = field(default_factory=dict)  # name -> SimpleAuthManager role (default admin)
    extra_env: Mapping[str, str] = field(default_factory=dict)
    components: tuple[str, ...] = LOCAL_COMPONENTS
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

    def _jwt_secret(self) -> str:
        """One secret per home, shared by every process (tasks fail auth if each made its own)."""
        secret_file = self.home / "jwt_secret"
        if not secret_file.exists():
            self.home.mkdir(parents=True, exist_ok=True)
            secret_file.write_text(secrets.token_urlsafe(32))
        return secret_file.read_text()

    def _write_passwords_file(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.passwords_file.write_text(json.dumps(dict(self.users)))

    def env(self, cli: bool = False) -> dict[str, str]:
        """The environment every Airflow process (or, with ``cli``, one-off command) runs with."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW__")}
        env.update(
            {
                "AIRFLOW_HOME": str(self.home),
                DATA_DIR_ENV: str(self.data_dir),
                "AIRFLOW__CORE__DAGS_FOLDER": str(self.project_dir / "dags"),
                "AIRFLOW__CORE__PLUGINS_FOLDER": str(self.project_dir / "plugins"),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(
                    f"{user}:{self.roles.get(user, 'admin')}" for user in self.users
                ),
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(self.passwords_file),
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.base_url}/execution/",
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__PORT": str(self.port),
                "AIRFLOW__API__BASE_URL": self.base_url,
                "AIRFLOW__API_AUTH__JWT_SECRET": self._jwt_secret(),
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "10",
                "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "30",
                "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
                "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.update(self.extra_env)
        if cli and env.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "sqlite").startswith("sqlite"):
            env.setdefault(
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS", "taxiflow.local.stack.SQLITE_CLI_CONNECT_ARGS"
            )
        return env

    def airflow(
        self, *args: str, check: bool = True, timeout: float = 300, attempts: int = 5
    ) -> subprocess.CompletedProcess:
        """Run one ``airflow`` CLI command against this deployment and capture its output.

        On SQLite a command can lose a write race to the scheduler ("database is locked", at once in
        WAL mode when its read snapshot went stale). Airflow rolls such a command back, so it is run
        again; if an earlier attempt did commit, the retry's "already exists" counts as success.
        """
        lost_a_race = False
        for attempt in range(1, attempts + 1):
            result = subprocess.run(
                [airflow_executable(), *args],
                env=self.env(cli=True),
                cwd=self.home,
                capture_output=True,
                text=True,
                timeout=timeout,
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
                f"airflow {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
            )
        return result

    def migrate(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._write_passwords_file()
        self.write_env_file()
        self.airflow("db", "migrate", timeout=600)

    def write_env_file(self) -> Path:
        """``<home>/env.sh``: ``source`` it to run the ``airflow`` CLI against this deployment."""
        import shlex

        env = self.env(cli=True)
        keep = sorted(k for k in env if k.startswith(("AIRFLOW", "TAXIFLOW")))
        lines = [f"export {k}={shlex.quote(env[k])}" for k in keep]
        lines.append(f"export PATH={shlex.quote(str(Path(airflow_executable()).parent))}:\"$PATH\"")
        path = self.home / "env.sh"
        header = "# source this file to use the airflow CLI against taxiflow's local Airflow\n"
        path.write_text(header + "\n".join(lines) + "\n")
        return path

    def start(self, components: Iterable[str] | None = None) -> None:
        """Start each component in its own process group and record the PIDs."""
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        self._write_passwords_file()
        env = self.env()
        for component in components or self.components:
            # The child keeps its own copy of the descriptor: ours can close at once.
            with open(self.logs_dir / f"{component.replace(' ', '-')}.log", "ab") as log:
                self.processes[component] = subprocess.Popen(
                    [airflow_executable(), *component.split()],
                    env=env,
                    cwd=self.home,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
        self._write_pids()

    def wait_until_healthy(self, timeout: float = 180) -> None:
        """Wait for the api-server to answer and the scheduler/triggerer/dag-processor to heartbeat."""
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        while time.monotonic() < deadline:
            self._raise_if_any_died()
            try:
                with urllib.request.urlopen(f"{self.base_url}/api/v2/monitor/health", timeout=5) as resp:
                    health = json.load(resp)
                expected = {"metadatabase", "scheduler", "triggerer", "dag_processor"}
                unhealthy = [k for k in expected if health.get(k, {}).get("status") != "healthy"]
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
                raise RuntimeError(
                    f"airflow {component} exited with {proc.returncode}\n{self.tail_logs(component)}"
                )

    def tail_logs(self, component: str | None = None, lines: int = 60) -> str:
        names = [component] if component else list(self.processes) or list(self.components)
        chunks = []
        for name in names:
            path = self.logs_dir / f"{name.replace(' ', '-')}.log"
            if path.exists():
                text = path.read_text(errors="replace").splitlines()[-lines:]
                chunks.append(f"--- {name} ({path}) ---\n" + "\n".join(text))
        return "\n".join(chunks)

    def stop(self, timeout: float = 30) -> None:
        """Stop every process this stack started: SIGTERM its process group, SIGKILL after timeout."""
        pids = {name: proc.pid for name, proc in self.processes.items()} or self._read_pids()
        for pid in pids.values():
            _signal_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for name, pid in pids.items():
            proc = self.processes.get(name)
            while time.monotonic() < deadline and _alive(pid, proc):
                time.sleep(0.2)
            if _alive(pid, proc):
                _signal_group(pid, signal.SIGKILL)
            if proc is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=5)
        self.processes.clear()
        (self.home / PIDS_FILE).unlink(missing_ok=True)

    def _write_pids(self) -> None:
        pids = {name: proc.pid for name, proc in self.processes.items()}
        (self.home / PIDS_FILE).write_text(json.dumps({"port": self.port, "pids": pids}))

    def _read_pids(self) -> dict[str, int]:
        path = self.home / PIDS_FILE
        return json.loads(path.read_text())["pids"] if path.exists() else {}

    # --- REST helpers (the v2 API, as a user of the deployment would call it) -----------------

    def token(self, username: str = "admin", password: str | None = None) -> str:
        body = json.dumps({"username": username, "password": password or self.users[username]})
        request = urllib.request.Request(
            f"{self.base_url}/auth/token",
            data=body.encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=30) as resp:
            return json.load(resp)["access_token"]

    def api(self, method: str, path: str, body: object | None = None, token: str | None = None) -> tuple[int, Any]:
        """Call ``/api/v2``; returns (status, decoded JSON body) without raising on HTTP errors."""
        request = urllib.request.Request(
            f"{self.base_url}{path}",
            data=None if body is None else json.dumps(body).encode(),
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {token or self.token()}"},
            method=method,
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as resp:
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as err:
            payload = err.read()
            try:
                return err.code, json.loads(payload)
            except json.JSONDecodeError:
                return err.code, payload.decode(errors="replace")

    def wait_for_dags(self, dag_ids: Iterable[str], timeout: float = 180) -> None:
        """Wait until the dag-processor has parsed these DAGs (and report import errors early)."""
        wanted = set(dag_ids)
        deadline = time.monotonic() + timeout
        token = None
        while time.monotonic() < deadline:
            token = token or self.token()
            status, errors = self.api("GET", "/api/v2/importErrors", token=token)
            if status == 200 and errors.get("total_entries"):
                raise RuntimeError(f"DAG import errors: {json.dumps(errors, indent=1)}")
            status, body = self.api("GET", "/api/v2/dags?limit=100", token=token)
            found = {d["dag_id"] for d in body.get("dags", [])} if status == 200 else set()
            if wanted <= found:
                return
            time.sleep(2)
        raise TimeoutError(f"DAGs {sorted(wanted)} not parsed after {timeout}s\n{self.tail_logs('dag-processor')}")

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 300) -> dict:
        """Poll a DAG run until it leaves queued/running; returns the run as the API shows it."""
        deadline = time.monotonic() + timeout
        token = self.token()
        run: dict = {}
        quoted = urllib.parse.quote(run_id, safe="")
        while time.monotonic() < deadline:
            status, run = self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{quoted}", token=token)
            if status == 200 and run["state"] in ("success", "failed"):
                return run
            time.sleep(2)
        raise TimeoutError(f"{dag_id} run {run_id} still {run.get('state')} after {timeout}s")

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        quoted = urllib.parse.quote(run_id, safe="")
        status, body = self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{quoted}/taskInstances?limit=100")
        return {ti["task_id"]: ti["state"] for ti in body["task_instances"]} if status == 200 else {}


def _alive(pid: int, proc: subprocess.Popen | None) -> bool:
    if proc is not None:
        return proc.poll() is None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _signal_group(pid: int, sig: signal.Signals) -> None:
    """Signal the process group led by ``pid`` (each component runs in its own session)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, sig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m taxiflow.local.stack", description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["up", "down", "status"])
    parser.add_argument("--home", type=Path, required=True, help="AIRFLOW_HOME for this deployment")
    parser.add_argument("--project-dir", type=Path, default=Path.cwd(), help="folder holding dags/ and plugins/")
    parser.add_argument(
        "--data-dir", type=Path, default=None, help=f"data root (default: ${DATA_DIR_ENV} or <project>/data)"
    )
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--demo", action="store_true", help="drop the demo months and backfill them")
    args = parser.parse_args(argv)

    home = args.home.resolve()
    project = args.project_dir.resolve()
    data_dir = (args.data_dir or Path(os.environ.get(DATA_DIR_ENV, project / "data"))).resolve()
    # `make run` downloads from TLC's public host unless the user points nyc_tlc elsewhere.
    tlc = {"AIRFLOW_CONN_NYC_TLC": os.environ.get("AIRFLOW_CONN_NYC_TLC", TLC_PUBLIC_BASE_URL)}
    stack = AirflowStack(home=home, project_dir=project, data_dir=data_dir, port=args.port, extra_env=tlc)

    if args.action == "down":
        stack.stop()
        print("taxiflow: stopped the Airflow processes recorded in", home / PIDS_FILE)
        return 0
    if args.action == "status":
        pids = stack._read_pids()
        for name, pid in pids.items():
            print(f"{name:15} pid {pid:7} {'running' if _alive(pid, None) else 'stopped'}")
        return 0 if pids else 1
    if stack._read_pids() and any(_alive(pid, None) for pid in stack._read_pids().values()):
        print(f"taxiflow: already running (see {home / PIDS_FILE}); `make stop` first", file=sys.stderr)
        return 1
    print(f"taxiflow: starting Airflow in {home} (logs: {stack.logs_dir}) ...", flush=True)
    stack.migrate()
    stack.start()
    try:
        stack.wait_until_healthy()
        stack.wait_for_dags([INGEST_DAG_ID, METRICS_DAG_ID, REPORT_DAG_ID])
        if args.demo:
            bootstrap_demo(stack)
    except Exception:
        stack.stop()
        raise
    user, password = next(iter(stack.users.items()))
    example_conf = '{"borough": "Manhattan", "start_date": "2023-12-18", "end_date": "2024-01-08"}'
    print(
        f"""
taxiflow is running.
  UI:      {stack.base_url}   (login: {user} / {password})
  Data:    {data_dir}
  Trigger: airflow dags trigger {REPORT_DAG_ID} --conf '{example_conf}'
           (run it as: make airflow ARGS="dags trigger ..."; outputs land in {data_dir / 'outputs'})
  Stop:    make stop
""",
        flush=True,
    )
    return 0


DEMO_MONTHS = ("2023-12", "2024-01")


def bootstrap_demo(stack: AirflowStack) -> None:
    """Drop the demo months (unless already there) and backfill their ingest."""
    from taxiflow.config import DataPaths
    from taxiflow.local import demo

    paths = DataPaths(stack.data_dir)
    missing = [m for m in DEMO_MONTHS if not any((paths.landing / s / m / "_SUCCESS").exists() for s in SOURCE_NAMES)]
    if missing:
        demo.generate_demo(months=tuple(missing), paths=paths)
        print(f"taxiflow: dropped demo data for {', '.join(missing)} in {paths.landing}", flush=True)
    status, body = stack.api("GET", f"/api/v2/dags/{INGEST_DAG_ID}/dagRuns?run_type=backfill&limit=1")
    if status == 200 and body.get("total_entries"):
        print("taxiflow: demo months were backfilled before; skipping", flush=True)
        return
    stack.airflow("backfill", "create", "--dag-id", INGEST_DAG_ID,
                  "--from-date", f"{DEMO_MONTHS[0]}-01", "--to-date", f"{DEMO_MONTHS[-1]}-01")
    months = ", ".join(DEMO_MONTHS)
    print(f"taxiflow: backfilling {INGEST_DAG_ID} for {months} (a few minutes; watch the UI)", flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
