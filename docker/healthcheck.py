"""Container health checks for docker-compose.yaml that do not import Airflow.

``airflow jobs check`` (upstream's check for the dag-processor and triggerer) and ``celery --app
airflow... inspect ping`` (the worker's) each start Airflow: several seconds of CPU per check, so
upstream can only afford them every 30 s, and ``docker compose up --wait`` then waits in 30 s
steps. These answer the same questions in a fraction of a second, so they run every 10 s:

    python /opt/taxiflow/healthcheck.py job TriggererJob        # this container's job heartbeat
    python /opt/taxiflow/healthcheck.py job DagProcessorJob
    python /opt/taxiflow/healthcheck.py worker                  # this container's Celery worker

``job``: the metadata database holds a running job of that type for this container's hostname
whose last heartbeat is at most ``--max-age`` seconds old (what ``airflow jobs check --hostname``
asks). ``worker``: the Celery worker named ``celery@<hostname>`` answers a ping through the broker
(what ``celery inspect ping -d`` asks, with Celery's own app instead of Airflow's).
Exit status 0 = healthy, 1 = not (with the reason on stderr).
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys


def airflow_hostname() -> str:
    """The hostname Airflow records for this host's jobs: ``airflow.utils.net.getfqdn`` (the default
    ``[core] hostname_callable``), which is the canonical name ``getaddrinfo`` gives for
    ``gethostname()``, not ``socket.getfqdn()`` (that can answer ``localhost``)."""
    name = socket.gethostname()
    try:
        addresses = socket.getaddrinfo(name, None, 0, socket.SOCK_DGRAM, 0, socket.AI_CANONNAME)
    except OSError:
        return name
    return next((address[3] for address in addresses if address[3]), name)


def check_job(job_type: str, max_age: float) -> str | None:
    """None when a running ``job_type`` job of this host heartbeated within ``max_age`` seconds."""
    import psycopg2  # the image's PostgreSQL driver; imports in ~50 ms

    url = os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    scheme, rest = url.split("://", 1)
    if not scheme.startswith("postgresql"):
        return f"only a PostgreSQL metadata database is supported here, not {scheme}"
    with psycopg2.connect(f"postgresql://{rest}", connect_timeout=5) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT count(*) FROM job WHERE job_type = %s AND hostname = %s AND state = 'running' "
            "AND latest_heartbeat > now() - make_interval(secs => %s)",
            (job_type, airflow_hostname(), max_age),
        )
        (alive,) = cur.fetchone()
    return None if alive else f"no running {job_type} on {airflow_hostname()} heartbeated in the last {max_age:.0f} s"


def check_worker(timeout: float) -> str | None:
    """None when this container's Celery worker answers a ping through the broker."""
    name = f"celery@{socket.gethostname()}"
    result = subprocess.run(
        [sys.executable, "-m", "celery", "--broker", os.environ["AIRFLOW__CELERY__BROKER_URL"], "inspect", "ping",
         "--destination", name, "--timeout", str(timeout)],
        capture_output=True, text=True, check=False,
    )
    if result.returncode == 0:
        return None
    return f"{name} did not answer a ping: {result.stdout[-300:]}{result.stderr[-300:]}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="check", required=True)
    job = sub.add_parser("job", help="a job of this host heartbeats")
    job.add_argument("job_type", choices=["TriggererJob", "DagProcessorJob", "SchedulerJob"])
    job.add_argument("--max-age", type=float, default=60.0, help="seconds since the last heartbeat (default 60)")
    worker = sub.add_parser("worker", help="this host's Celery worker answers a ping")
    worker.add_argument("--timeout", type=float, default=5.0)
    args = parser.parse_args(argv)
    try:
        problem = check_job(args.job_type, args.max_age) if args.check == "job" else check_worker(args.timeout)
    except Exception as err:  # a health check reports, it never raises
        problem = f"{type(err).__name__}: {err}"
    if problem:
        print(problem, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
