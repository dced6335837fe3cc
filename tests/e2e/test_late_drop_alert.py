"""Late drops announced, on live Airflow: the Deadline Alert reaches a webhook on loopback.

One deployment for this module, with the alert after 60 s (``TAXIFLOW_DROP_ALERT_AFTER``) and
drops allowed 30 minutes, and the connection ``taxiflow_alerts`` (from the environment) pointing
at a webhook receiver in this process. February's drops (yellow, green) are there before its run
starts; March's yellow drop is there but green's never comes. What is checked is what the person
on call gets: one message, about March, naming green and the folder it is expected in, while its
branch is still waiting; nothing about February. (The run the scheduler starts for last month on
its own, catchup being off, also waits for drops nobody makes here: it is announced as well.)
"""

from __future__ import annotations

import json
import time

import pytest

from taxiflow.config import INGEST_DAG_ID, DataPaths, Partition
from tests.support.live import FAST_WAITS, live_deployment
from tests.support.webhook_receiver import WebhookReceiver

pytestmark = pytest.mark.e2e

ALERT_AFTER = 60
ON_TIME, LATE = "2024-02", "2024-03"


@pytest.fixture(scope="module")
def alerted():
    """Run February (drops in time) to the end, then March (green never drops) until its alert arrives."""
    from taxiflow.demo.trips import generate_month

    with WebhookReceiver() as receiver, live_deployment("e2e-alerts", extra_env={
        **FAST_WAITS,
        # pokes every 10 s, as in the drills: a 3 s reschedule can race the executor under load
        "TAXIFLOW_DROP_POKE_INTERVAL": "10",
        "TAXIFLOW_DROP_TIMEOUT": "1800",
        "TAXIFLOW_DROP_ALERT_AFTER": str(ALERT_AFTER),
        "TAXIFLOW_INGEST_SOURCES": "yellow,green",
        "AIRFLOW_CONN_TAXIFLOW_ALERTS": json.dumps({"conn_type": "http", "host": receiver.url}),
    }) as stack:
        paths = DataPaths(stack.data_dir)
        for source in ("yellow", "green"):
            generate_month(source, ON_TIME, trips=400, seed=11, paths=paths)
        generate_month("yellow", LATE, trips=400, seed=12, paths=paths)

        stack.airflow("dags", "trigger", INGEST_DAG_ID, "-l", f"{ON_TIME}-01T00:00:00+00:00", "-r", "on_time")
        on_time = stack.wait_for_run(INGEST_DAG_ID, "on_time", timeout=900)
        stack.airflow("dags", "trigger", INGEST_DAG_ID, "-l", f"{LATE}-01T00:00:00+00:00", "-r", "late")
        alert = receiver.wait_for(lambda body: body.get("run_id") == "late", timeout=ALERT_AFTER + 900)
        late_states = stack.task_states(INGEST_DAG_ID, "late")
        triggerer_log = wait_for_log_line(stack, f"drop late for green ({INGEST_DAG_ID} run late)")
        yield {"stack": stack, "receiver": receiver, "alert": alert, "on_time": on_time,
               "late_states": late_states, "paths": paths, "triggerer_log": triggerer_log}


def wait_for_log_line(stack, text: str, timeout: float = 120) -> str:
    """The triggerer's log once it holds ``text`` (the callback logs after the webhook answered)."""
    end = time.monotonic() + timeout
    while True:
        log = stack.tail_logs("triggerer", lines=100_000)
        if text in log or time.monotonic() > end:
            return log
        time.sleep(1)


def test_a_missing_drop_is_announced_naming_run_month_source_and_folder(alerted):
    alert = alerted["alert"]
    expected_folder = str(alerted["paths"].landing_dir(Partition("green", LATE)).resolve())
    fields = (alert["event"], alert["dag_id"], alert["run_id"], alert["month"])
    assert fields == ("late_drop", INGEST_DAG_ID, "late", LATE)
    assert alert["missing"] == [{"source": "green", "expected_in": expected_folder,
                                 "detail": "waiting for data files and _SUCCESS (found nothing)"}]
    text = alert["text"]
    assert text.startswith(f"taxiflow: {LATE} drop late for green ({INGEST_DAG_ID} run late)")
    assert f"- green: expected in {expected_folder}" in text
    assert "- yellow" not in text  # yellow's drop was there


def test_the_alert_comes_while_the_branch_still_waits(alerted):
    states = alerted["late_states"]
    assert states["wait_for_green"] in {"up_for_reschedule", "running", "queued", "scheduled"}, states
    assert "failed" not in states.values(), states


def test_a_run_whose_drops_arrived_in_time_sends_nothing(alerted):
    assert alerted["on_time"]["state"] == "success"
    # February's deadline passed before March's, so anything about February would have come first.
    # (The scheduler's own latest run, for last month, waits for drops nobody makes: it is announced too.)
    announced = {body["run_id"]: body["month"] for body in alerted["receiver"].bodies}
    assert "on_time" not in announced and ON_TIME not in announced.values(), announced
    assert announced["late"] == LATE


def test_the_triggerer_log_says_what_was_sent(alerted):
    log = alerted["triggerer_log"]
    assert f"Late-drop alert sent through 'taxiflow_alerts' (HTTP 204): taxiflow: {LATE} drop late for green" in log
