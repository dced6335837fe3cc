"""Late drops announced: a Deadline Alert on ``ingest_taxi_trips`` and the message it sends.

A month's run waits for each source's drop (``wait_for_<source>``) and fails that source's branch
after ``TAXIFLOW_DROP_TIMEOUT`` (6 h). Long before that, ``TAXIFLOW_DROP_ALERT_AFTER`` seconds
after the run was queued (default 2 h, or half the drop timeout if that is shorter), Airflow's
Deadline Alert (experimental in Airflow 3.3) fires :func:`announce_late_drops` in the triggerer.
It looks at the landing folder then, and if the run is still going and some sources' drops are
still missing, it sends one message naming the DAG, run, month, the missing sources and the
folders they are expected in, through the Airflow connection ``TAXIFLOW_ALERT_CONN_ID``
(default ``taxiflow_alerts``):

* an HTTP connection (``http``/``https``) whose host is a webhook URL: the message is POSTed as
  JSON, with the text under ``text`` (what Slack's and most chat tools' incoming webhooks read)
  and the same facts as fields for scripts;
* an SMTP connection (``smtp``/``email``) with ``"to"`` in its extra: the message is e-mailed by the
  SMTP provider's notifier.

No connection: the message is written to the triggerer log as a warning, and nothing fails. A run
that finishes before its deadline sends nothing: Airflow deletes a successful run's pending
deadlines; a run that failed before it is not announced either (its failure is in the UI).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from taxiflow.config import INGEST_DAG_ID, drop_timeout, env_seconds, published_from

if TYPE_CHECKING:
    # airflow.sdk exports these at run time, but Airflow 3.3.2's stub (airflow/sdk/__init__.pyi) omits them
    from airflow.sdk.definitions.deadline import DeadlineAlert

    from taxiflow.config import DataPaths

log = logging.getLogger(__name__)

ALERT_AFTER_ENV = "TAXIFLOW_DROP_ALERT_AFTER"
ALERT_CONN_ENV = "TAXIFLOW_ALERT_CONN_ID"
DEFAULT_ALERT_CONN_ID = "taxiflow_alerts"
DEFAULT_ALERT_AFTER = 2 * 3600.0
WEBHOOK_TIMEOUT = 30.0
FINISHED_STATES = ("success", "failed")
WEBHOOK_TYPES = ("http", "https")
EMAIL_TYPES = ("smtp", "email")


def drop_alert_after(drop_timeout: float) -> float | None:
    """Seconds after a run is queued at which missing drops are announced; None: no alert.

    ``TAXIFLOW_DROP_ALERT_AFTER`` (seconds; ``0`` turns the alert off). Unset: 2 h, or half the
    drop timeout if that is shorter. A setting not below the drop timeout is refused: the branch
    would fail before anyone was told.
    """
    after = env_seconds(ALERT_AFTER_ENV, min(DEFAULT_ALERT_AFTER, drop_timeout / 2))
    if after == 0:
        return None
    if after < 0 or after >= drop_timeout:
        raise ValueError(
            f"{ALERT_AFTER_ENV} must be 0 (no alert) or a number of seconds above 0 and below "
            f"TAXIFLOW_DROP_TIMEOUT ({drop_timeout:g} s), got {after:g}"
        )
    return after


def alert_conn_id() -> str:
    return os.environ.get(ALERT_CONN_ENV, "").strip() or DEFAULT_ALERT_CONN_ID


def late_drop_deadline(sources: tuple[str, ...] | list[str]) -> DeadlineAlert | None:
    """The ``deadline=`` of ``ingest_taxi_trips``: announce missing drops N seconds after queueing."""
    after = drop_alert_after(drop_timeout())
    if after is None:
        return None
    # Exported by airflow.sdk at run time; its 3.3.2 stub (__init__.pyi) omits them.
    from airflow.sdk import AsyncCallback, DeadlineAlert, DeadlineReference  # type: ignore[attr-defined]

    return DeadlineAlert(
        # Queued, not logical date: a backfilled month's logical date is long past.
        reference=DeadlineReference.DAGRUN_QUEUED_AT,
        interval=timedelta(seconds=after),
        callback=AsyncCallback(announce_late_drops, kwargs={"sources": list(sources), "conn_id": alert_conn_id()}),
        name="late_drops",
    )


# --- The message ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class MissingDrop:
    source: str
    folder: str
    detail: str  # what is there and what is still missing


@dataclass(frozen=True)
class LateDropAlert:
    """What one ingest run is still waiting for when its deadline passes."""

    dag_id: str
    run_id: str
    month: str
    queued_at: str
    deadline: str
    missing: tuple[MissingDrop, ...]

    @property
    def subject(self) -> str:
        names = ", ".join(drop.source for drop in self.missing)
        return f"taxiflow: {self.month} drop late for {names} ({self.dag_id} run {self.run_id})"

    def text(self) -> str:
        lines = [
            self.subject,
            f"Run {self.run_id} of {self.dag_id} (month {self.month}) was queued at {self.queued_at} and "
            f"is still waiting at its deadline {self.deadline}; these drops have not arrived:",
        ]
        for drop in self.missing:
            lines.append(f"- {drop.source}: expected in {drop.folder} (data files, then _SUCCESS); {drop.detail}")
        lines.append(
            "The waiting branches fail after TAXIFLOW_DROP_TIMEOUT. When a drop lands, its branch "
            "carries on by itself; nothing needs clearing."
        )
        return "\n".join(lines)

    def payload(self) -> dict[str, Any]:
        """The webhook body: ``text`` for chat tools, the same facts as fields for scripts."""
        return {
            "text": self.text(),
            "event": "late_drop",
            "dag_id": self.dag_id,
            "run_id": self.run_id,
            "month": self.month,
            "queued_at": self.queued_at,
            "deadline": self.deadline,
            "missing": [{"source": d.source, "expected_in": d.folder, "detail": d.detail} for d in self.missing],
        }


def missing_drops(sources: list[str], month: str, paths: DataPaths | None = None) -> list[MissingDrop]:
    """The sources whose drop for ``month`` is not ready, with where it is expected.

    Sources TLC did not publish yet for ``month`` are not expected. A drop refused as unsafe (a
    link) is not missing: its branch has already failed, saying why.
    """
    from taxiflow.config import Partition
    from taxiflow.data import landing, storage
    from taxiflow.data.storage import data_paths

    paths = paths or data_paths()
    missing = []
    for source in sources:
        if month < published_from(source):
            continue
        partition = Partition(source, month)
        folder = storage.url(paths.landing_dir(partition))
        try:
            drop = landing.list_drop(partition, paths)
        except landing.UnsafeDropError:
            continue
        if not drop.ready:
            missing.append(MissingDrop(source, folder, drop.describe().removeprefix(f"{folder}: ")))
    return missing


def _month_of(logical_date: object) -> str | None:
    from taxiflow.config import month_of_logical_date

    if isinstance(logical_date, str):
        logical_date = datetime.fromisoformat(logical_date.replace("Z", "+00:00"))
    try:
        return month_of_logical_date(logical_date)
    except ValueError:
        return None


def late_drop_alert(
    context: dict[str, Any], sources: list[str], paths: DataPaths | None = None
) -> tuple[LateDropAlert | None, str]:
    """The alert for the run in a deadline callback's ``context``, or None and why there is none."""
    run = context.get("dag_run") or {}
    run_id = str(run.get("dag_run_id") or run.get("run_id") or "?")
    dag_id = str(run.get("dag_id") or INGEST_DAG_ID)
    state = str(run.get("state") or "")
    if state in FINISHED_STATES:
        return None, f"{dag_id} run {run_id} already {state}: no late drop to announce"
    logical_date = run.get("logical_date")
    month = _month_of(logical_date)
    if month is None:
        return None, f"{dag_id} run {run_id} ingests no month (logical date {logical_date}): nothing to announce"
    missing = missing_drops(sources, month, paths)
    if not missing:
        return None, f"{dag_id} run {run_id}: every {month} drop has arrived; nothing to announce"
    deadline = (context.get("deadline") or {}).get("deadline_time")
    alert = LateDropAlert(
        dag_id=dag_id,
        run_id=run_id,
        month=month,
        queued_at=str(run.get("queued_at") or "?"),
        deadline=deadline.isoformat() if isinstance(deadline, datetime) else str(deadline or "?"),
        missing=tuple(missing),
    )
    return alert, alert.subject


