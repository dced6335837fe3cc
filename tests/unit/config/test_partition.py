"""The typed partition: made once from validated input or a run's logical date, trusted downstream."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from taxiflow.config import Partition


def test_a_partition_knows_its_month_and_its_metrics_run():
    partition = Partition("green", "2024-01")
    assert partition.first_day == date(2024, 1, 1)
    assert partition.metrics_run_id == "ingest__green__2024-01"
    assert partition.metrics_conf == {"source": "green", "month": "2024-01"}
    assert str(partition) == "green 2024-01"
    assert partition == Partition("green", "2024-01")  # frozen and comparable: usable as a dict key


@pytest.mark.parametrize(
    ("source", "month", "words"),
    [
        ("purple", "2024-01", ["source", "'purple'", "'yellow'", "'green'"]),
        ("green", "2024-13", ["month", "YYYY-MM", "'2024-13'"]),
        ("green", "2008-12", ["2009-01 or later", "'2008-12'"]),
    ],
)
def test_a_bad_partition_names_the_field_and_what_is_allowed(source, month, words):
    with pytest.raises(ValueError) as raised:
        Partition(source, month)
    for word in words:
        assert word in str(raised.value)


def test_from_logical_date_takes_the_first_of_a_month_only():
    on_the_first = datetime(2024, 2, 1, tzinfo=UTC)
    assert Partition.from_logical_date("yellow", on_the_first) == Partition("yellow", "2024-02")
    with pytest.raises(ValueError, match="logical date must be the first day"):
        Partition.from_logical_date("yellow", datetime(2024, 2, 2, tzinfo=UTC))
    with pytest.raises(ValueError, match="trigger ingest_taxi_trips -l"):
        Partition.from_logical_date("yellow", None)
