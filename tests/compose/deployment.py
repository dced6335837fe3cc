"""One ``docker compose`` deployment of taxiflow, driven only through its published ports and exec.

:func:`prepare_project` copies what a fresh clone holds into a temporary folder (so the test's
``.env`` never touches the checkout) and writes ``.env`` the README's way
(``scripts/compose_env.py``) with free loopback ports. :class:`Deployment` wraps the compose CLI
(unique project name), the REST doors and the S3 port on 127.0.0.1, and ``docker compose exec``.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parents[2]
# What a clone holds that the deployment uses (no .venv, .git, data or .env of the checkout).
SHIPPED = ("Dockerfile", ".dockerignore", "docker-compose.yaml", ".env.example", "requirements.txt",
           "pyproject.toml", "README.md", "include", "dags", "plugins", "docker", "scripts")
IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "*.crt")
# The test's own Airflow connection to the deployment's bucket (the `bucket` fixture).
BUCKET_CONN_ID = "taxiflow_compose_tier"


def prepare_project(target: Path, env: dict[str, str], airflow_env: dict[str, str], extra_ca_dir: Path) -> Path:
    """A project folder as a fresh clone has it, with ``.env`` and ``airflow.env`` for this test."""
    for name in SHIPPED:
        source = PROJECT_DIR / name
        if source.is_dir():
            shutil.copytree(source, target / name, ignore=IGNORE)
        elif source.exists():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    # The README's step for an HTTPS-intercepting proxy: its CA goes into docker/ca-certificates/.
    for cert in sorted(extra_ca_dir.glob("*.crt")):
        shutil.copy2(cert, target / "docker" / "ca-certificates" / cert.name)
    subprocess.run([sys.executable, str(target / "scripts" / "compose_env.py"),
                    *(f"{k}={v}" for k, v in env.items())], check=True, capture_output=True, text=True)
    (target / "airflow.env").write_text("".join(f"{k}={v}\n" for k, v in airflow_env.items()))
    return target


def read_env(path: Path) -> dict[str, str]:
    """The variables of an env file (last one wins, as in compose)."""
    values = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


@dataclass
class Deployment:
    """A compose project in ``project_dir``; every call goes through the compose CLI or 127.0.0.1."""

    compose_bin: Path
    project_dir: Path
    project: str
    env: dict[str, str] = field(default_factory=dict)
    _token: str | None = None
    _s3: object = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.env['AIRFLOW_API_PORT']}"

    @property
    def admin(self) -> tuple[str, str]:
        return self.env["_AIRFLOW_WWW_USER_USERNAME"], self.env["_AIRFLOW_WWW_USER_PASSWORD"]

    @property
    def s3_endpoint(self) -> str:
        """The object store's S3 port as published on this host."""
        return f"http://127.0.0.1:{self.env['TAXIFLOW_S3_PORT']}"

    @property
    def data_url(self) -> str:
        """TAXIFLOW_DATA_DIR of every Airflow service (compose's defaults for bucket and prefix)."""
        return "s3://taxiflow/data"

    def host_connection(self) -> dict:
        """An ``aws`` Airflow connection reaching the bucket from this host, with the keys of ``.env``."""
        return {"conn_type": "aws", "login": self.env["TAXIFLOW_S3_ACCESS_KEY"],
                "password": self.env["TAXIFLOW_S3_SECRET_KEY"],
                "extra": {"endpoint_url": self.s3_endpoint, "region_name": "us-east-1"}}

    def bucket_paths(self, conn_id: str):
        """The data root in the bucket as a reader on this host sees it, through an Airflow connection
        ``conn_id`` of its own (``AIRFLOW_CONN_<ID>`` set here): each connection id is a filesystem
        object of its own, with its own listing cache, like a reader on another host."""
        from airflow.sdk import ObjectStoragePath

        from taxiflow.config import DataPaths

        os.environ[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(self.host_connection())
        return DataPaths(ObjectStoragePath(f"s3://{conn_id}@{self.data_url.removeprefix('s3://')}"))

    def s3_client(self):
        """A boto3 S3 client on the published port (listing, byte-level checks), made once."""
        import boto3  # type: ignore[import-untyped]

        if self._s3 is None:
            self._s3 = boto3.client("s3", endpoint_url=self.s3_endpoint, region_name="us-east-1",
                                    aws_access_key_id=self.env["TAXIFLOW_S3_ACCESS_KEY"],
                                    aws_secret_access_key=self.env["TAXIFLOW_S3_SECRET_KEY"])
        return self._s3

    def objects(self, prefix: str) -> dict[str, int]:
        """Every object of the bucket below ``prefix``: key -> size in bytes."""
        client, found = self.s3_client(), {}
        for page in client.get_paginator("list_objects_v2").paginate(Bucket="taxiflow", Prefix=prefix):
            found.update({item["Key"]: item["Size"] for item in page.get("Contents", [])})
        return found

    def compose(self, *args: str, check: bool = True, timeout: float = 900) -> subprocess.CompletedProcess:
        """Run ``docker compose -p <project> <args>`` in the project folder."""
        result = subprocess.run([str(self.compose_bin), "-p", self.project, "--profile", "flower", *args],
                                cwd=self.project_dir, capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise RuntimeError(f"docker compose {' '.join(args)} exited {result.returncode}:\n"
                               f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
        return result

    def exec(self, service: str, *command: str, check: bool = True) -> subprocess.CompletedProcess:
        """``docker compose exec -T <service> <command>`` (through the image's entrypoint for airflow)."""
        return self.compose("exec", "-T", service, *command, check=check, timeout=300)

    def airflow(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """The ``airflow`` CLI inside the api-server container."""
        return self.exec("airflow-apiserver", "airflow", *args, check=check)

    def containers(self, service: str) -> list[str]:
        """Ids of the running containers of ``service``."""
        return self.compose("ps", "-q", service).stdout.split()

    def hostnames(self, service: str) -> dict[str, str]:
        """Container hostname (what Airflow records as a task's hostname) -> container id."""
        names = {}
        for container in self.containers(service):
            out = subprocess.run(["docker", "inspect", "-f", "{{.Config.Hostname}}", container],
                                 check=True, capture_output=True, text=True).stdout.strip()
            names[out] = container
        return names

    def published(self) -> list[dict]:
        """Every published port of the project's running containers, as ``docker compose ps`` shows."""
        rows = self.compose("ps", "--format", "json").stdout
        entries = [json.loads(line) for line in rows.splitlines() if line.strip()]
        if len(entries) == 1 and isinstance(entries[0], list):
            entries = entries[0]
        return [{"service": e["Service"], **p}
                for e in entries for p in e.get("Publishers") or [] if p.get("PublishedPort")]

    # --- REST doors on 127.0.0.1 ---------------------------------------------------------------------
    def request(self, method: str, path: str, body: object | None = None, headers: dict | None = None,
                timeout: float = 60) -> tuple[int, object]:
        """One HTTP call to the published api-server port; (status, decoded JSON or text)."""
        request = urllib.request.Request(
            f"{self.base_url}{path}", method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Content-Type": "application/json", **(headers or {})},
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as resp:
                payload, status = resp.read(), resp.status
        except urllib.error.HTTPError as err:
            payload, status = err.read(), err.code
        try:
            return status, json.loads(payload or b"null")
        except json.JSONDecodeError:
            return status, payload.decode(errors="replace")

    def token(self, fresh: bool = False) -> str:
        """A JWT from ``POST /auth/token`` for the admin user of ``.env``."""
        if self._token is None or fresh:
            user, password = self.admin
            status, body = self.request("POST", "/auth/token", {"username": user, "password": password})
            if status not in (200, 201):
                raise RuntimeError(f"/auth/token answered {status}: {body}")
            self._token = body["access_token"]
        return self._token

    def api(self, method: str, path: str, body: object | None = None) -> tuple[int, object]:
        """``/api/v2`` with a bearer token (renewed once on 401)."""
        for attempt in range(2):
            status, payload = self.request(method, path, body, {"Authorization": f"Bearer {self.token(attempt > 0)}"})
            if status != 401:
                return status, payload
        return status, payload

    def api_v1(self, method: str, path: str, body: object | None = None, auth: tuple[str, str] | None = None):
        """``/api/v1`` with HTTP Basic auth, as Airflow 2 clients call it."""
        user, password = auth or self.admin
        basic = base64.b64encode(f"{user}:{password}".encode()).decode()
        return self.request(method, f"/api/v1{path}", body, {"Authorization": f"Basic {basic}"})

    def wait_for(self, predicate, what: str, timeout: float, interval: float = 2.0):
        """Poll ``predicate()`` until it returns something truthy; tolerate a restarting api-server."""
        deadline = time.monotonic() + timeout
        last: object = None
        while time.monotonic() < deadline:
            try:
                last = predicate()
            except (OSError, RuntimeError, urllib.error.URLError) as err:  # api-server or DB restarting
                last = err
            else:
                if last:
                    return last
            time.sleep(interval)
        raise TimeoutError(f"{what}: not done after {timeout}s (last: {last})\n{self.logs_tail()}")

    def run(self, dag_id: str, run_id: str) -> dict | None:
        status, run = self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id, safe='')}")
        return run if status == 200 else None

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 300) -> dict:
        """Wait until a run leaves queued/running; returns it as the API shows it."""
        def finished():
            run = self.run(dag_id, run_id)
            return run if run and run["state"] in ("success", "failed") else None
        try:
            return self.wait_for(finished, f"{dag_id} run {run_id}", timeout)
        except TimeoutError as err:  # say where the run stands: which task waits, and the scheduler's view
            raise TimeoutError(f"{err}\n{self.where_run_stands(dag_id, run_id)}") from None

    def where_run_stands(self, dag_id: str, run_id: str) -> str:
        """Each task instance of a run (state, try, host, times) and the scheduler's last log lines."""
        try:
            rows = [f"  {ti['task_id']}: {ti['state']} try {ti['try_number']} on {ti.get('hostname') or '-'}"
                    f" (queued {ti.get('queued_when')}, started {ti.get('start_date')}, ended {ti.get('end_date')})"
                    for ti in self.task_instances(dag_id, run_id)]
        except (OSError, RuntimeError) as err:
            rows = [f"  task instances unavailable: {err}"]
        scheduler = self.compose("logs", "--no-color", "--tail", "80", "airflow-scheduler", check=False, timeout=120)
        return "\n".join([f"task instances of {dag_id} {run_id}:", *rows, "scheduler:", scheduler.stdout[-8000:]])

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        quoted = urllib.parse.quote(run_id, safe="")
        status, body = self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{quoted}/taskInstances?limit=100")
        if status != 200:
            raise RuntimeError(f"taskInstances answered {status}: {body}")
        return body["task_instances"]

    def tries(self, dag_id: str, run_id: str, task_id: str) -> list[dict]:
        """Every try of one task (history plus the current one), oldest first."""
        quoted = urllib.parse.quote(run_id, safe="")
        status, body = self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{quoted}/taskInstances/{task_id}/tries")
        if status != 200:
            raise RuntimeError(f"tries answered {status}: {body}")
        return sorted(body["task_instances"], key=lambda ti: ti["try_number"])

    def runs(self, dag_id: str) -> list[dict]:
        status, body = self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns?limit=100")
        if status != 200:
            raise RuntimeError(f"dagRuns answered {status}: {body}")
        return body["dag_runs"]

    def memory_mb(self) -> float:
        """Memory in use by the project's containers now (docker stats), in MiB."""
        ids = self.compose("ps", "-q").stdout.split()
        out = subprocess.run(["docker", "stats", "--no-stream", "--format", "{{.MemUsage}}", *ids],
                             check=True, capture_output=True, text=True).stdout
        units = {"B": 1 / 2**20, "KiB": 1 / 1024, "MiB": 1, "GiB": 1024}
        total = 0.0
        for line in out.splitlines():
            used = line.split("/")[0].strip()
            number = used.rstrip("KMGiB")
            total += float(number) * units[used[len(number):]]
        return total

    def logs_tail(self, lines: int = 40) -> str:
        result = self.compose("logs", "--no-color", "--tail", str(lines), check=False, timeout=120)
        return result.stdout[-6000:]

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int) -> dict:
        """``GET .../logs/{try}`` as the UI asks it (JSON): ``content`` is a list of log records."""
        quoted = urllib.parse.quote(run_id, safe="")
        status, body = self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{quoted}/taskInstances/{task_id}"
                                       f"/logs/{try_number}?full_content=true")
        if status != 200:
            raise RuntimeError(f"task log answered {status}: {body}")
        return body

    def mounts(self) -> dict[str, tuple[str, list[dict]]]:
        """Container id -> (its compose service, its mounts as ``docker inspect`` lists them), for
        every container of the project (stopped ones too)."""
        found = {}
        for container in self.compose("ps", "-a", "-q").stdout.split():
            out = subprocess.run(["docker", "inspect", "-f", "{{json .}}", container],
                                 check=True, capture_output=True, text=True).stdout
            info = json.loads(out)
            found[container] = (info["Config"]["Labels"]["com.docker.compose.service"], info.get("Mounts") or [])
        return found
