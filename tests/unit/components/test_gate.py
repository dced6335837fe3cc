"""``IngestGateSensor``: an ``ExternalTaskSensor`` on the ingest runs, against a fake metadata API.

The fake task instance answers the look-ups a task makes through Airflow's execution API
(``get_ti_count``, ``get_task_states``, ``get_dr_count``, ``get_first_reschedule_date``) from a
table of ingest runs, so each poke below goes through ``ExternalTaskSensor``'s own counting.
The live gate is exercised by tests/e2e/test_pipeline.py and tests/drills/test_bad_inputs.py.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from airflow.providers.standard.sensors.external_task import ExternalTaskSensor
from airflow.sdk.exceptions import AirflowFailException

from taxiflow.components.gates import IngestGateSensor
from taxiflow.config import INGEST_DAG_ID, trigger_metrics_task_id
from taxiflow.reports.ingest_status import ingest_statuses, month_logical_date

# December 2023 and January 2024, both sources (the default)
TWO_MONTHS = {"borough": "Manhattan", "start_date": "2023-12-18", "end_date": "2024-01-08"}


class FakeIngestRuns:
    """The ``ti`` of a report's gate, over ``runs``: {month: {source: state}} (a month absent: no run)."""

    def __init__(self, runs: dict[str, dict[str, str]], first_poke: datetime | None = None,
                 stale_counts: bool = False, tasks: dict[str, dict[str, str]] | None = None) -> None:
        self.runs = runs
        self.tasks = tasks or {}  # {month: {task_id: state}} of tasks other than the metrics trigger
        self.first_poke = first_poke
        self.stale_counts = stale_counts  # the counts miss a task that finished a moment later
        self.calls: list[str] = []
        self.xcom: dict[str, object] = {}

    def _states(self, dag_id: str, logical_dates: list[datetime]) -> dict[str, dict[str, str]]:
        assert dag_id == INGEST_DAG_ID
        return {
            f"scheduled__{month}": {
                **{trigger_metrics_task_id(source): state for source, state in tasks.items()},
                **self.tasks.get(month, {}),
            }
            for month, tasks in self.runs.items()
            if month_logical_date(month) in logical_dates
        }

    def xcom_push(self, key, value):
        self.xcom[key] = value

    def get_ti_count(self, *, dag_id, task_ids, logical_dates, states, **_):
        self.calls.append("get_ti_count")
        if self.stale_counts:
            return 0
        runs = self._states(dag_id, logical_dates)
        return sum(state in states for run in runs.values() for task, state in run.items() if task in task_ids)

    def get_task_states(self, *, dag_id, task_ids, logical_dates, **_):
        self.calls.append("get_task_states")
        return {run_id: {task: state for task, state in run.items() if task in task_ids}
                for run_id, run in self._states(dag_id, logical_dates).items()}

    def get_dr_count(self, *, dag_id, logical_dates, **_):
        self.calls.append("get_dr_count")
        return len(self._states(dag_id, logical_dates))

    def get_first_reschedule_date(self, context):
        return self.first_poke


def poke(ti: FakeIngestRuns, params: dict | None = None, **gate_kwargs) -> bool:
    gate = IngestGateSensor(task_id="wait_for_ingest", **gate_kwargs)
    run_after = datetime(2026, 12, 2, tzinfo=UTC)  # a manual run: no logical date of its own
    context = {"ti": ti, "params": params or TWO_MONTHS, "logical_date": None,
               "dag_run": type("DagRun", (), {"run_after": run_after})()}
    return gate.poke(context)


def test_the_gate_is_an_external_task_sensor_in_reschedule_mode():
    gate = IngestGateSensor(task_id="wait_for_ingest")
    assert isinstance(gate, ExternalTaskSensor)
    assert gate.mode == "reschedule" and not gate.deferrable
    assert gate.external_dag_id == INGEST_DAG_ID
    assert gate.allowed_states == ["success", "skipped"]
    assert set(gate.failed_states) == {"failed", "upstream_failed"}


def test_a_source_skipped_for_a_month_before_tlc_published_it_counts_as_done():
    """green before 2013-08 has no file: its branch skips, and a default (yellow, green) report goes on."""
    ti = FakeIngestRuns({month: {"green": "skipped", "yellow": "success"} for month in ("2023-12", "2024-01")})
    assert poke(ti) is True


