"""The ingest DAG's tasks record every drop they refuse (taxiflow.data.refusals), with the run that refused it.

The task functions are called directly, on a data root in ``tmp_path``: an unsafe re-drop (a link)
fails ``wait_for_<source>`` and ``copy_to_raw_<source>`` and is recorded like a corrupt one is.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pendulum
import pytest
from airflow.sdk.exceptions import AirflowFailException

from taxiflow.config import INGEST_DAG_ID, SUCCESS_MARKER, Partition
from taxiflow.data import refusals

DAGS_DIR = Path(__file__).resolve().parents[2] / "dags"
LINKED = Partition("green", "2022-11")


@pytest.fixture
def ingest_dag(data_root):
    spec = importlib.util.spec_from_file_location("ingest_dag_for_refusals", DAGS_DIR / f"{INGEST_DAG_ID}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_linked_drop_is_refused_and_recorded_by_wait_and_copy(ingest_dag, data_root, tmp_path):
    secret = tmp_path / "elsewhere.parquet"
    secret.write_bytes(b"not for taxiflow")
    landing = data_root.landing_dir(LINKED)
    landing.mkdir(parents=True)
    (landing / "green_tripdata_2022-11.parquet").symlink_to(secret)
    (landing / SUCCESS_MARKER).touch()

    with pytest.raises(AirflowFailException, match="it is a symbolic link"):
        ingest_dag.wait_for_drop.function("green", logical_date=pendulum.datetime(2022, 11, 1, tz="UTC"),
                                          run_id="scheduled__2022-11-01")
    refusal = refusals.read_refusal(LINKED, data_root)
    assert refusal is not None and refusal.run_id == "scheduled__2022-11-01"
    assert refusal.reason.startswith(
        "refused landing/green/2022-11/green_tripdata_2022-11.parquet: it is a symbolic link")

    with pytest.raises(AirflowFailException, match="symbolic link"):
        ingest_dag.copy_to_raw.function("green", "2022-11", run_id="manual__again")
    assert refusals.read_refusal(LINKED, data_root).run_id == "manual__again"
    assert refusals.refusal_outcome(LINKED, data_root) == (refusals.read_refusal(LINKED, data_root), None)
