"""REST helpers of a local deployment: the ``/api/v2`` calls a user of it would make."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping
from typing import Any


class AirflowApiMixin:
    """``/auth/token`` and ``/api/v2`` calls against ``self.base_url`` with ``self.users``."""

    users: Mapping[str, str]

    @property
    def base_url(self) -> str:  # provided by the stack
        raise NotImplementedError

    def tail_logs(self, component: str | None = None, lines: int = 60) -> str:  # provided by the stack
        raise NotImplementedError

    def token(self, username: str = "admin", password: str | None = None) -> str:
        """A JWT from ``POST /auth/token``."""
        body = json.dumps({"username": username, "password": password or self.users[username]})
        request = urllib.request.Request(
            f"{self.base_url}/auth/token", data=body.encode(),
            headers={"Content-Type": "application/json"}, method="POST",
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
            status, body = self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{quoted}", token=token)
            if status == 200 and isinstance(body, dict):
                run = body
                if run["state"] in ("success", "failed"):
                    return run
            time.sleep(2)
        raise TimeoutError(f"{dag_id} run {run_id} still {run.get('state')} after {timeout}s")

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        """task_id -> state for one run."""
        quoted = urllib.parse.quote(run_id, safe="")
        status, body = self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{quoted}/taskInstances?limit=100")
        return {ti["task_id"]: ti["state"] for ti in body["task_instances"]} if status == 200 else {}
