"""Late-drop alerts: when they are due, what they say, and where they go (a webhook on loopback)."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime, timedelta

import pytest

from taxiflow.components import alerts
from taxiflow.components.alerts import (
    announce_late_drops,
    drop_alert_after,
    late_drop_alert,
    late_drop_deadline,
)
from taxiflow.config import Partition
from tests.support.webhook_receiver import WebhookReceiver

DEADLINE = datetime(2024, 2, 1, 2, 0, tzinfo=UTC)


def context(state: str = "running", logical_date: str | None = "2024-01-01T00:00:00Z") -> dict:
    """What Airflow 3.3 hands a Deadline Alert callback: the run (as the REST API shows it) and the deadline."""
    return {
        "dag_run": {"dag_id": "ingest_taxi_trips", "dag_run_id": "scheduled__2024-01-01", "state": state,
                    "logical_date": logical_date, "queued_at": "2024-02-01T00:00:00Z"},
        "deadline": {"id": "0192", "deadline_time": DEADLINE},
    }


def landing(paths, source: str, month: str):
    """Where a drop of ``source``'s ``month`` is expected."""
    return paths.landing_dir(Partition(source, month))


def land(paths, source: str, month: str, success: bool = True) -> None:
    folder = landing(paths, source, month)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{source}_tripdata_{month}.parquet").write_bytes(b"PAR1")
    if success:
        (folder / "_SUCCESS").touch()


@pytest.fixture
def no_alert_env(monkeypatch):
    for name in (alerts.ALERT_AFTER_ENV, "TAXIFLOW_DROP_TIMEOUT", alerts.ALERT_CONN_ENV):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


# --- When ------------------------------------------------------------------------------------------


def test_default_alert_comes_two_hours_in_well_before_the_six_hour_timeout(no_alert_env):
    assert drop_alert_after(6 * 3600) == 2 * 3600


def test_a_short_drop_timeout_halves_the_default(no_alert_env):
    assert drop_alert_after(60) == 30


def test_the_alert_time_is_set_by_environment_and_zero_turns_it_off(no_alert_env):
    no_alert_env.setenv(alerts.ALERT_AFTER_ENV, "900")
    assert drop_alert_after(6 * 3600) == 900
    no_alert_env.setenv(alerts.ALERT_AFTER_ENV, "0")
    assert drop_alert_after(6 * 3600) is None
    assert late_drop_deadline(["yellow"]) is None


@pytest.mark.parametrize("value", ["21600", "30000", "-5"])
def test_an_alert_at_or_after_the_timeout_is_refused_naming_both_settings(no_alert_env, value):
    no_alert_env.setenv(alerts.ALERT_AFTER_ENV, value)
    expected = r"TAXIFLOW_DROP_ALERT_AFTER must be .* below TAXIFLOW_DROP_TIMEOUT \(21600 s\)"
    with pytest.raises(ValueError, match=expected):
        drop_alert_after(6 * 3600)


def test_a_non_number_is_refused_naming_the_setting(no_alert_env):
    no_alert_env.setenv(alerts.ALERT_AFTER_ENV, "2h")
    with pytest.raises(ValueError, match="TAXIFLOW_DROP_ALERT_AFTER must be a number of seconds, got '2h'"):
        drop_alert_after(6 * 3600)


def test_the_deadline_counts_from_queueing_and_calls_the_package_in_the_triggerer(no_alert_env):
    from airflow.sdk import AsyncCallback, DeadlineReference

    no_alert_env.setenv("TAXIFLOW_DROP_TIMEOUT", "7200")
    no_alert_env.setenv(alerts.ALERT_CONN_ENV, "ops_webhook")
    deadline = late_drop_deadline(["yellow", "green"])
    assert deadline is not None
    assert deadline.reference == DeadlineReference.DAGRUN_QUEUED_AT  # not the logical date: backfills
    assert deadline.interval == timedelta(hours=1)
    assert isinstance(deadline.callback, AsyncCallback)
    assert deadline.callback.path == "taxiflow.components.alerts.announce_late_drops"
    assert deadline.callback.kwargs == {"sources": ["yellow", "green"], "conn_id": "ops_webhook"}


