"""Nothing depends on a shared disk: every task runs on a worker that shares neither disk nor network
with the rest of the deployment, and the numbers are the same.

The deployment (api-server, scheduler, dag-processor, triggerer, embedded PostgreSQL) runs with the
Edge executor (``apache-airflow-providers-edge3``) and its data in a SeaweedFS bucket. Its only worker
is an Edge worker on a "second host" made on this machine (``tests/drills/netns.py``): its own network
namespace, where only the api-server's and the object store's ports are relayed, a private mount
hiding ``/tmp`` (the deployment's home, data root and the bucket's files) and the project's data
folder, its own hostname and ``AIRFLOW_HOME``. It is given what a worker on another host or a
managed Airflow is given: the API server's URL, the JWT secret, the DAG files (here the project's
folder, in an image elsewhere) and the storage connection, and no database.

The drill proves the isolation from inside the worker's namespaces, then uploads a real TLC month to
the bucket (``_SUCCESS`` last), has it ingested and reported (``/api/v2``), and checks every task ran
on that worker and the CSV equals an independent pandas count. Needs root and ``ip netns``; run under
the heavy lock.
"""

from __future__ import annotations

import io
import socket
import subprocess
import sys

import pandas as pd
import pytest

from taxiflow.config import INGEST_DAG_ID, METRICS_DAG_ID, REPORT_DAG_ID, SUCCESS_MARKER, DataPaths, Partition
from taxiflow.local.stack import airflow_executable
from tests.drills.netns import isolated_host, unavailable_reason
from tests.e2e.test_pipeline import expected_counts
from tests.support.live import FAST_WAITS, PROJECT_DIR, live_deployment

pytestmark = [pytest.mark.drills, pytest.mark.e2e, pytest.mark.s3]

MONTH = "2024-01"
SOURCE = "green"  # the real month of tests/data/tlc; the deployment ingests only this source
REPORT = {"borough": "Manhattan", "start_date": "2024-01-08", "end_date": "2024-01-22", "sources": [SOURCE],
          "name": "isolated_report"}
EDGE_EXECUTOR = "airflow.providers.edge3.executors.EdgeExecutor"
# The deployment's side: the Edge executor, its worker API on the api-server, finished jobs kept an
# hour (the drill lists them), and the one source this drill drops.
DEPLOYMENT_ENV = {
    "AIRFLOW__CORE__EXECUTOR": EDGE_EXECUTOR,
    "AIRFLOW__EDGE__API_ENABLED": "True",
    "AIRFLOW__EDGE__JOB_SUCCESS_PURGE": "60",
    "TAXIFLOW_INGEST_SOURCES": SOURCE,
}


def worker_env(stack, storage_env: dict[str, str]) -> dict[str, str]:
    """Everything the isolated worker is told: the API server's URL, the JWT secret its calls are
    signed with, the DAG files, the storage connection. No database: it has none to reach."""
    api = f"http://127.0.0.1:{stack.port}"  # relayed into the namespace on the same port
    return {
        "PATH": f"{PROJECT_DIR / '.venv' / 'bin'}:/usr/bin:/bin:/usr/sbin:/sbin",
        "HOME": "/tmp/edge-home",
        "AIRFLOW_HOME": "/tmp/edge-home",
        "PYTHONUNBUFFERED": "1",
        "AIRFLOW__CORE__EXECUTOR": EDGE_EXECUTOR,
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_DIR / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(PROJECT_DIR / "plugins"),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{api}/execution/",
        "AIRFLOW__EDGE__API_URL": f"{api}/edge_worker/v1/rpcapi",
        "AIRFLOW__EDGE__JOB_POLL_INTERVAL": "1",
        "AIRFLOW__EDGE__HEARTBEAT_INTERVAL": "5",
        "AIRFLOW__API_AUTH__JWT_SECRET": stack.env()["AIRFLOW__API_AUTH__JWT_SECRET"],
        **{k: v for k, v in stack.env().items() if k.startswith("TAXIFLOW_")},
        **storage_env,
    }


