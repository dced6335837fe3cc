"""Where a report's published files are, and reading them back: the one place readers look.

The report views (``taxiflow.doors.report_views``), the benchmarks and the tests find a report's
chart and numbers through :func:`published_report`, never by building paths themselves, so the
output layout can change in one place. Every path comes from a validated ``ReportRequest`` (whose
``name`` cannot hold a separator or a dot) and is checked to lie directly inside ``outputs/``.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

from taxiflow.config import DataPaths, data_paths
from taxiflow.reports.request import ReportRequest


@dataclass(frozen=True)
class PublishedReport:
    """A report's chart and the CSV behind it, both present on disk."""

    png: Path
    csv: Path


@dataclass(frozen=True)
class ReportNumbers:
    """The CSV's cells: ``(hour_of_day, day_of_week, num_trips)`` rows and their total."""

    rows: list[tuple[int, str, int]]

    @property
    def total(self) -> int:
        return sum(count for _, _, count in self.rows)


def _inside(path: Path, folder: Path) -> bool:
    return path.resolve().parent == folder.resolve()


def published_report(request: ReportRequest, paths: DataPaths | None = None) -> PublishedReport | None:
    """The request's PNG and CSV if both are published, else ``None``; never a path outside outputs."""
    paths = paths or data_paths()
    png = paths.outputs / f"{request.name}.png"
    csv_path = paths.outputs / f"{request.name}.csv"
    for path in (png, csv_path):
        if path.is_symlink() or not path.is_file() or not _inside(path, paths.outputs):
            return None
    return PublishedReport(png=png, csv=csv_path)


def read_numbers(report: PublishedReport) -> ReportNumbers:
    """The report's CSV as typed rows (``hour_of_day,day_of_week,num_trips``)."""
    reader = csv.DictReader(io.StringIO(report.csv.read_text(encoding="utf-8")))
    return ReportNumbers(
        rows=[(int(row["hour_of_day"]), row["day_of_week"], int(row["num_trips"])) for row in reader]
    )