# --- Sending --------------------------------------------------------------------------------------


def webhook_url(host: str | None, schema: str | None, port: int | None) -> str:
    """The URL an HTTP connection names, read as the HTTP provider reads it (host may be a whole URL)."""
    if not host:
        raise ValueError("the alert connection has no host: set its host to the webhook URL")
    if "://" in host:
        return host
    url = f"{schema or 'http'}://{host}"
    return f"{url}:{port}" if port else url


def post_json(url: str, body: dict[str, Any], headers: dict[str, str] | None = None,
              auth: tuple[str, str] | None = None) -> int:
    """POST ``body`` as JSON; the response status (an HTTPError for 4xx/5xx)."""
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
    request.add_header("Content-Type", "application/json")
    for name, value in (headers or {}).items():
        request.add_header(name, str(value))
    if auth:
        import base64

        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    with urllib.request.urlopen(request, timeout=WEBHOOK_TIMEOUT) as response:
        return int(response.status)


async def send_alert(alert: LateDropAlert, conn_id: str) -> str:
    """Send ``alert`` through connection ``conn_id``; without it, log it. A line saying what happened."""
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        conn = await BaseHook.aget_connection(conn_id)
    except AirflowNotFoundException:
        log.warning(
            "LATE DROP (not sent: no Airflow connection %r; define one to send this alert, see docs/alerts.md)\n%s",
            conn_id, alert.text(),
        )
        return f"logged, not sent (no connection {conn_id!r}): {alert.subject}"
    conn_type = (conn.conn_type or "").lower()
    extra = conn.extra_dejson
    if conn_type in EMAIL_TYPES:
        await _send_email(alert, conn_id, extra)
        return f"e-mailed via {conn_id!r} to {extra.get('to')}: {alert.subject}"
    if conn_type not in WEBHOOK_TYPES and "://" not in (conn.host or ""):
        log.error("LATE DROP (not sent: connection %r has type %r; use http or smtp)\n%s",
                  conn_id, conn.conn_type, alert.text())
        return f"logged, not sent (connection {conn_id!r} has type {conn.conn_type!r}): {alert.subject}"
    url = webhook_url(conn.host, conn.schema, conn.port)
    auth = (conn.login, conn.password or "") if conn.login else None
    try:
        status = await asyncio.to_thread(post_json, url, alert.payload(), extra.get("headers"), auth)
    except Exception:
        log.exception("LATE DROP (sending through connection %r failed)\n%s", conn_id, alert.text())
        raise
    log.info("Late-drop alert sent through %r (HTTP %s): %s", conn_id, status, alert.subject)
    return f"sent via {conn_id!r} (HTTP {status}): {alert.subject}"


async def _send_email(alert: LateDropAlert, conn_id: str, extra: dict[str, Any]) -> None:
    from html import escape

    from airflow.providers.smtp.notifications.smtp import SmtpNotifier

    if not extra.get("to"):
        raise ValueError(f"the SMTP connection {conn_id!r} needs \"to\" in its extra: who gets late-drop alerts")
    notifier = SmtpNotifier(
        to=extra["to"], from_email=extra.get("from_email"), smtp_conn_id=conn_id,
        subject=alert.subject, html_content=f"<pre>{escape(alert.text())}</pre>",
    )
    await notifier.async_notify({})


async def announce_late_drops(sources: list[str], conn_id: str, context: dict[str, Any] | None = None) -> str:
    """The Deadline Alert callback (runs in the triggerer): announce a run's missing drops, if any."""
    alert, why = await asyncio.to_thread(late_drop_alert, context or {}, sources)
    if alert is None:
        log.info("Late-drop deadline passed: %s", why)
        return why
    return await send_alert(alert, conn_id)
