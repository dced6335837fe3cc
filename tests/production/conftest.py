"""The production shape, natively: the processes docker-compose.yaml starts, on this machine.

No Docker engine runs here, so this starts the same Airflow commands the compose services run
(read from docker-compose.yaml) against the PostgreSQL and Redis on 127.0.0.1, with
CeleryExecutor and the FAB auth manager, in a fresh database that is dropped afterwards.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import uuid

import pytest
import yaml

from taxiflow.local.ports import free_port
from taxiflow.local.stack import airflow_executable
from taxiflow.local.supervisor import Program
from tests.support.live import PROJECT_DIR, LiveStack, live_deployment

COMPOSE_FILE = PROJECT_DIR / "docker-compose.yaml"
AIRFLOW_SERVICES = (
    "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer", "airflow-worker"
)
REDIS_DB = 11  # this test's own Redis database: its Celery queue cannot meet anyone else's


def reachable(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def compose_environment() -> dict[str, str]:
    """The Airflow settings every compose service shares (x-airflow-common)."""
    return yaml.safe_load(COMPOSE_FILE.read_text())["x-airflow-common"]["environment"]


def compose_commands() -> tuple[str, ...]:
    """The command of every long-running Airflow service in docker-compose.yaml."""
    services = yaml.safe_load(COMPOSE_FILE.read_text())["services"]
    commands = []
    for name in AIRFLOW_SERVICES:
        command = services[name]["command"]
        commands.append(command if isinstance(command, str) else " ".join(command))
    return tuple(commands)


class ComposeShape(LiveStack):
    """The compose services' commands as they are, instead of ``make run``'s programs."""

    def all_components(self) -> tuple[str, ...]:
        return tuple(command.replace(" ", "-") for command in compose_commands())  # celery worker -> celery-worker

    def programs(self) -> list[Program]:
        return [Program(command.replace(" ", "-"), [airflow_executable(), *command.split()], self.home)
                for command in compose_commands()]

    def env(self) -> dict[str, str]:  # as in compose, each component is reached at its own host name
        return {k: v for k, v in super().env().items() if k != "AIRFLOW__CORE__HOSTNAME_CALLABLE"}


def psql(sql: str) -> None:
    subprocess.run(
        ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-c", sql],
        check=True, capture_output=True, text=True,
    )


@pytest.fixture(scope="package")
def celery_stack():
    if not (reachable(5432) and reachable(6379)):
        pytest.skip(
            "PostgreSQL (127.0.0.1:5432) and Redis (127.0.0.1:6379) are needed; scripts/services.sh starts them"
        )
    import redis

    shared = compose_environment()
    database = f"taxiflow_e2e_{uuid.uuid4().hex[:10]}"
    psql(f'CREATE DATABASE "{database}"')
    redis.Redis(host="127.0.0.1", port=6379, db=REDIS_DB).flushdb()

    def create_users(stack) -> None:  # the FAB auth manager keeps its users in the database
        for user, role in (("admin", "Admin"), ("viewer", "Viewer")):
            stack.airflow("users", "create", "--username", user, "--password", user, "--role", role,
                          "--email", f"{user}@example.com", "--firstname", user, "--lastname", "taxiflow")
        # as compose's airflow-init does: the FAB user name_run notes each ingest run's month as
        subprocess.run([sys.executable, str(PROJECT_DIR / "docker" / "run_notes_user.py")], env=stack.env(),
                       check=True, capture_output=True, text=True, timeout=300)

    try:
        with live_deployment(
            "production",
            before_start=create_users,
            users={"admin": "admin", "viewer": "viewer"},
            kind=ComposeShape,
            extra_env={
                # as compose sets them; only the hosts differ (127.0.0.1 instead of service names)
                "AIRFLOW__CORE__EXECUTOR": shared["AIRFLOW__CORE__EXECUTOR"],
                "AIRFLOW__CORE__AUTH_MANAGER": shared["AIRFLOW__CORE__AUTH_MANAGER"],
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"postgresql+psycopg2://postgres@127.0.0.1:5432/{database}",
                "AIRFLOW__CELERY__BROKER_URL": f"redis://127.0.0.1:6379/{REDIS_DB}",
                "AIRFLOW__CELERY__RESULT_BACKEND": f"db+postgresql+psycopg2://postgres@127.0.0.1:5432/{database}",
                "AIRFLOW__CELERY__WORKER_CONCURRENCY": "4",
                "AIRFLOW__CELERY__WORKER_LOG_SERVER_PORT": str(free_port()),
                "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
                "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
                "TAXIFLOW_DROP_POKE_INTERVAL": "3",
                "TAXIFLOW_DROP_TIMEOUT": "120",
                "TAXIFLOW_METRICS_POKE_INTERVAL": "3",
                "TAXIFLOW_REPORT_WAIT_POKE_INTERVAL": "3",
                "TAXIFLOW_DUCKDB_MEMORY_LIMIT": "1GB",
                "TAXIFLOW_DUCKDB_THREADS": "2",
            },
        ) as stack:
            yield stack
    finally:
        psql(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        redis.Redis(host="127.0.0.1", port=6379, db=REDIS_DB).flushdb()
