"""The compose tier's deployment: `docker compose up -d --build --wait`, shared by its tests.

A pytest plugin (tests/conftest.py loads it), so that its one deployment per session serves
tests/compose/ and the compose drills in tests/drills/ alike (the tier runs in a pytest of its own).

Engine and Compose come from :mod:`tests.compose.engine`; images are the real ones when a registry
answers, else stand-ins (scripts/standin-images/ensure.sh, built once per recipe). The project runs
from a temporary copy under a unique project name, on free ports bound to 127.0.0.1, with two
Celery workers, and is removed with ``docker compose down -v`` at the end, whatever happened.

The deployment keeps its data and task logs in its object-store service's bucket; the tests reach
that bucket only through its published S3 port (the ``bucket`` fixture), as an operator dropping
files from the host would.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from taxiflow.config import DataPaths
from taxiflow.local.ports import free_port
from tests.compose.deployment import BUCKET_CONN_ID, PROJECT_DIR, Deployment, prepare_project, read_env
from tests.compose.engine import compose_binary, ensure_engine, unavailable_reason
from tests.support.tlc_server import TlcServer

EXTRA_CA_DIR = Path("/usr/local/share/ca-certificates")
WORKERS = 2
FLOWER_AUTH = ("flower", uuid.uuid4().hex[:12])
# Short waits so the tier runs in minutes (production defaults are in the DAG docs).
AIRFLOW_ENV = {
    "TAXIFLOW_DROP_POKE_INTERVAL": "3",
    "TAXIFLOW_DROP_TIMEOUT": "900",
    "TAXIFLOW_METRICS_POKE_INTERVAL": "3",
    "TAXIFLOW_REPORT_WAIT_POKE_INTERVAL": "3",
    # the request-file door's watcher (in the triggerer, listing the bucket's requests/) must do the
    # work alone: the safety-net poll, a Celery task each time, comes once an hour
    "TAXIFLOW_REQUESTS_POLL_SECONDS": "3600",
    # a 2-core host shared with other work: one api-server worker process instead of four
    "AIRFLOW__API__WORKERS": "1",
    # Green only: every month the tier ingests is a real TLC file (tests/data/tlc/green) or, for
    # the drills, one generated here; no yellow month of the same dates is shipped.
    "TAXIFLOW_INGEST_SOURCES": "green",
}


@pytest.fixture(scope="session")
def figures():
    """Measured figures, printed at the end of the tier and kept in benchmarks/results/compose-tier.json
    (figures for the README, never assertions)."""
    measured: dict[str, float] = {}
    yield measured
    print("\ncompose tier figures: " + ", ".join(f"{k}={v:.0f}" for k, v in measured.items()))
    results = PROJECT_DIR / "benchmarks" / "results"
    results.mkdir(parents=True, exist_ok=True)
    (results / "compose-tier.json").write_text(json.dumps(
        {"measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "cpus": os.cpu_count(),
         "load_average": os.getloadavg(), **measured}, indent=2) + "\n")


@pytest.fixture(scope="session")
def engine(tmp_path_factory):
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    engine = ensure_engine(tmp_path_factory.mktemp("dockerd"))
    yield engine
    engine.stop_if_started()


def _images(figures) -> dict[str, str]:
    start = time.monotonic()
    result = subprocess.run(["bash", str(PROJECT_DIR / "scripts" / "standin-images" / "ensure.sh")],
                            capture_output=True, text=True, timeout=1800)
    if result.returncode != 0:
        raise RuntimeError(f"scripts/standin-images/ensure.sh failed:\n{result.stderr[-4000:]}")
    figures["images"] = time.monotonic() - start
    return dict(line.split("=", 1) for line in result.stdout.split())


OPT_IN_MONTH = "2023-09"


@pytest.fixture(scope="session")
def tlc(engine, tmp_path_factory):
    """tests/support/tlc_server.py on Docker's host-side bridge address: reachable from the containers as
    host.docker.internal, from nowhere else; serves OPT_IN_MONTH for both sources and the zone table."""
    from taxiflow.data.tlc import trip_file_name as tlc_file_name
    from taxiflow.demo.trips import generate_month

    gateway = subprocess.run(["docker", "network", "inspect", "bridge", "-f", "{{(index .IPAM.Config 0).Gateway}}"],
                             check=True, capture_output=True, text=True).stdout.strip()
    served = tmp_path_factory.mktemp("tlc-served")
    files = {"/misc/taxi_zone_lookup.csv": PROJECT_DIR / "data/reference/taxi_zone_lookup.csv"}
    for source in ("yellow", "green"):
        generate_month(source, OPT_IN_MONTH, trips=1500, seed=7, paths=DataPaths(PROJECT_DIR / "data"), out_dir=served)
        files[f"/trip-data/{tlc_file_name(source, OPT_IN_MONTH)}"] = served / source / OPT_IN_MONTH / tlc_file_name(
            source, OPT_IN_MONTH)
    with TlcServer(files, host=gateway) as server:
        yield server


@pytest.fixture(scope="session")
def deployment(engine, tlc, tmp_path_factory, figures):
    """The deployment, healthy; removed with `down -v` (and its project folder) afterwards."""
    images = _images(figures)
    project_dir = tmp_path_factory.mktemp("compose-project")
    env = {
        "AIRFLOW_API_HOST": "127.0.0.1", "AIRFLOW_API_PORT": str(free_port()),
        "AIRFLOW_FLOWER_HOST": "127.0.0.1", "AIRFLOW_FLOWER_PORT": str(free_port()),
        "AIRFLOW_FLOWER_BASIC_AUTH": ":".join(FLOWER_AUTH),
        "TAXIFLOW_S3_HOST": "127.0.0.1", "TAXIFLOW_S3_PORT": str(free_port()),
        # the test's TLC server (host side of Docker's bridge), never TLC's public host
        "AIRFLOW_CONN_NYC_TLC": f"http://host.docker.internal:{tlc.base_url.rsplit(':', 1)[1]}",
        "TAXIFLOW_DUCKDB_MEMORY_LIMIT": "1GB", "TAXIFLOW_DUCKDB_THREADS": "2",
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": "2",
        **images,
    }
    prepare_project(project_dir, env, AIRFLOW_ENV, EXTRA_CA_DIR)
    deployment = Deployment(compose_binary(), project_dir, f"tfcompose{uuid.uuid4().hex[:8]}",
                            read_env(project_dir / ".env"))
    try:
        start = time.monotonic()
        deployment.compose("build")
        figures["build"] = time.monotonic() - start
        start = time.monotonic()
        deployment.compose("up", "-d", "--build", "--wait", "--scale", f"airflow-worker={WORKERS}", timeout=2400)
        figures["up_to_healthy"] = time.monotonic() - start
        yield deployment
    finally:
        deployment.compose("down", "-v", "--remove-orphans", "--timeout", "20", check=False, timeout=300)
        shutil.rmtree(project_dir, ignore_errors=True)


@pytest.fixture(scope="package")
def bucket(deployment) -> DataPaths:
    """The deployment's data root in its bucket, reached from this host through the published S3 port.

    An Airflow connection of its own (``AIRFLOW_CONN_TAXIFLOW_COMPOSE_TIER``: the endpoint as seen
    from the host, the keys of ``.env``), so nothing else in this process is pointed at the bucket.
    """
    try:
        yield deployment.bucket_paths(BUCKET_CONN_ID)
    finally:
        for variable in [name for name in os.environ if name.startswith(f"AIRFLOW_CONN_{BUCKET_CONN_ID.upper()}")]:
            os.environ.pop(variable, None)