def wait_for_worker(stack, name: str, worker, timeout: float = 180) -> dict:
    """Until the api-server lists the worker as idle (registered, heartbeating)."""
    import time

    deadline = time.monotonic() + timeout
    seen: dict = {}
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            break
        status, body = stack.api("GET", f"/edge_worker/ui/worker?worker_name_pattern={name}")
        seen = next(iter(body.get("workers", [])), {}) if status == 200 else {"status": status, "body": body}
        if seen.get("state") == "idle":
            return seen
        time.sleep(1)
    raise AssertionError(f"edge worker {name} not idle after {timeout}s (exit {worker.poll()}): {seen}")


@pytest.fixture(scope="module")
def isolated(seaweedfs, tmp_path_factory):
    if reason := unavailable_reason():
        pytest.skip(f"the isolated-worker drill {reason}")
    storage_env = seaweedfs.env(prefix="isolated")
    local_data = tmp_path_factory.mktemp("unused-local-data")
    root = tmp_path_factory.mktemp("isolated-host")
    settings = {**FAST_WAITS, **storage_env, **DEPLOYMENT_ENV}
    with live_deployment("isolated", data_dir=local_data, extra_env=settings) as stack, \
            isolated_host(root, {"api": stack.port, "s3": seaweedfs.ports["s3.port"]}) as host:
        command = [airflow_executable(), "edge", "worker", "--edge-hostname", host.name,
                   "--queues", "default", "--concurrency", "2"]
        worker = host.start(command, worker_env(stack, storage_env), hide=[PROJECT_DIR / "data"], keep=PROJECT_DIR,
                            log=root / "edge-worker.log")
        try:
            wait_for_worker(stack, host.name, worker)
        except AssertionError:
            print((root / "edge-worker.log").read_text(errors="replace")[-5000:], file=sys.stderr)
            raise
        yield {"stack": stack, "host": host, "worker": worker, "storage_env": storage_env,
               "local_data": local_data, "seaweedfs": seaweedfs, "log": root / "edge-worker.log"}


def host_address() -> str | None:
    """The machine's first global IPv4 address (where anything bound to 0.0.0.0 listens)."""
    out = subprocess.run(["ip", "-4", "-o", "addr", "show", "scope", "global"], capture_output=True, text=True).stdout
    return out.split()[3].split("/")[0] if out.strip() else None


def test_the_worker_reaches_only_the_api_server_and_the_object_store(isolated):
    stack, host, worker, server = isolated["stack"], isolated["host"], isolated["worker"], isolated["seaweedfs"]
    api, s3 = stack.port, server.ports["s3.port"]
    with socket.create_server(("0.0.0.0", 0)) as listener:  # a host service on every interface
        everywhere = listener.getsockname()[1]
        address = host_address()
        if address:
            socket.create_connection((address, everywhere), timeout=5).close()  # the host itself reaches it
        else:
            address = "192.0.2.1"  # no global address here: an outside one (TEST-NET-1) stands for it
        seen = host.probe(worker, ports={
            "api-server": f"127.0.0.1:{api}",
            "object store": f"127.0.0.1:{s3}",
            "metadata database": f"127.0.0.1:{stack.ports()['postgres']}",
            "log server": f"127.0.0.1:{stack.ports()['log']}",
            "object store's filer": f"127.0.0.1:{server.ports['filer.port']}",
            "a host service on every interface": f"{address}:{everywhere}",
        }, urls={
            "api-server health": f"http://127.0.0.1:{api}/api/v2/monitor/health",
            "object store": f"http://127.0.0.1:{s3}/{server.bucket}",
        }, paths=[stack.home, stack.data_dir, server.directory, host.sockets, PROJECT_DIR / "data" / "reference",
                  PROJECT_DIR / "dags"])

    assert seen["hostname"] == host.name
    assert seen["interfaces"] == ["lo"]  # no link at all: only the relayed ports lead out
    assert seen["ports"] == {
        "api-server": "open",
        "object store": "open",
        "metadata database": "Connection refused",
        "log server": "Connection refused",
        "object store's filer": "Connection refused",
        "a host service on every interface": "Network is unreachable",
    }
    assert seen["urls"] == {"api-server health": 200, "object store": 403}  # the bucket wants a signed request
    assert seen["paths"] == {str(stack.home): False, str(stack.data_dir): False, str(server.directory): False,
                             str(host.sockets): False, str(PROJECT_DIR / "data" / "reference"): False,
                             str(PROJECT_DIR / "dags"): True}  # the DAG files, as in an image


