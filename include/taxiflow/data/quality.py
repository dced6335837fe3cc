"""Data quality per source and month: the figures of each partition's ``_summary.json``, the last
refused drop, and the flags an engineer on call should look at.

A month is **flagged** when

* its trips (``rows_written``: what reports count) are under ``LOW_VOLUME`` (50 %) or over
  ``HIGH_VOLUME`` (200 %) of the median of the ingested months among the three calendar months
  before it (a truncated or doubled drop; a month with none of those three ingested is not compared);
* more than ``MAX_REJECTED_SHARE`` (1 %) of its rows read were rejected (no usable pickup time).

The share of ``Unknown`` zones is ``rows_unknown_zone`` over the rows that have a pickup time
(written, or stored elsewhere as outside the month), as ``taxiflow.data.ingest`` counts them.

No Airflow import: the report views (``taxiflow.doors.report_views.quality``) add the ingest runs'
states and serve the page and its JSON.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from statistics import median
from typing import Any

from taxiflow.config import DataPaths, Partition, format_month, parse_month
from taxiflow.data import refusals, warehouse
from taxiflow.data.refusals import Refusal, iso, parse_time
from taxiflow.data.storage import data_paths

LOW_VOLUME = 0.5
HIGH_VOLUME = 2.0
MAX_REJECTED_SHARE = 0.01
COMPARED_MONTHS = 3
READERS = 16  # summaries read at once

RULES = {
    "low_volume": LOW_VOLUME, "high_volume": HIGH_VOLUME, "max_rejected_share": MAX_REJECTED_SHARE,
    "compared_months": COMPARED_MONTHS,
    "volume": "rows_written against the median of the ingested months among the three calendar months before",
}


@dataclass(frozen=True)
class MonthQuality:
    """What one source's month holds, what was refused, and what looks wrong."""

    source: str
    month: str
    rows_read: int | None = None  # None: no complete partition
    rows_written: int | None = None
    rows_rejected: int | None = None
    rows_outside_month: int | None = None
    rows_unknown_zone: int | None = None
    ingested_at: datetime | None = None
    refusal: Refusal | None = None  # the last refused drop, if any
    compared_with: tuple[str, ...] = ()  # the months whose median the volume was compared with
    median_rows: float | None = None
    flags: tuple[str, ...] = field(default=())

    @property
    def partition(self) -> Partition:
        return Partition(self.source, self.month)

    @property
    def ingested(self) -> bool:
        return self.rows_written is not None

    @property
    def refused_after_ingest(self) -> bool:
        """The latest attempt was refused: no partition, or the refusal came after it."""
        if self.refusal is None:
            return False
        return self.ingested_at is None or self.refusal.refused_at >= self.ingested_at

    @property
    def rejected_share(self) -> float | None:
        if not self.rows_read or self.rows_rejected is None:
            return None
        return self.rows_rejected / self.rows_read

    @property
    def unknown_zone_share(self) -> float | None:
        placed = (self.rows_read or 0) - (self.rows_rejected or 0)
        if not placed or self.rows_unknown_zone is None:
            return None
        return self.rows_unknown_zone / placed

    def to_json(self) -> dict[str, Any]:
        refusal = None
        if self.refusal is not None:
            refusal = {"refused_at": iso(self.refusal.refused_at), "reason": self.refusal.reason,
                       "files": list(self.refusal.files), "run_id": self.refusal.run_id,
                       "after_ingest": self.refused_after_ingest}
        return {
            "source": self.source, "month": self.month, "ingested": self.ingested,
            "rows_read": self.rows_read, "rows_written": self.rows_written, "rows_rejected": self.rows_rejected,
            "rows_outside_month": self.rows_outside_month, "rows_unknown_zone": self.rows_unknown_zone,
            "rejected_share": _rounded(self.rejected_share), "unknown_zone_share": _rounded(self.unknown_zone_share),
            "ingested_at": iso(self.ingested_at) if self.ingested_at else None,
            "last_refusal": refusal, "compared_with": list(self.compared_with),
            "median_rows_compared": self.median_rows, "flags": list(self.flags), "flagged": bool(self.flags),
        }


def _rounded(share: float | None) -> float | None:
    return None if share is None else round(share, 6)


def from_summary(partition: Partition, summary: dict[str, Any] | None, refusal: Refusal | None) -> MonthQuality:
    """A month's figures from its ``_summary.json`` (None: never ingested) and its last refusal."""
    if summary is None:
        return MonthQuality(partition.source, partition.month, refusal=refusal)
    return MonthQuality(
        partition.source, partition.month,
        rows_read=int(summary["rows_read"]), rows_written=int(summary["rows_written"]),
        rows_rejected=int(summary["rows_rejected"]), rows_outside_month=int(summary["rows_outside_month"]),
        rows_unknown_zone=int(summary.get("rows_unknown_zone") or 0),
        ingested_at=parse_time(summary["written_at"]), refusal=refusal,
    )


def previous_months(month: str, count: int = COMPARED_MONTHS) -> list[str]:
    """The ``count`` calendar months before ``month``, nearest first."""
    first = parse_month(month)
    found = []
    year, number = first.year, first.month
    for _ in range(count):
        year, number = (year - 1, 12) if number == 1 else (year, number - 1)
        found.append(format_month(first.replace(year=year, month=number)))
    return found


def with_flags(months: Iterable[MonthQuality]) -> list[MonthQuality]:
    """Each month with its volume comparison and flags (see the module docstring), same order."""
    months = list(months)
    written = {(m.source, m.month): m.rows_written for m in months if m.rows_written is not None}
    flagged = []
    for item in months:
        flags = []
        compared: list[str] = []
        middle = None
        if item.rows_written is not None:
            compared = [m for m in previous_months(item.month) if (item.source, m) in written]
            if compared:
                middle = float(median(written[item.source, m] for m in compared))
                if item.rows_written < LOW_VOLUME * middle:
                    flags.append(_volume_flag(item.rows_written, middle, compared, "under", LOW_VOLUME))
                elif item.rows_written > HIGH_VOLUME * middle:
                    flags.append(_volume_flag(item.rows_written, middle, compared, "over", HIGH_VOLUME))
        share = item.rejected_share
        if share is not None and share > MAX_REJECTED_SHARE:
            flags.append(f"{item.rows_rejected:,} of {item.rows_read:,} rows rejected ({share:.2%}), "
                         f"over {MAX_REJECTED_SHARE:.0%}")
        flagged.append(replace(item, compared_with=tuple(sorted(compared)), median_rows=middle, flags=tuple(flags)))
    return flagged


def _volume_flag(rows: int, middle: float, compared: Sequence[str], word: str, limit: float) -> str:
    months = ", ".join(sorted(compared))
    return (f"{rows:,} trips, {rows / middle:.0%} of the median {middle:,.0f} of {months}: "
            f"{word} {limit:.0%}")


def month_figures(paths: DataPaths | None = None) -> list[MonthQuality]:
    """Every source and month with a complete partition or a refused drop, flagged; by source, month."""
    from concurrent.futures import ThreadPoolExecutor

    paths = paths or data_paths()
    partitions = sorted(set(warehouse.published_partitions(paths)) | set(refusals.refused_partitions(paths)))

    def read(partition: Partition) -> MonthQuality:
        return from_summary(partition, warehouse.partition_summary(partition, paths),
                            refusals.read_refusal(partition, paths))

    # Two small reads per month: in an object store each is a round trip, so read them side by side.
    with ThreadPoolExecutor(max_workers=READERS) as pool:
        return with_flags(pool.map(read, partitions))
