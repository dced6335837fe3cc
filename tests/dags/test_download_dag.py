"""DAG integrity of ``download_tlc_trips``: parses cleanly and cheaply, wired per source, monthly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pendulum
import pytest

from taxiflow.components.operators import TlcDownloadOperator
from taxiflow.components.sensors import TlcPublishedSensor
from taxiflow.config import DOWNLOAD_DAG_ID, INGEST_SOURCES_ENV, SOURCE_NAMES

DAG_FILE = Path(__file__).resolve().parents[2] / "dags" / f"{DOWNLOAD_DAG_ID}.py"


@pytest.fixture(scope="module")
def dag():
    from airflow.dag_processing.dagbag import DagBag

    # Parsed with every source ingested, so every source's branch is checked (the default is the taxis).
    with pytest.MonkeyPatch.context() as env:
        env.setenv(INGEST_SOURCES_ENV, "all")
        bag = DagBag(dag_folder=str(DAG_FILE))
    assert bag.import_errors == {}
    assert list(bag.dag_ids) == [DOWNLOAD_DAG_ID]
    return bag.dags[DOWNLOAD_DAG_ID]


def test_documented_tagged_and_retried(dag):
    assert "airflow dags trigger download_tlc_trips" in dag.doc_md
    assert "airflow backfill create --dag-id download_tlc_trips" in dag.doc_md
    assert {"taxiflow", "download"} <= set(dag.tags)
    for task in dag.tasks:
        assert task.retries >= 1, task.task_id


def test_paused_until_the_operator_opts_in(dag):
    """The one DAG that calls the internet: created paused even where others start unpaused."""
    assert dag.is_paused_upon_creation is True
    assert "airflow dags unpause download_tlc_trips" in dag.doc_md


def test_each_source_waits_for_publication_then_downloads(dag):
    expected = {f"wait_for_publication_{s}" for s in SOURCE_NAMES} | {f"download_{s}" for s in SOURCE_NAMES}
    assert set(dag.task_ids) == expected
    for source in SOURCE_NAMES:
        wait = dag.get_task(f"wait_for_publication_{source}")
        download = dag.get_task(f"download_{source}")
        assert isinstance(wait, TlcPublishedSensor) and isinstance(download, TlcDownloadOperator)
        assert wait.source == download.source == source
        assert wait.downstream_task_ids == {download.task_id}
        assert wait.mode == "reschedule"
        assert wait.timeout >= timedelta(days=60).total_seconds()  # TLC publishes ~2 months late


def test_run_for_a_month_starts_with_it_and_fires_when_it_ends(dag):
    from airflow.serialization.encoders import coerce_to_core_timetable
    from airflow.timetables.base import TimeRestriction

    timetable = coerce_to_core_timetable(dag.timetable)
    assert type(timetable).__name__ == "CronDataIntervalTimetable"
    january = pendulum.datetime(2024, 1, 1, tz="UTC")
    info = timetable.next_dagrun_info(
        last_automated_data_interval=None,
        restriction=TimeRestriction(earliest=january, latest=None, catchup=True),
    )
    assert info.data_interval.start == january  # the logical date: the month downloaded
    assert info.data_interval.end == info.run_after == pendulum.datetime(2024, 2, 1, tz="UTC")
    assert dag.start_date == pendulum.datetime(2009, 1, 1, tz="UTC")
    assert dag.catchup is False


@pytest.mark.parametrize(
    ("params", "context", "month"),
    [
        ({"month": None}, {"logical_date": pendulum.datetime(2024, 1, 1, tz="UTC")}, "2024-01"),
        ({"month": "2023-12"}, {}, "2023-12"),  # manual run without a logical date
    ],
)
def test_month_comes_from_conf_or_logical_date(dag, params, context, month):
    task = dag.get_task(f"download_{SOURCE_NAMES[0]}")
    assert task.render_template(task.month, {"params": params, **context}) == month


def test_a_logical_date_inside_a_month_names_no_month(dag):
    task = dag.get_task(f"download_{SOURCE_NAMES[0]}")
    mid_month = {"params": {"month": None}, "logical_date": pendulum.datetime(2024, 1, 15, tz="UTC")}
    with pytest.raises(ValueError, match="download_tlc_trips runs cover whole months"):
        task.render_template(task.month, mid_month)


def test_parsing_loads_no_data_stack_and_looks_up_no_connection(tmp_path):
    """The DAG processor parses this file every 30 s: no connection look-up, no data libraries.

    The http provider's HttpSensor (and with it requests) is imported, as in Airflow's own example
    DAGs; our download hook is not.
    """
    probe = (
        "import json, runpy, sys\n"
        f"runpy.run_path({str(DAG_FILE)!r})\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('taxiflow', 'pandas', 'duckdb', 'pyarrow', 'matplotlib'))))\n"
    )
    env = {**os.environ, "AIRFLOW_CONN_NYC_TLC": "this-would-fail-if-parsed://"}
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert not [m for m in loaded if not m.startswith("taxiflow")], loaded
    assert "taxiflow.components.hooks" not in loaded
