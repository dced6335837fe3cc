"""``make run`` / ``make stop`` / ``make status``: the local deployment's command line.

    python -m taxiflow.local.cli up --home .airflow --port 8080 [--demo]   # start, or start what is not running
    python -m taxiflow.local.cli up --home .airflow --storage s3            # data in a local SeaweedFS
    python -m taxiflow.local.cli down --home .airflow                       # stop every process of it

supervisord restarts what crashes: ``up`` has work only after ``down`` or when supervisord gave up.
``make status`` is ``supervisorctl status`` (docs/local-stack.md).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

from taxiflow.config import DATA_DIR_ENV, INGEST_DAG_ID, REPORT_DAG_ID, SOURCE_NAMES
from taxiflow.data.storage import StorageError
from taxiflow.data.tlc import TLC_PUBLIC_BASE_URL
from taxiflow.local.stack import AirflowStack

DEMO_MONTHS = ("2023-12", "2024-01")


def bootstrap_demo(stack: AirflowStack) -> None:
    """Drop the demo months (unless already there) and backfill their ingest."""
    from taxiflow.config import DataPaths
    from taxiflow.data import storage
    from taxiflow.demo import trips as demo

    paths = DataPaths(storage.root()) if storage.is_remote(storage.root()) else DataPaths(stack.data_dir)
    missing = [m for m in DEMO_MONTHS if not any((paths.landing / s / m / "_SUCCESS").exists() for s in SOURCE_NAMES)]
    if missing:
        demo.generate_demo(months=tuple(missing), paths=paths)
        print(f"taxiflow: dropped demo data for {', '.join(missing)} in {paths.landing}", flush=True)
    backfills = stack.api_get(f"/api/v2/dags/{INGEST_DAG_ID}/dagRuns?run_type=backfill&limit=1", stack.token())
    if backfills and backfills.get("total_entries"):
        print("taxiflow: demo months were backfilled before; skipping", flush=True)
        return
    stack.airflow("backfill", "create", "--dag-id", INGEST_DAG_ID,
                  "--from-date", f"{DEMO_MONTHS[0]}-01", "--to-date", f"{DEMO_MONTHS[-1]}-01")
    print(f"taxiflow: backfilling {INGEST_DAG_ID} for {', '.join(DEMO_MONTHS)} (a few minutes; watch the UI)",
          flush=True)


def check_data_root(failed: Callable[[], str | None] | None = None, timeout: float = 120) -> None:
    """With the data in S3, check it answers a write (else a ``StorageError`` naming URL and connection).
    With ``failed`` (the local SeaweedFS just started: it makes its bucket a moment after its S3 port
    opens), try again until it answers or ``failed()`` says why it never will."""
    from taxiflow.data import check_storage

    deadline = time.monotonic() + timeout
    while "://" in os.environ.get(DATA_DIR_ENV, ""):  # checked before Airflow is imported here
        try:
            print(f"taxiflow: data in {check_storage.check()}", flush=True)
            return
        except StorageError:
            if failed is None or time.monotonic() > deadline:
                raise
            if why := failed():
                raise RuntimeError(f"SeaweedFS did not start: {why}") from None
            time.sleep(0.5)


def up(stack: AirflowStack, demo: bool) -> int:
    """Start the deployment, or start the components that are not running (no ``make stop`` needed)."""
    status = stack.status()
    dead = [name for name in stack.all_components() if not status.get(name, {}).get("running")]
    if status and not dead:
        print(f"taxiflow: already running at {stack.base_url} (`make status`, `make stop`)")
        return 0
    if status:
        print(f"taxiflow: starting what is not running: {', '.join(dead)}", flush=True)
    else:
        print(f"taxiflow: starting Airflow in {stack.home} (logs: {stack.logs_dir}) ...", flush=True)
    try:
        stack.prepare_home()
        if stack.object_store:
            failed = stack.start_object_store()
            os.environ.update(stack.object_store_env())  # this process (the check, the demo drop) uses it too
            check_data_root(failed)
        if not status:
            stack.migrate()
        stack.start()
        stack.wait_until_healthy()
        if demo:
            bootstrap_demo(stack)
    except Exception:
        if not status:
            stack.stop()
        raise
    (user, password), data_root = next(iter(stack.users.items())), stack.env()[DATA_DIR_ENV]
    example = '{"borough": "Manhattan", "start_date": "2023-12-18", "end_date": "2024-01-08"}'
    print(f"""
taxiflow is running.
  UI:      {stack.base_url}   (login: {user} / {password})
  Data:    {data_root}
  Trigger: airflow dags trigger {REPORT_DAG_ID} --conf '{example}'
           (run it as: make airflow ARGS="dags trigger ..."; outputs land in {data_root}/outputs)
  Status:  make status        Stop: make stop        Logs: {stack.logs_dir}
""", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run ``up`` or ``down``."""
    parser = argparse.ArgumentParser(prog="python -m taxiflow.local.cli", description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["up", "down"])
    parser.add_argument("--home", type=Path, required=True, help="AIRFLOW_HOME for this deployment")
    parser.add_argument("--project-dir", type=Path, default=Path.cwd(), help="folder holding dags/ and plugins/")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--demo", action="store_true", help="drop the demo months and backfill them")
    parser.add_argument("--storage", choices=["local", "s3"], default="local",
                        help="local: the data folder; s3: a local SeaweedFS S3 server run with the stack")
    args = parser.parse_args(argv)

    project, configured = args.project_dir.resolve(), os.environ.get(DATA_DIR_ENV, "")
    own_bucket = configured.startswith("s3://")  # the user's own S3: passed to every process as it is
    # `make run` downloads from TLC's public host unless the user points nyc_tlc elsewhere.
    env = {"AIRFLOW_CONN_NYC_TLC": os.environ.get("AIRFLOW_CONN_NYC_TLC", TLC_PUBLIC_BASE_URL),
           **({DATA_DIR_ENV: configured} if own_bucket else {})}
    stack = AirflowStack(home=args.home.resolve(), project_dir=project, port=args.port, extra_env=env,
                         data_dir=(project / "data" if own_bucket else Path(configured or project / "data")).resolve(),
                         object_store=args.storage == "s3" and not own_bucket)
    if args.action == "down":
        stack.stop()
        print(f"taxiflow: stopped every process of the deployment in {stack.home}")
        return 0
    try:
        check_data_root()  # the user's own bucket, before anything starts
        return up(stack, args.demo)
    except (StorageError, ValueError) as err:  # ValueError: TAXIFLOW_DATA_DIR is no folder nor s3:// URL
        print(f"taxiflow: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
