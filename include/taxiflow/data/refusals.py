"""Refused drops on record, and the good partition a refusal leaves in use.

When ``process_partition`` refuses a drop it writes a refusal record beside the partitions, in
``warehouse/refusals/source=<source>/<YYYY-MM>.json`` (through ``taxiflow.data.storage``: local disk
or S3; outside the partition's own folder, so a refused first drop writes nothing there). It holds
the latest refusal of that partition: when, why (the problem alone, never
a file's contents), the files refused, and the ingest run that tried. A later successful ingest
leaves it in place as history: its ``_summary.json`` is then newer, and the refusal no longer counts.

``refusal_outcome`` answers the question a report's gate asks when a month's latest ingest failed:
was it a refused re-drop over a good partition that has its metrics? Only then may reports use the
partition, and say so with ``KeptPartition.note``. A month never ingested successfully has no
summary, so nothing is kept and its reports still fail.

No Airflow import.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from taxiflow.config import DataPaths, Partition
from taxiflow.data import storage, warehouse
from taxiflow.data.storage import data_paths

REFUSALS_DIR = "refusals"


@dataclass(frozen=True)
class Refusal:
    """The latest refused drop of one partition."""

    source: str
    month: str
    refused_at: datetime
    reason: str  # what was wrong with the drop, e.g. "cannot read x.parquet as .parquet/.csv/.csv.gz"
    files: tuple[str, ...] = ()
    run_id: str | None = None
    new_drop: bool = True  # a new drop was refused (False: rebuilding from the raw copy failed)

    def to_json(self) -> dict[str, Any]:
        return {"source": self.source, "month": self.month, "refused_at": iso(self.refused_at),
                "reason": self.reason, "files": list(self.files), "run_id": self.run_id, "new_drop": self.new_drop}

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> Refusal:
        return cls(
            source=str(document["source"]), month=str(document["month"]),
            refused_at=parse_time(document["refused_at"]), reason=str(document["reason"]),
            files=tuple(document.get("files") or ()), run_id=document.get("run_id"),
            new_drop=bool(document.get("new_drop", True)),
        )


def refusal_file(partition: Partition, paths: DataPaths | None = None) -> storage.DataPath:
    """``warehouse/refusals/source=<source>/<YYYY-MM>.json``: the latest refusal of one partition."""
    return (paths or data_paths()).warehouse / REFUSALS_DIR / f"source={partition.source}" / f"{partition.month}.json"


def refused_partitions(paths: DataPaths | None = None) -> list[Partition]:
    """Every partition with a refusal on record, sorted (files of another shape are ignored)."""
    found = []
    for path in storage.glob((paths or data_paths()).warehouse / REFUSALS_DIR, "source=*/*.json"):
        try:
            found.append(Partition(path.parent.name.removeprefix("source="), path.name.removesuffix(".json")))
        except ValueError:
            continue
    return sorted(found)


def record_refusal(
    partition: Partition, reason: str, files: list[str], *, new_drop: bool, run_id: str | None = None,
    paths: DataPaths | None = None,
) -> Refusal:
    """Write the refusal record of ``partition`` (replacing the previous one, whole); returns it."""
    refusal = Refusal(partition.source, partition.month, datetime.now(UTC), reason, tuple(files), run_id, new_drop)
    storage.write_bytes(refusal_file(partition, paths),
                        (json.dumps(refusal.to_json(), indent=2) + "\n").encode("utf-8"))
    return refusal


def read_refusal(partition: Partition, paths: DataPaths | None = None) -> Refusal | None:
    """The latest refusal of ``partition``, or None if none was ever recorded."""
    path = refusal_file(partition, paths)
    storage.refresh(path.parent)
    try:
        return Refusal.from_json(json.loads(path.read_bytes()))
    except FileNotFoundError:
        return None


@dataclass(frozen=True)
class KeptPartition:
    """A good partition (with metrics) still in use after its latest re-drop was refused."""

    partition: Partition
    ingested_at: datetime
    refusal: Refusal

    @property
    def note(self) -> str:
        """``green 2023-12 as ingested at 2024-01-02 03:04:05 UTC; a re-drop at ... was refused: <why>``."""
        return (f"{self.partition} as ingested at {shown(self.ingested_at)}; a re-drop at "
                f"{shown(self.refusal.refused_at)} was refused: {self.refusal.reason}")

    def to_json(self) -> dict[str, Any]:
        """What a report's manifest records of it."""
        return {"source": self.partition.source, "month": self.partition.month,
                "ingested_at": iso(self.ingested_at), "refused_at": iso(self.refusal.refused_at),
                "reason": self.refusal.reason, "note": self.note}


def refusal_outcome(
    partition: Partition, paths: DataPaths | None = None, run_id: str | None = None
) -> tuple[Refusal | None, KeptPartition | None]:
    """The latest refusal of ``partition`` (by ``run_id``, if given), and the partition reports may
    still use in spite of it; (None, None) when nothing was refused since the partition was written.

    A partition is kept when all of these hold: it is complete (its ``_summary.json``), its
    ``hourly_borough`` metrics were written after that summary (so they were made from it), and the
    refusal was recorded after it (the latest attempt was refused).
    """
    paths = paths or data_paths()
    refusal = read_refusal(partition, paths)
    if refusal is None or (run_id is not None and refusal.run_id not in (None, run_id)):
        return None, None
    summary = warehouse.partition_summary(partition, paths)
    if summary is None:
        return refusal, None  # never ingested successfully
    # Which came last is read from the storage's own clock (nanoseconds on disk), not the documents'.
    try:
        summary_written = storage.info(warehouse.summary_file(partition, paths))["modified"]
        if storage.info(refusal_file(partition, paths))["modified"] < summary_written:
            return None, None  # a later ingest succeeded: the refusal is history
        metrics = warehouse.metrics_file(warehouse.HOURLY_BOROUGH, partition, paths)
        if storage.info(metrics)["modified"] < summary_written:
            return refusal, None  # the metrics were made from an older partition
    except FileNotFoundError:
        return refusal, None  # no metrics (or the files changed while we looked)
    return refusal, KeptPartition(partition, parse_time(summary["written_at"]), refusal)


def parse_time(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def shown(moment: datetime) -> str:
    """How a time is shown to people: ``2024-01-02 03:04:05 UTC``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
