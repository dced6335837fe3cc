"""DAG integrity: every DAG file parses, is wired as documented, and is cheap to parse."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from taxiflow.config import (
    DATA_DIR_ENV,
    DOWNLOAD_DAG_ID,
    INGEST_DAG_ID,
    INGEST_SOURCES_ENV,
    METRICS_DAG_ID,
    REPORT_DAG_ID,
    REQUESTS_DAG_ID,
    SOURCE_NAMES,
    trigger_metrics_task_id,
)

DAGS_DIR = Path(__file__).resolve().parents[2] / "dags"
HEAVY_MODULES = ("pandas", "duckdb", "matplotlib", "pyarrow", "numpy")


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    # Parsed with every source ingested, so every source's branch is checked (the default is the taxis).
    with pytest.MonkeyPatch.context() as env:
        env.setenv(INGEST_SOURCES_ENV, "all")
        return DagBag(dag_folder=str(DAGS_DIR))


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}
    assert {INGEST_DAG_ID, METRICS_DAG_ID, REPORT_DAG_ID} <= set(dagbag.dag_ids)


def test_one_dag_per_file_named_after_its_id(dagbag):
    for dag_id, dag in dagbag.dags.items():
        assert Path(dag.fileloc).stem == dag_id


@pytest.mark.parametrize("attr", ["tags", "doc_md"])
def test_every_dag_documents_itself(dagbag, attr):
    for dag in dagbag.dags.values():
        assert getattr(dag, attr), f"{dag.dag_id} has no {attr}"


# Tasks allowed to run without retries, each with why. Empty today; the test below fails if an entry
# names no task or a task that does retry, so the list cannot outlive what it excuses.
NO_RETRIES: dict[tuple[str, str], str] = {}


def test_every_task_function_has_a_docstring(dagbag):
    """@task functions are documented in the DAG file (Airflow shows the docstring as the task's doc)."""
    for dag in dagbag.dags.values():
        for t in dag.tasks:
            if hasattr(t, "python_callable"):
                assert t.doc_md, f"{dag.dag_id}.{t.task_id} has no docstring"


def test_every_task_retries(dagbag):
    for dag in dagbag.dags.values():
        for t in dag.tasks:
            if (dag.dag_id, t.task_id) not in NO_RETRIES:
                assert t.retries >= 1, f"{dag.dag_id}.{t.task_id} has no retries"


def test_no_retries_exemptions_are_real(dagbag):
    for dag_id, task_id in NO_RETRIES:
        assert dag_id in dagbag.dags and dagbag.dags[dag_id].has_task(task_id), f"no task {dag_id}.{task_id}"
        assert dagbag.dags[dag_id].get_task(task_id).retries == 0, f"{dag_id}.{task_id} retries: drop the exemption"


def test_ingest_branches_per_source(dagbag):
    dag = dagbag.dags[INGEST_DAG_ID]
    for source in SOURCE_NAMES:
        chain_ids = [
            f"wait_for_{source}", f"copy_to_raw_{source}", f"process_{source}", trigger_metrics_task_id(source)
        ]
        for upstream, downstream in itertools.pairwise(chain_ids):
            assert downstream in dag.get_task(upstream).downstream_task_ids
        sensor = dag.get_task(f"wait_for_{source}")
        assert sensor.mode == "reschedule"
    # branches are independent: nothing of one source waits on another
    for t in dag.tasks:
        own = [s for s in SOURCE_NAMES if t.task_id.endswith(s)]
        for up in t.upstream_task_ids:
            assert up.endswith(own[0])


# The request watcher hands reports off: a poll must not block on a report waiting hours for ingest.
FIRE_AND_FORGET = {(REQUESTS_DAG_ID, "trigger_report")}


def _arg(task, name):
    """An operator argument, whether the task is mapped (partial kwargs) or not."""
    return task.partial_kwargs.get(name) if hasattr(task, "partial_kwargs") else getattr(task, name)


def test_trigger_targets_exist_and_wait_deferred(dagbag):
    triggers = 0
    for dag in dagbag.dags.values():
        for t in dag.tasks:
            if t.task_type == "TriggerDagRunOperator":
                triggers += 1
                target = _arg(t, "trigger_dag_id")
                assert target in dagbag.dags, f"{t.task_id} triggers unknown {target}"
                if (dag.dag_id, t.task_id) not in FIRE_AND_FORGET:
                    assert _arg(t, "wait_for_completion") and _arg(t, "deferrable")
    assert triggers >= 3


def test_fire_and_forget_exemptions_are_real(dagbag):
    for dag_id, task_id in FIRE_AND_FORGET:
        task = dagbag.dags[dag_id].get_task(task_id)  # raises if the task is gone
        assert task.task_type == "TriggerDagRunOperator", f"{dag_id}.{task_id} is a {task.task_type}"
        assert not _arg(task, "wait_for_completion"), f"{dag_id}.{task_id} waits: drop the exemption"


def test_report_gate_targets_exist(dagbag):
    gate = dagbag.dags[REPORT_DAG_ID].get_task("wait_for_ingest")
    assert gate.mode == "reschedule"
    assert 0 < gate.uncovered_timeout < gate.timeout  # a month no run covers gives up sooner
    for source in SOURCE_NAMES:
        assert dagbag.dags[INGEST_DAG_ID].has_task(trigger_metrics_task_id(source))


def test_waiting_runs_cannot_fill_the_run_limits(dagbag):
    """Waiting sensors reschedule (no slot); the run limits exceed every month TLC has published."""
    from datetime import date

    from taxiflow.config import FIRST_MONTH, months_covering

    months_so_far = len(months_covering(FIRST_MONTH, date.today()))
    assert dagbag.dags[INGEST_DAG_ID].max_active_runs > months_so_far
    assert dagbag.dags[REPORT_DAG_ID].max_active_runs >= 256
    for source in SOURCE_NAMES:
        assert dagbag.dags[INGEST_DAG_ID].get_task(f"wait_for_{source}").mode == "reschedule"


def test_metrics_builds_run_one_at_a_time_across_hosts(dagbag):
    """A month's metrics read its neighbours' strays: the last build of a month must have seen every
    partition published before it started, so one source's builds (and the weekly summary) never overlap."""
    dag = dagbag.dags[METRICS_DAG_ID]
    builds = [task for task in dag.tasks if task.task_id.startswith("build_metrics_")]
    assert {"build_metrics_yellow", "build_metrics_green"} <= {task.task_id for task in builds}
    assert all(task.max_active_tis_per_dag == 1 for task in builds)
    assert dag.get_task("write_weekly_summary").max_active_tis_per_dag == 1


def test_report_params_drive_the_form(dagbag):
    params = dagbag.dags[REPORT_DAG_ID].params
    assert params.get_param("borough").schema["enum"] == ["Manhattan", "Brooklyn", "Queens", "Bronx", "Staten Island"]
    assert params.get_param("start_date").schema["format"] == "date"
    assert params.get_param("end_date").schema["format"] == "date"
    for required in ("borough", "start_date", "end_date"):  # no default: every door must send them
        assert not params.get_param(required).has_value


def test_download_dag_present_if_shipped(dagbag):
    if (DAGS_DIR / f"{DOWNLOAD_DAG_ID}.py").exists():
        assert DOWNLOAD_DAG_ID in dagbag.dags


PARSE_PROBE = r"""
import json, sys, time
from airflow.sdk.definitions.connection import Connection
from airflow.sdk.definitions.variable import Variable

looked_up = []

def refuse(*args, **kwargs):  # recorded too: a caller may swallow the error
    looked_up.append(repr(args))
    raise AssertionError(f"connection/variable look-up at parse time: {args}")

Connection.get = classmethod(refuse)
Variable.get = classmethod(refuse)
from airflow.dag_processing.dagbag import DagBag
start = time.perf_counter()
bag = DagBag(dag_folder=sys.argv[1])
print(json.dumps({
    "errors": {k: str(v) for k, v in bag.import_errors.items()},
    "seconds": time.perf_counter() - start,
    "heavy": sorted(m for m in sys.argv[2].split(",") if m in sys.modules),
    "looked_up": looked_up,
}))
"""


@pytest.mark.parametrize("data_root", ["local", "s3://bucket/data"])
def test_parsing_is_cheap_and_offline(data_root, tmp_path):
    """No heavy imports, connection or variable look-ups while the DAG files are parsed.

    With an S3 data root, the assets the DAG files declare are named from the URL alone: no storage
    connection is read and no S3 filesystem (s3fs, aiobotocore) is made.
    """
    heavy = HEAVY_MODULES + (("s3fs", "aiobotocore") if "://" in data_root else ())
    result = subprocess.run(
        [sys.executable, "-c", PARSE_PROBE, str(DAGS_DIR), ",".join(heavy)],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, DATA_DIR_ENV: str(tmp_path) if data_root == "local" else data_root},
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["errors"] == {}
    assert report["looked_up"] == []
    assert report["heavy"] == [], f"DAG parsing imported {report['heavy']}"


def test_a_month_before_tlc_published_a_source_skips_its_branch(tmp_path, monkeypatch):
    """green 2012-06 never existed: its wait skips at once (the gate counts a skip as done)."""
    import importlib.util

    import pendulum
    from airflow.sdk.exceptions import AirflowSkipException

    monkeypatch.setenv("TAXIFLOW_DATA_DIR", str(tmp_path))
    spec = importlib.util.spec_from_file_location("ingest_dag_for_test", DAGS_DIR / f"{INGEST_DAG_ID}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with pytest.raises(AirflowSkipException, match="TLC publishes green trips from 2013-08 on"):
        module.wait_for_drop.function("green", logical_date=pendulum.datetime(2012, 6, 1, tz="UTC"))
    with pytest.raises(AirflowSkipException, match="TLC publishes fhvhv trips from 2019-02 on"):
        module.wait_for_drop.function("fhvhv", logical_date=pendulum.datetime(2019, 1, 1, tz="UTC"))
    waiting = module.wait_for_drop.function("fhvhv", logical_date=pendulum.datetime(2019, 2, 1, tz="UTC"))
    assert waiting.is_done is False  # published from that month on: it waits for the drop


@pytest.mark.parametrize("source", SOURCE_NAMES)
def test_metrics_trigger_names_the_runs_partition(dagbag, source):
    """The create_metrics run an ingest run starts is ``ingest__<source>__<month>`` with that conf."""
    import pendulum

    dag = dagbag.dags[INGEST_DAG_ID]
    task = dag.get_task(trigger_metrics_task_id(source))
    env = dag.get_template_env()
    context = {"params": task.params, "logical_date": pendulum.datetime(2024, 1, 1, tz="UTC")}
    assert env.from_string(task.trigger_run_id).render(**context) == f"ingest__{source}__2024-01"
    assert json.loads(env.from_string(task.conf).render(**context)) == {"source": source, "month": "2024-01"}
    with pytest.raises(ValueError, match="first day of a month"):
        env.from_string(task.trigger_run_id).render(
            params=task.params, logical_date=pendulum.datetime(2024, 1, 15, tz="UTC")
        )
