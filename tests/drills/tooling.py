"""Load and crash drills against a live local deployment (the ``drills`` tests and ``make bench``: test
tooling, not shipped in the package).

The burst: many ``/api/v2`` and ``/api/v1`` triggers from several threads plus request files dropped
at the same moment, sent by a client that retries only what the server asks it to retry (503/429
with ``Retry-After``). Every answer is recorded, so a test can assert that none was a 500.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from taxiflow.config import INGEST_DAG_ID, REPORT_DAG_ID, DataPaths
from tests.support.live import ALL_DAGS, LiveStack, new_stack

RETRYABLE = (429, 503)


@dataclass
class Answer:
    """Every HTTP status one logical call got, in order, and the Retry-After values it was told."""

    door: str
    name: str
    statuses: list[int] = field(default_factory=list)
    retry_after: list[str] = field(default_factory=list)
    last_body: str = ""

    @property
    def final(self) -> int:
        return self.statuses[-1] if self.statuses else 0


def _send(url: str, body: dict, headers: dict[str, str]) -> tuple[int, dict[str, str], str]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json", **headers})
    try:
        with urllib.request.urlopen(request, timeout=120) as resp:
            return resp.status, dict(resp.headers), resp.read().decode(errors="replace")
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read().decode(errors="replace")


def retrying_post(door: str, name: str, url: str, body: dict, headers: dict[str, str], attempts: int = 30) -> Answer:
    """POST until the answer is not 503/429; honours Retry-After (a retry without it is not allowed)."""
    answer = Answer(door, name)
    for _ in range(attempts):
        status, response_headers, text = _send(url, body, headers)
        answer.statuses.append(status)
        answer.last_body = text[:500]
        retry_after = {k.lower(): v for k, v in response_headers.items()}.get("retry-after")
        if status not in RETRYABLE or retry_after is None:
            break
        answer.retry_after.append(retry_after)
        time.sleep(min(float(retry_after), 10))
    return answer


def report_conf(name: str) -> dict:
    """The conf every burst report asks for (only the output name differs)."""
    return {"borough": "Manhattan", "start_date": "2024-01-01", "end_date": "2024-01-22", "name": name}


@dataclass
class BurstResult:
    """What a burst sent, what it got and what it produced."""

    answers: list[Answer]
    run_ids: list[str]
    file_stems: list[str]
    started: float
    sent_seconds: float
    peak_rss: int = 0
    last_chart_seconds: float = 0.0


class RssSampler(threading.Thread):
    """Samples the deployment's memory (every process of it) twice a second: the sum of resident
    sizes (``peak``, counts shared pages once per process) and of proportional sizes (``peak_pss``,
    what the deployment really holds: a page shared by n processes counts 1/n in each; Linux only,
    0 elsewhere)."""

    def __init__(self, stack: LiveStack) -> None:
        super().__init__(daemon=True)
        self.stack = stack
        self.peak = 0
        self.peak_pss = 0
        self._done = threading.Event()

    def run(self) -> None:
        import psutil

        while not self._done.is_set():
            rss = pss = 0
            for pid in self.stack.deployment_pids():
                try:
                    memory = psutil.Process(pid).memory_full_info()
                except psutil.Error:
                    continue
                rss, pss = rss + memory.rss, pss + getattr(memory, "pss", 0)
            self.peak, self.peak_pss = max(self.peak, rss), max(self.peak_pss, pss)
            self._done.wait(0.5)

    def stop(self) -> int:
        self._done.set()
        self.join(timeout=5)
        return self.peak


def burst(stack: LiveStack, v2: int = 40, v1: int = 20, files: int = 10, threads: int = 12,
          prefix: str = "burst") -> BurstResult:
    """Send the burst at once; returns when every call has its final answer (runs may still go on)."""
    token = stack.token()
    user, password = next(iter(stack.users.items()))
    basic = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    jobs = []
    for i in range(v2):
        name = f"{prefix}-v2-{i:02d}"
        jobs.append(("v2", name, f"{stack.base_url}/api/v2/dags/{REPORT_DAG_ID}/dagRuns",
                     {"dag_run_id": name, "logical_date": None, "conf": report_conf(name)},
                     {"Authorization": f"Bearer {token}"}))
    for i in range(v1):
        name = f"{prefix}-v1-{i:02d}"
        jobs.append(("v1", name, f"{stack.base_url}/api/v1/dags/{REPORT_DAG_ID}/dagRuns",
                     {"dag_run_id": name, "conf": report_conf(name)}, {"Authorization": basic}))
    jobs.sort(key=lambda job: job[1][-2:])  # interleave the doors
    requests_dir = DataPaths(stack.data_dir).requests
    requests_dir.mkdir(parents=True, exist_ok=True)
    stems = [f"{prefix}-file-{i:02d}" for i in range(files)]
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        futures = [pool.submit(retrying_post, *job) for job in jobs]
        for stem in stems:
            conf = {k: v for k, v in report_conf(stem).items() if k != "name"}
            (requests_dir / f"{stem}.json").write_text(json.dumps(conf))
        answers = [future.result() for future in futures]
    return BurstResult(answers=answers, run_ids=[job[1] for job in jobs], file_stems=stems,
                       started=started, sent_seconds=time.monotonic() - started)


def wait_for_charts(stack: LiveStack, names: list[str], since: float, timeout: float = 900) -> float:
    """Wait until report ``<name>`` is published for every name; seconds from ``since`` to the last one.

    Gives up early, saying so, when a component of the deployment has exited (nothing would land).
    """
    from taxiflow.reports.outputs import read_manifest

    paths = DataPaths(stack.data_dir)
    deadline = time.monotonic() + timeout
    missing = list(names)
    while missing and time.monotonic() < deadline:
        dead = [name for name, info in stack.status().items() if not info["running"]]
        if dead:
            raise TimeoutError(f"{len(missing)} chart(s) missing and {', '.join(dead)} exited")
        missing = [n for n in missing if read_manifest(n, paths) is None]
        if missing:
            time.sleep(1)
    if missing:
        raise TimeoutError(f"{len(missing)} chart(s) missing after {timeout}s, e.g. {missing[:5]}")
    return time.monotonic() - since


def chart_numbers(data_dir: Path, name: str) -> str:
    """The CSV behind a chart, as text (what 'the same numbers' compares)."""
    from taxiflow.reports.outputs import read_report

    report = read_report(name, DataPaths(data_dir))
    if report is None:
        raise FileNotFoundError(f"no published report {name!r} in {data_dir}/outputs")
    return report.csv.decode("utf-8")


# --- a small deployment to drill on ------------------------------------------------------------------

DRILL_MONTH = "2024-01"
DRILL_TRIPS = {"yellow": 4000, "green": 1000}  # small: the drill is about load on Airflow, not DuckDB
DRILL_ENV = {
    "TAXIFLOW_DROP_POKE_INTERVAL": "3",
    "TAXIFLOW_DROP_TIMEOUT": "120",
    "TAXIFLOW_METRICS_POKE_INTERVAL": "3",
    "TAXIFLOW_REPORT_WAIT_POKE_INTERVAL": "3",
    "TAXIFLOW_REPORT_WAIT_TIMEOUT": "600",
    "TAXIFLOW_REQUESTS_POLL_SECONDS": "10",
    "TAXIFLOW_DUCKDB_MEMORY_LIMIT": "256MB",
    "TAXIFLOW_DUCKDB_THREADS": "1",
    # a task whose process was killed with its component is retried after 45 s
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "45",
}


def drill_stack(root: Path) -> LiveStack:
    """A drill deployment in ``root`` (home and data root), not started, with the zone table in place
    (``make bench``; the drills' own is ``drill_deployment``, tests/drills/conftest.py)."""
    return new_stack(root, extra_env=DRILL_ENV)


def ingest_drill_month(stack: LiveStack) -> None:
    """Drop a small month of both sources and ingest it (the reports' data)."""
    from taxiflow.demo.trips import generate_month

    for source, trips in DRILL_TRIPS.items():
        generate_month(source, DRILL_MONTH, trips, paths=DataPaths(stack.data_dir))
    stack.airflow("dags", "trigger", INGEST_DAG_ID, "-l", f"{DRILL_MONTH}-01T00:00:00+00:00", "-r", "drill_ingest")
    run = stack.wait_for_run(INGEST_DAG_ID, "drill_ingest", timeout=600)
    if run["state"] != "success":
        raise RuntimeError(f"the drill's ingest failed: {stack.task_states(INGEST_DAG_ID, 'drill_ingest')}")


def bring_up(stack: LiveStack) -> None:
    """Migrate and start a drill deployment, wait until it is healthy and parsed, ingest its month."""
    stack.migrate()
    stack.start()
    stack.wait_until_healthy(ALL_DAGS, timeout=300)
    ingest_drill_month(stack)


def report_alone(stack: LiveStack, name: str, timeout: float = 600) -> float:
    """Trigger one report by /api/v2 and wait for it; returns its seconds from trigger to success."""
    started = time.monotonic()
    status, body = stack.api("POST", f"/api/v2/dags/{REPORT_DAG_ID}/dagRuns",
                             {"dag_run_id": name, "logical_date": None, "conf": report_conf(name)})
    if status != 200:
        raise RuntimeError(f"trigger {name}: {status} {body}")
    run = stack.wait_for_run(REPORT_DAG_ID, name, timeout=timeout)
    if run["state"] != "success":
        raise RuntimeError(f"report {name} ended {run['state']}: {stack.task_states(REPORT_DAG_ID, name)}")
    return time.monotonic() - started


def run_states(stack: LiveStack, run_ids: list[str], timeout: float = 900) -> dict[str, str]:
    """Wait until none of these runs is queued or running; run_id -> final state."""
    deadline = time.monotonic() + timeout
    token = stack.token()
    states: dict[str, str] = {}
    while time.monotonic() < deadline:
        status, body = stack.api("GET", f"/api/v2/dags/{REPORT_DAG_ID}/dagRuns?limit=1000", token=token)
        if status == 200 and isinstance(body, dict):
            states = {r["dag_run_id"]: r["state"] for r in body["dag_runs"] if r["dag_run_id"] in run_ids}
            if len(states) == len(run_ids) and all(s in ("success", "failed") for s in states.values()):
                return states
        time.sleep(1)
    raise TimeoutError(f"runs not finished after {timeout}s: "
                       f"{ {r: s for r, s in states.items() if s not in ('success', 'failed')} }")
