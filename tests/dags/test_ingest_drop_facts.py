"""``wait_for_<source>`` hands the facts of the drop it hashed to ``copy_to_raw_<source>`` through XCom.

The task functions are called directly on a data root (in ``tmp_path``, or SeaweedFS), with a task
instance that keeps XComs in a dict as Airflow's would, keyed by task id and key.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path
from typing import Any

import pendulum
import pytest
from airflow.sdk.execution_time.context import OutletEventAccessors

from taxiflow.components import lineage
from taxiflow.config import INGEST_DAG_ID, SUCCESS_MARKER, Partition, copy_task_id, wait_task_id
from taxiflow.data import storage
from taxiflow.data.raw import STAGED_FILE

DAGS_DIR = Path(__file__).resolve().parents[2] / "dags"
JANUARY = Partition("green", "2024-01")


class TaskInstances:
    """Each task's ``ti``: what one task pushes, a later one pulls by the first one's task id."""

    def __init__(self) -> None:
        self.xcoms: dict[tuple[str, str], Any] = {}

    def of(self, task_id: str) -> Any:
        xcoms = self.xcoms

        class TaskInstance:
            def xcom_push(self, key: str, value: Any) -> None:
                xcoms[task_id, key] = json.loads(json.dumps(value))  # stored as JSON, as Airflow does

            def xcom_pull(self, task_ids: str, key: str) -> Any:
                return xcoms.get((task_ids, key))

        return TaskInstance()


def load_ingest_dag() -> Any:
    spec = importlib.util.spec_from_file_location("ingest_dag_for_drop_facts", DAGS_DIR / f"{INGEST_DAG_ID}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def ingest_dag(data_root):
    return load_ingest_dag()


def test_the_copy_is_staged_with_the_facts_of_the_drop_the_sensor_saw(ingest_dag, data_root):
    landing = data_root.landing_dir(JANUARY)
    landing.mkdir(parents=True)
    dropped = landing / "green_tripdata_2024-01.parquet"
    dropped.write_bytes(b"PAR1 not really parquet PAR1")
    (landing / SUCCESS_MARKER).touch()
    tis = TaskInstances()

    poke = ingest_dag.wait_for_drop.function("green", logical_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
                                             outlet_events=OutletEventAccessors(), ti=tis.of(wait_task_id("green")))
    names = ingest_dag.copy_to_raw.function("green", poke.xcom_value, outlet_events=OutletEventAccessors(),
                                            ti=tis.of(copy_task_id("green")))

    facts = {"name": dropped.name, "bytes": dropped.stat().st_size,
             "sha256": hashlib.sha256(dropped.read_bytes()).hexdigest()}
    assert poke.is_done and names == [dropped.name]
    assert tis.xcoms[wait_task_id("green"), lineage.DROP_FACTS_KEY] == [{**facts, "etag": None}]
    staged = json.loads((data_root.raw_dir(JANUARY) / STAGED_FILE).read_text())
    assert staged["copied"] == [facts]


def test_a_poke_lists_the_drop_once(any_root, s3_requests, capsys):
    """Waiting or done, one poke lists the landing folder once: its readiness, its log line and the
    facts it hands on come from that listing (on S3 one ListObjectsV2, and one GET per file hashed)."""
    dag = load_ingest_dag()
    folder = any_root.landing_dir(JANUARY)
    data = b"PAR1 not really parquet PAR1"
    storage.write_bytes(folder / "green_tripdata_2024-01.parquet", data)
    tis = TaskInstances()

    def poke() -> tuple[Any, dict[str, int]]:
        s3_requests.clear()
        result = dag.wait_for_drop.function("green", logical_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
                                            outlet_events=OutletEventAccessors(), ti=tis.of(wait_task_id("green")))
        return result, dict(s3_requests)

    waiting, waiting_requests = poke()
    assert "waiting for _SUCCESS (found 1 data file(s))" in capsys.readouterr().out
    storage.write_bytes(folder / SUCCESS_MARKER, b"")
    done, done_requests = poke()
    assert "ready (1 data file(s) and _SUCCESS)" in capsys.readouterr().out

    assert not waiting.is_done and done.is_done and done.xcom_value == "2024-01"
    facts = tis.xcoms[wait_task_id("green"), lineage.DROP_FACTS_KEY]
    assert [{key: f[key] for key in ("name", "bytes", "sha256")} for f in facts] == [
        {"name": "green_tripdata_2024-01.parquet", "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}]
    if storage.is_remote(folder):
        assert waiting_requests == {"list_objects_v2": 1}  # was 2: drop_is_ready, describe_drop
        assert done_requests == {"list_objects_v2": 1, "get_object": 1}  # was 3 listings: and drop_facts
