"""Ask taxiflow for a borough report with Airflow's official Python client (apache-airflow-client 3.x).

Run it with the clients' venv that `make dev` creates (the 3.x client cannot share .venv with the
Airflow 2 client the /api/v1 tests use):

    .venv/clients/bin/python scripts/report_with_python_client.py \\
        --borough Manhattan --start-date 2023-12-18 --end-date 2024-01-08

It does what the client's documentation shows: a JWT from ``POST /auth/token``, then
``DagRunApi.trigger_dag_run`` with the request as conf, ``get_dag_run`` until the run ends, and the
run's task instances. When the run succeeded it also reads ``render_report``'s return value (the
report's folder, CSV, PNG and trip total) from XCom. It prints one JSON object; the exit status is 0
only when the run succeeded. The password comes from ``--password`` or ``AIRFLOW_PASSWORD``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.request

import airflow_client.client as airflow_client
from airflow_client.client.api.dag_run_api import DagRunApi
from airflow_client.client.api.task_instance_api import TaskInstanceApi
from airflow_client.client.api.x_com_api import XComApi
from airflow_client.client.models.trigger_dag_run_post_body import TriggerDAGRunPostBody

REPORT_DAG_ID = "borough_report"
FINISHED = ("success", "failed")


def access_token(host: str, username: str, password: str) -> str:
    """A JWT for the API, from the api-server's ``POST /auth/token`` (answers 201)."""
    request = urllib.request.Request(
        f"{host}/auth/token",
        data=json.dumps({"username": username, "password": password}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.load(response)["access_token"]
    except urllib.error.HTTPError as err:
        raise SystemExit(f"{host}/auth/token refused user {username!r}: {err.code} {err.read().decode()}") from err


def request_report(args: argparse.Namespace) -> dict:
    """Trigger one borough report, wait for it to end and say how it went."""
    conf = {"borough": args.borough, "start_date": args.start_date, "end_date": args.end_date}
    if args.sources:
        conf["sources"] = args.sources.split(",")
    if args.name:
        conf["name"] = args.name
    password = args.password or os.environ.get("AIRFLOW_PASSWORD") or "admin"
    configuration = airflow_client.Configuration(host=args.host)
    configuration.access_token = access_token(args.host, args.username, password)

    with airflow_client.ApiClient(configuration) as api_client:
        runs = DagRunApi(api_client)
        run = runs.trigger_dag_run(REPORT_DAG_ID, TriggerDAGRunPostBody(conf=conf, dag_run_id=args.run_id))
        run_id = run.dag_run_id
        deadline = time.monotonic() + args.timeout
        while run.state not in FINISHED and time.monotonic() < deadline:
            time.sleep(args.poll_seconds)
            run = runs.get_dag_run(REPORT_DAG_ID, run_id)

        tasks = TaskInstanceApi(api_client).get_task_instances(REPORT_DAG_ID, run_id)
        result = {
            "dag_run_id": run_id,
            "state": run.state.value,
            "conf": run.conf,
            "tasks": {ti.task_id: ti.state.value if ti.state else None for ti in tasks.task_instances},
        }
        if run.state == "success":
            xcom = XComApi(api_client).get_xcom_entry(REPORT_DAG_ID, "render_report", run_id, "return_value")
            result["report"] = xcom.actual_instance.value  # the native (JSON) form of the entry
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="http://127.0.0.1:8080", help="the api-server (default: make run's)")
    parser.add_argument("--username", default="admin")
    parser.add_argument("--password", help="default: $AIRFLOW_PASSWORD, else admin (make run's login)")
    parser.add_argument("--borough", required=True)
    parser.add_argument("--start-date", required=True, help="YYYY-MM-DD, first day counted")
    parser.add_argument("--end-date", required=True, help="YYYY-MM-DD, first day not counted")
    parser.add_argument("--sources", help="comma-separated, e.g. yellow,green (the DAG's default if absent)")
    parser.add_argument("--name", help="the output folder's name (the DAG's default if absent)")
    parser.add_argument("--run-id", help="the run's id (Airflow makes one if absent)")
    parser.add_argument("--timeout", type=float, default=600, help="seconds to wait for the run to end")
    parser.add_argument("--poll-seconds", type=float, default=2)
    args = parser.parse_args(argv)
    try:
        result = request_report(args)
    except airflow_client.ApiException as err:  # e.g. 400 naming the bad param, 401, 403, 409
        print(json.dumps({"status": err.status, "error": err.body}), flush=True)
        return 2
    print(json.dumps(result, default=str), flush=True)
    return 0 if result["state"] == "success" else 1


if __name__ == "__main__":
    sys.exit(main())