def test_opens_when_every_month_and_source_succeeded(capsys):
    ti = FakeIngestRuns({month: {"green": "success", "yellow": "success"} for month in ("2023-12", "2024-01")})
    assert poke(ti) is True
    assert "Ingest done for yellow 2023-12, green 2023-12, yellow 2024-01, green 2024-01" in capsys.readouterr().out
    assert "get_task_states" not in ti.calls  # ExternalTaskSensor's counts alone decided


def test_waits_while_a_month_is_still_running_and_says_for_what(capsys):
    ti = FakeIngestRuns({"2023-12": {"green": "success", "yellow": "success"},
                         "2024-01": {"green": "success", "yellow": "running"}})
    assert poke(ti) is False
    assert "Still waiting for the ingest of: yellow 2024-01 (running)" in capsys.readouterr().out


def test_only_the_requested_sources_gate_the_report():
    ti = FakeIngestRuns({month: {"green": "success"} for month in ("2023-12", "2024-01")})
    assert poke(ti, {**TWO_MONTHS, "sources": ["green"]}) is True
    assert poke(ti) is False  # both sources asked for: yellow never ran


@pytest.mark.parametrize("state", ["failed", "upstream_failed"])
def test_a_failed_ingest_fails_the_report_at_once_naming_month_and_source(state):
    ti = FakeIngestRuns({"2023-12": {"green": "success", "yellow": "success"},
                         "2024-01": {"green": state, "yellow": "success"}})
    with pytest.raises(AirflowFailException) as caught:  # never retried: clearing the ingest fixes it
        poke(ti)
    message = str(caught.value)
    assert f"green 2024-01 (task {trigger_metrics_task_id('green')}: {state})" in message
    assert "yellow" not in message and "2023-12" not in message


def test_a_month_no_run_covers_is_logged_then_given_up_on(capsys):
    runs = {"2023-12": {"green": "success", "yellow": "success"}}  # no run for 2024-01
    assert poke(FakeIngestRuns(runs, first_poke=datetime.now(UTC))) is False
    log = capsys.readouterr().out
    assert "No ingest_taxi_trips run covers 2024-01" in log
    assert "airflow dags trigger ingest_taxi_trips -l 2024-01-01T00:00:00+00:00" in log

    long_ago = datetime.now(UTC) - timedelta(seconds=120)
    with pytest.raises(AirflowFailException, match=r"No ingest_taxi_trips run covers 2024-01 after 1[12]\d s"):
        poke(FakeIngestRuns(runs, first_poke=long_ago), uncovered_timeout=60)


def test_an_ingest_that_finished_between_the_looks_opens_the_gate_now():
    ti = FakeIngestRuns({month: {"green": "success", "yellow": "success"} for month in ("2023-12", "2024-01")},
                        stale_counts=True)
    assert poke(ti) is True  # not one more poke interval later


def test_the_gate_links_to_the_ingest_runs_not_to_a_run_that_cannot_exist(monkeypatch):
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "http://127.0.0.1:8080")
    gate = IngestGateSensor(task_id="wait_for_ingest")
    assert [link.name for link in gate.operator_extra_links] == ["Ingest runs"]
    url = gate.operator_extra_links[0].get_link(gate, ti_key=None)
    assert url == f"http://127.0.0.1:8080/dags/{INGEST_DAG_ID}/runs"


def test_the_report_views_and_the_gate_read_states_the_same_way():
    yellow, green = trigger_metrics_task_id("yellow"), trigger_metrics_task_id("green")
    task_states = {("2023-12", yellow): "success", ("2023-12", green): "upstream_failed",
                   ("2024-01", yellow): "running"}
    statuses = ingest_statuses(["2023-12", "2024-01", "2024-02"], ["yellow", "green"], task_states,
                               {"2023-12": "failed", "2024-01": "running"})  # no run covers 2024-02
    assert [(s.month, s.source, s.state, s.detail) for s in statuses] == [
        ("2023-12", "yellow", "done", "ingested"),
        ("2023-12", "green", "failed", "ingest_taxi_trips run for 2023-12 failed"),
        ("2024-01", "yellow", "waiting",
         "ingest_taxi_trips run for 2024-01 is running; waiting for landing/yellow/2024-01/ or its processing"),
        ("2024-01", "green", "waiting",
         "ingest_taxi_trips run for 2024-01 is running; waiting for landing/green/2024-01/ or its processing"),
        ("2024-02", "yellow", "waiting", "no ingest_taxi_trips run for 2024-02 yet"),
        ("2024-02", "green", "waiting", "no ingest_taxi_trips run for 2024-02 yet"),
    ]


