"""The demo data on both backends (``any_root``: a local folder and SeaweedFS; the ``s3`` run under the
heavy lock: ``flock /tmp/taxiflow-heavy.lock .venv/bin/python -m pytest tests/unit/demo/test_demo_backends.py``)."""

from __future__ import annotations

from taxiflow.config import Partition
from taxiflow.data import ingest, landing
from taxiflow.data.raw import copy_to_raw
from taxiflow.demo import trips as demo

JANUARY = Partition("green", "2024-01")


def test_demo_months_drop_into_the_data_root(any_root):
    """What ``make run [STORAGE=s3] --demo`` drops: a month's file, then ``_SUCCESS``, ready to ingest."""
    demo.generate_month("green", "2024-01", 50)
    assert landing.drop_is_ready(JANUARY)
    assert [f.name for f in landing.data_files(JANUARY)] == ["green_tripdata_2024-01.parquet"]
    demo.generate_month("green", "2024-01", 60)  # regenerated: replaced whole, marker written again last
    assert landing.drop_is_ready(JANUARY)
    copy_to_raw(JANUARY)
    assert ingest.process_partition(JANUARY)["rows_read"] == 60