def test_a_real_month_is_ingested_and_reported_on_the_isolated_worker_with_the_same_numbers(
        isolated, tlc_dir, monkeypatch):
    from taxiflow.data import storage, warehouse
    from taxiflow.reports.outputs import read_report

    stack, host = isolated["stack"], isolated["host"]
    for name, value in isolated["storage_env"].items():
        monkeypatch.setenv(name, value)
    month_file = tlc_dir / SOURCE / f"{SOURCE}_tripdata_{MONTH}.parquet"
    landing = DataPaths(storage.root()).landing_dir(Partition(SOURCE, MONTH))
    storage.upload(month_file, landing / month_file.name)
    storage.write_bytes(landing / SUCCESS_MARKER, b"")  # last, as an upstream system does

    stack.airflow("dags", "trigger", INGEST_DAG_ID, "-l", f"{MONTH}-01T00:00:00+00:00", "-r", "isolated_ingest")
    run = stack.wait_for_run(INGEST_DAG_ID, "isolated_ingest", timeout=300)
    assert run["state"] == "success", stack.task_states(INGEST_DAG_ID, "isolated_ingest")
    status, body = stack.api("POST", f"/api/v2/dags/{REPORT_DAG_ID}/dagRuns",
                             {"dag_run_id": "isolated_report", "logical_date": None, "conf": REPORT})
    assert status == 200, body
    run = stack.wait_for_run(REPORT_DAG_ID, "isolated_report", timeout=300)
    assert run["state"] == "success", stack.task_states(REPORT_DAG_ID, "isolated_report")

    report = read_report(REPORT["name"])  # through its manifest, from the bucket
    assert report is not None and report.png.startswith(b"\x89PNG")
    numbers = pd.read_csv(io.BytesIO(report.csv))
    expected = expected_counts([(SOURCE, MONTH, month_file)], warehouse.PACKAGED_ZONE_TABLE,
                               REPORT["borough"], REPORT["start_date"], REPORT["end_date"])
    merged = expected.merge(numbers, on=["hour_of_day", "day_of_week"], suffixes=("_expected", "_report"))
    assert len(merged) == 168 and numbers["num_trips"].sum() > 1000
    assert (merged["num_trips_expected"] == merged["num_trips_report"]).all()

    # The runs this test made are finished, so their tasks and Edge jobs are settled. The ingest DAG's
    # own scheduled run (its latest month, unpaused at creation) is not compared: it may be starting
    # a task (start date set, host not yet) between the reads.
    ours = {"isolated_ingest", "isolated_report", Partition(SOURCE, MONTH).metrics_run_id}
    ran = [ti for ti in ran_task_instances(stack) if ti["dag_run_id"] in ours]
    assert {ti["dag_id"] for ti in ran} == {INGEST_DAG_ID, METRICS_DAG_ID, REPORT_DAG_ID}
    assert {(ti["hostname"], ti["queue"]) for ti in ran} == {(host.name, "default")}
    status, body = stack.api("GET", "/edge_worker/ui/jobs")
    assert status == 200, body
    jobs = {(job["dag_id"], job["run_id"], job["task_id"]): job["edge_worker"] for job in body["jobs"]
            if job["run_id"] in ours}
    assert jobs == {(ti["dag_id"], ti["dag_run_id"], ti["task_id"]): host.name for ti in ran}
    assert {ti["dag_run_id"] for ti in ran} == ours
    assert list(isolated["local_data"].rglob("*")) == []  # nothing reached the host's data folder


def ran_task_instances(stack) -> list[dict]:
    """Every task instance that ran (any state but skipped or never started), of every DAG run."""
    status, body = stack.api("GET", "/api/v2/dags/~/dagRuns/~/taskInstances?limit=1000")
    assert status == 200, body
    return [ti for ti in body["task_instances"] if ti["start_date"] and ti["state"] != "skipped"]