# --- a refused re-drop over a good partition (taxiflow.data.refusals) --------------------------------

SEPTEMBER = {"borough": "Brooklyn", "start_date": "2022-09-01", "end_date": "2022-09-10", "sources": ["green"]}


def ingested_then_refused(paths, month: str, ingested: bool = True) -> None:
    """A real ingest of a demo month with metrics (if ``ingested``), then a corrupt re-drop refused by
    the run the fake names ``scheduled__<month>``."""
    from taxiflow.config import Partition
    from taxiflow.data import ingest, metrics
    from taxiflow.data.raw import copy_to_raw
    from taxiflow.demo.trips import generate_month

    partition = Partition("green", month)
    generate_month("green", month, trips=200, paths=paths)
    if ingested:
        copy_to_raw(partition, paths)
        ingest.process_partition(partition, paths)
        metrics.build_metrics(partition, paths)
    (paths.landing_dir(partition) / f"green_tripdata_{month}.parquet").write_bytes(b"corrupt " * 100)
    copy_to_raw(partition, paths)
    with pytest.raises(ingest.DropRefused):
        ingest.process_partition(partition, paths, run_id=f"scheduled__{month}")


def test_a_refused_redrop_over_a_good_partition_opens_the_gate_with_a_note(data_root, capsys):
    ingested_then_refused(data_root, "2022-09")
    ti = FakeIngestRuns({"2022-09": {"green": "upstream_failed"}}, tasks={"2022-09": {"process_green": "failed"}})
    assert poke(ti, SEPTEMBER) is True
    (kept,) = ti.xcom["kept_partitions"]
    assert kept["source"] == "green" and kept["month"] == "2022-09"
    assert kept["note"].startswith("green 2022-09 as ingested at ")
    assert "; a re-drop at " in kept["note"]
    assert " was refused: cannot read green_tripdata_2022-09.parquet" in kept["note"]
    assert f"Using a kept partition: {kept['note']}" in capsys.readouterr().out


def test_a_month_never_ingested_still_fails_the_report_after_a_refused_drop(data_root):
    ingested_then_refused(data_root, "2022-10", ingested=False)
    ti = FakeIngestRuns({"2022-10": {"green": "upstream_failed"}}, tasks={"2022-10": {"process_green": "failed"}})
    october = {**SEPTEMBER, "start_date": "2022-10-01", "end_date": "2022-10-10"}
    with pytest.raises(AirflowFailException, match=r"green 2022-10 \(task trigger_create_metrics_green") as caught:
        poke(ti, october)
    assert "the drop was refused: cannot read green_tripdata_2022-10.parquet" in str(caught.value)
    assert "no earlier good partition with metrics is there to use instead" in str(caught.value)


def test_a_kept_partition_counts_only_when_the_ingest_failed_in_a_task_that_refuses_drops(data_root):
    """create_metrics failing after a good process is no refused re-drop: the report fails."""
    ingested_then_refused(data_root, "2022-09")
    ti = FakeIngestRuns({"2022-09": {"green": "failed"}}, tasks={"2022-09": {"process_green": "success"}})
    with pytest.raises(AirflowFailException, match="green 2022-09"):
        poke(ti, SEPTEMBER)
    # An unsafe re-drop (a link) fails wait_for_green, which records its refusal like process does.
    ti = FakeIngestRuns({"2022-09": {"green": "upstream_failed"}},
                        tasks={"2022-09": {"wait_for_green": "failed", "process_green": "upstream_failed"}})
    assert poke(ti, SEPTEMBER) is True and len(ti.xcom["kept_partitions"]) == 1
    ti = FakeIngestRuns({"2022-09": {"green": "success"}})
    assert poke(ti, SEPTEMBER) is True and ti.xcom["kept_partitions"] == []
