"""Refused drops on record, and when a good partition stays in use (taxiflow.data.refusals).

Real ingests into a data root in ``tmp_path``: a demo month is ingested with its metrics, then a
corrupt re-drop of it is refused.
"""

from __future__ import annotations

import json

import pytest

from taxiflow.config import Partition
from taxiflow.data import ingest, metrics, refusals, warehouse
from taxiflow.data.raw import copy_to_raw
from taxiflow.demo.trips import generate_month

GOOD = Partition("green", "2022-09")


def ingest_demo(paths, partition: Partition, trips: int = 400, seed: int = 7) -> dict:
    generate_month(partition.source, partition.month, trips=trips, seed=seed, paths=paths)
    copy_to_raw(partition, paths)
    summary = ingest.process_partition(partition, paths, run_id="scheduled__first")
    metrics.build_metrics(partition, paths)
    return summary


def redrop_corrupt(paths, partition: Partition, run_id: str = "scheduled__redrop") -> ingest.DropRefused:
    landing = paths.landing_dir(partition)
    (landing / f"{partition.source}_tripdata_{partition.month}.parquet").write_bytes(b"not a parquet file " * 40)
    copy_to_raw(partition, paths)
    with pytest.raises(ingest.DropRefused) as refused:
        ingest.process_partition(partition, paths, run_id=run_id)
    return refused.value


def test_a_refused_redrop_is_recorded_and_the_good_partition_is_kept(data_root):
    summary = ingest_demo(data_root, GOOD)
    assert refusals.read_refusal(GOOD, data_root) is None
    assert refusals.refusal_outcome(GOOD, data_root)[1] is None  # nothing refused: a plain ingested month
    trips_before = warehouse.trips_file(GOOD, data_root).read_bytes()

    error = redrop_corrupt(data_root, GOOD)
    assert "are kept as they were" in str(error)
    refusal = refusals.read_refusal(GOOD, data_root)
    assert refusal is not None and refusal.new_drop and refusal.run_id == "scheduled__redrop"
    assert refusal.reason.startswith("cannot read green_tripdata_2022-09.parquet as .parquet/.csv/.csv.gz (")
    assert refusal.files == ("green_tripdata_2022-09.parquet",)
    assert "not a parquet" not in json.dumps(refusal.to_json())  # never a file's contents

    kept = refusals.refusal_outcome(GOOD, data_root, run_id="scheduled__redrop")[1]
    assert kept is not None
    assert refusals.iso(kept.ingested_at) == summary["written_at"]
    assert kept.note == (
        f"green 2022-09 as ingested at {refusals.shown(kept.ingested_at)}; a re-drop at "
        f"{refusals.shown(refusal.refused_at)} was refused: {refusal.reason}"
    )
    assert kept.to_json()["note"] == kept.note and kept.to_json()["reason"] == refusal.reason
    assert warehouse.trips_file(GOOD, data_root).read_bytes() == trips_before
    assert refusals.refused_partitions(data_root) == [GOOD]


def test_a_refusal_by_another_run_or_without_metrics_keeps_nothing(data_root):
    ingest_demo(data_root, GOOD)
    redrop_corrupt(data_root, GOOD)
    assert refusals.refusal_outcome(GOOD, data_root, run_id="scheduled__someone_else") == (None, None)
    warehouse.metrics_file(warehouse.HOURLY_BOROUGH, GOOD, data_root).unlink()
    refusal, kept = refusals.refusal_outcome(GOOD, data_root)
    assert refusal is not None and kept is None  # "with metrics" is part of "good"


def test_metrics_older_than_the_partition_were_not_made_from_it(data_root):
    ingest_demo(data_root, GOOD)
    # The partition is rebuilt (from raw) and its metrics are not: then a re-drop is refused.
    ingest.process_partition(GOOD, data_root)
    redrop_corrupt(data_root, GOOD)
    assert refusals.refusal_outcome(GOOD, data_root)[1] is None


def test_a_later_good_ingest_makes_the_refusal_history(data_root):
    ingest_demo(data_root, GOOD)
    redrop_corrupt(data_root, GOOD)
    ingest_demo(data_root, GOOD, trips=300, seed=8)  # a good re-drop: latest attempt succeeded
    assert refusals.refusal_outcome(GOOD, data_root) == (None, None)
    assert refusals.read_refusal(GOOD, data_root) is not None  # still shown as the last refusal


def test_a_month_never_ingested_records_its_refusal_and_keeps_nothing(data_root):
    never = Partition("green", "2022-10")
    generate_month(never.source, never.month, trips=50, paths=data_root)
    error = redrop_corrupt(data_root, never, run_id="scheduled__never")
    assert "nothing had been ingested for this month before" in str(error)
    assert refusals.read_refusal(never, data_root).run_id == "scheduled__never"
    refusal, kept = refusals.refusal_outcome(never, data_root, run_id="scheduled__never")
    assert kept is None and refusal == refusals.read_refusal(never, data_root)
    assert not data_root.trips_dir(never).exists()  # the partition's own folder stays untouched


def test_a_wrong_month_drop_is_recorded_with_its_counts(data_root):
    wrong = Partition("green", "2022-11")
    generate_month(wrong.source, "2022-12", trips=60, paths=data_root, out_dir=data_root.root / "elsewhere")
    landing = data_root.landing_dir(wrong)
    landing.mkdir(parents=True)
    (data_root.root / "elsewhere/green/2022-12/green_tripdata_2022-12.parquet").rename(landing / "trips.parquet")
    (landing / "_SUCCESS").touch()
    copy_to_raw(wrong, data_root)
    with pytest.raises(ingest.DropRefused):
        ingest.process_partition(wrong, data_root)
    reason = refusals.read_refusal(wrong, data_root).reason
    assert reason.startswith("trips.parquet: ") and "have pickups outside 2022-11" in reason
    assert refusals.read_refusal(wrong, data_root).new_drop