def test_the_ingest_dag_carries_the_deadline(no_alert_env):
    from airflow.dag_processing.dagbag import DagBag

    from taxiflow.config import INGEST_DAG_ID

    dag = DagBag(dag_folder=str(alerts_dag_file())).dags.get(INGEST_DAG_ID)
    assert dag is not None
    [deadline] = dag.deadline
    assert deadline.interval == timedelta(hours=2)
    assert deadline.callback.kwargs["conn_id"] == "taxiflow_alerts"


def alerts_dag_file():
    from pathlib import Path

    return Path(__file__).resolve().parents[3] / "dags" / "ingest_taxi_trips.py"


# --- What ------------------------------------------------------------------------------------------


def test_the_alert_names_run_month_missing_sources_and_where_they_are_expected(data_root):
    land(data_root, "yellow", "2024-01")  # arrived
    land(data_root, "fhv", "2024-01", success=False)  # files, but no _SUCCESS yet
    alert, why = late_drop_alert(context(), ["yellow", "green", "fhv"])
    assert alert is not None
    assert [d.source for d in alert.missing] == ["green", "fhv"]
    text = alert.text()
    assert why == alert.subject == (
        "taxiflow: 2024-01 drop late for green, fhv (ingest_taxi_trips run scheduled__2024-01-01)"
    )
    assert "queued at 2024-02-01T00:00:00Z" in text and "deadline 2024-02-01T02:00:00+00:00" in text
    green_folder = str(landing(data_root, "green", "2024-01"))
    assert f"- green: expected in {green_folder} (data files, then _SUCCESS); " \
           "waiting for data files and _SUCCESS (found nothing)" in text
    assert "- fhv: " in text and "waiting for _SUCCESS (found 1 data file(s))" in text
    assert "yellow" not in text.split("\n", 1)[1]
    body = alert.payload()
    assert body["text"] == text
    assert (body["dag_id"], body["run_id"], body["month"]) == ("ingest_taxi_trips", "scheduled__2024-01-01", "2024-01")
    assert body["missing"][0] == {"source": "green", "expected_in": green_folder,
                                  "detail": "waiting for data files and _SUCCESS (found nothing)"}
    json.dumps(body)  # a webhook body must be plain JSON


def test_nothing_to_announce_when_every_drop_has_arrived(data_root):
    land(data_root, "yellow", "2024-01")
    land(data_root, "green", "2024-01")
    alert, why = late_drop_alert(context(), ["yellow", "green"])
    assert alert is None and why.endswith("every 2024-01 drop has arrived; nothing to announce")


@pytest.mark.parametrize("state", ["success", "failed"])
def test_a_finished_run_is_not_announced(data_root, state):
    alert, why = late_drop_alert(context(state=state), ["yellow", "green"])
    assert alert is None and f"already {state}" in why


def test_a_source_tlc_did_not_publish_yet_is_not_expected(data_root):
    land(data_root, "yellow", "2012-05")
    alert, _ = late_drop_alert(context(logical_date="2012-05-01T00:00:00+00:00"), ["yellow", "green"])
    assert alert is None  # green starts 2013-08


def test_a_linked_drop_is_not_reported_missing_its_branch_fails_on_its_own(data_root, tmp_path):
    outside = tmp_path / "elsewhere.parquet"
    outside.write_bytes(b"PAR1")
    folder = landing(data_root, "green", "2024-01")
    folder.mkdir(parents=True)
    (folder / "green_tripdata_2024-01.parquet").symlink_to(outside)
    alert, _ = late_drop_alert(context(), ["yellow", "green"])
    assert alert is not None and [d.source for d in alert.missing] == ["yellow"]


# --- Where -----------------------------------------------------------------------------------------


def test_the_alert_is_posted_to_the_webhook_of_the_connection(data_root, monkeypatch):
    with WebhookReceiver() as hook:
        monkeypatch.setenv("AIRFLOW_CONN_TAXIFLOW_ALERTS", json.dumps({"conn_type": "http", "host": hook.url}))
        result = asyncio.run(announce_late_drops(["yellow"], "taxiflow_alerts", context=context()))
        [body] = hook.bodies
    assert result.startswith("sent via 'taxiflow_alerts' (HTTP 204): taxiflow: 2024-01 drop late for yellow")
    assert body["month"] == "2024-01" and body["missing"][0]["source"] == "yellow"
    assert body["text"].startswith(
        "taxiflow: 2024-01 drop late for yellow (ingest_taxi_trips run scheduled__2024-01-01)")


def test_a_connection_split_into_host_port_and_path_reaches_the_same_webhook(data_root, monkeypatch):
    with WebhookReceiver(path="/") as hook:
        port = hook.server.server_address[1]
        monkeypatch.setenv("AIRFLOW_CONN_OPS", json.dumps(
            {"conn_type": "http", "host": "127.0.0.1", "port": port, "login": "ops", "password": "s3cret",
             "extra": {"headers": {"X-Team": "data"}}}))
        asyncio.run(announce_late_drops(["green"], "ops", context=context()))
        [body] = hook.bodies
        [headers] = hook.headers
    assert body["missing"][0]["source"] == "green"
    assert headers["X-Team"] == "data" and headers["Authorization"] == "Basic b3BzOnMzY3JldA=="


def test_without_a_connection_the_alert_is_logged_not_crashed(data_root, monkeypatch, caplog):
    monkeypatch.delenv("AIRFLOW_CONN_TAXIFLOW_ALERTS", raising=False)
    with caplog.at_level(logging.WARNING, logger="taxiflow.components.alerts"):
        result = asyncio.run(announce_late_drops(["yellow"], "taxiflow_alerts", context=context()))
    assert result.startswith("logged, not sent (no connection 'taxiflow_alerts')")
    [record] = caplog.records
    assert "no Airflow connection 'taxiflow_alerts'" in record.getMessage()
    assert f"- yellow: expected in {landing(data_root, 'yellow', '2024-01')}" in record.getMessage()


def test_a_webhook_that_refuses_the_alert_fails_the_callback_and_logs_the_message(data_root, monkeypatch, caplog):
    with WebhookReceiver(path="/elsewhere") as hook:  # answers 404 on the connection's path
        monkeypatch.setenv("AIRFLOW_CONN_TAXIFLOW_ALERTS",
                           json.dumps({"conn_type": "http", "host": hook.url.replace("/elsewhere", "/nope")}))
        with caplog.at_level(logging.ERROR, logger="taxiflow.components.alerts"), pytest.raises(Exception, match="404"):
            asyncio.run(announce_late_drops(["yellow"], "taxiflow_alerts", context=context()))
    assert "drop late for yellow" in caplog.text
    assert "sending through connection 'taxiflow_alerts' failed" in caplog.text


def test_an_smtp_connection_e_mails_the_alert_to_the_address_in_its_extra(data_root, monkeypatch):
    import email

    from tests.support.smtp_receiver import SmtpReceiver

    with SmtpReceiver() as smtp:
        monkeypatch.setenv("AIRFLOW_CONN_TAXIFLOW_ALERTS", json.dumps({
            "conn_type": "smtp", "host": "127.0.0.1", "port": smtp.port,
            "extra": {"to": "oncall@example.com", "from_email": "taxiflow@example.com",
                      "disable_tls": True, "disable_ssl": True, "retry_limit": 0}}))
        result = asyncio.run(announce_late_drops(["green"], "taxiflow_alerts", context=context()))
        [(mail_from, rcpt_to, data)] = smtp.messages
    assert result == ("e-mailed via 'taxiflow_alerts' to oncall@example.com: "
                      "taxiflow: 2024-01 drop late for green (ingest_taxi_trips run scheduled__2024-01-01)")
    assert (mail_from, rcpt_to) == ("taxiflow@example.com", ["oncall@example.com"])
    message = email.message_from_string(data)
    assert message["Subject"] == "taxiflow: 2024-01 drop late for green (ingest_taxi_trips run scheduled__2024-01-01)"
    [html] = [part.get_payload(decode=True).decode() for part in message.walk()
              if part.get_content_type() == "text/html"]
    assert f"- green: expected in {landing(data_root, 'green', '2024-01')}" in html
