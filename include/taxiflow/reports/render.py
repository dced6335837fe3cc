"""Rendering a report: the stacked bar chart (PNG) and the numbers behind it (CSV).

Where a report lands is defined in ``taxiflow.reports.outputs`` (one folder per report,
``outputs/<name>/``: the PNG and CSV under a version prefix, then ``manifest.json`` naming them).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any

from taxiflow.config import DAY_NAMES, DataPaths
from taxiflow.data.storage import DataPath, data_paths
from taxiflow.reports.outputs import MANIFEST_FILE, publish_report
from taxiflow.reports.params import families_counted
from taxiflow.reports.query import CSV_COLUMNS, HOURS, report_counts
from taxiflow.reports.request import ReportRequest

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure


# Okabe-Ito: seven hues that stay distinct for colour-blind readers and in greyscale print.
DAY_COLOURS: tuple[str, ...] = (
    "#D55E00",  # Sunday, vermillion
    "#0072B2",  # Monday, blue
    "#56B4E9",  # Tuesday, sky blue
    "#009E73",  # Wednesday, bluish green
    "#F0E442",  # Thursday, yellow
    "#CC79A7",  # Friday, reddish purple
    "#E69F00",  # Saturday, orange
)


@dataclass(frozen=True)
class ReportOutputs:
    """Where one published report's files are: ``folder/manifest.json`` names ``folder/version/``'s PNG and CSV."""

    png: DataPath
    csv: DataPath
    total_trips: int
    folder: DataPath
    manifest: DataPath
    version: str
    manifest_document: dict[str, Any]  # what ``manifest`` says: what was published, as it was written


def _day_words(day: date) -> str:
    return f"{day.day} {day:%b %Y}"


def report_title(request: ReportRequest) -> str:
    """``Trips starting in Manhattan by hour and day of week, 18 Dec 2023 – 7 Jan 2024``."""
    first, last = request.start_date, request.last_day
    span = _day_words(first) if first == last else f"{_day_words(first)} – {_day_words(last)}"
    return f"Trips starting in {request.borough} by hour and day of week, {span}"


def report_subtitle(request: ReportRequest, total_trips: int) -> str:
    """``Yellow taxi + green taxi records (for-hire vehicles ... not counted)  ·  1,234 trips in total``."""
    counted = families_counted(request.sources).replace(" (", " records (", 1)
    noun = "trip" if total_trips == 1 else "trips"
    return f"{counted[0].upper()}{counted[1:]}  ·  {total_trips:,} {noun} in total"


def _count_labels(ticks: Sequence[float]) -> list[str]:
    """Short axis labels in one unit for the whole axis: 0, 20k, 40k or 0, 0.5M, 1M."""
    top = max(ticks, default=0)
    scale, unit = (1_000_000, "M") if top >= 1_000_000 else (1_000, "k") if top >= 10_000 else (1, "")
    return ["0" if tick == 0 else f"{tick / scale:,.4g}{unit}" for tick in ticks]


def render_borough_chart(request: ReportRequest, counts: pd.DataFrame) -> Figure:
    """Stacked bars: hour of day on x, one segment per day of week (Sunday at the bottom).

    Drawn lean, because the chart costs more than the whole metrics query: a fixed 1200x700
    layout, one polygon collection per day instead of 168 bar patches, and plain text labels and
    grid lines instead of matplotlib's tick, legend and auto-layout machinery.
    """
    import numpy as np
    from matplotlib.collections import PolyCollection
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle
    from matplotlib.ticker import MaxNLocator
    from matplotlib.transforms import blended_transform_factory

    grid = counts.pivot(index="hour_of_day", columns="day_of_week", values="num_trips")
    grid = grid.reindex(index=list(HOURS), columns=list(DAY_NAMES), fill_value=0)
    values = grid.to_numpy(dtype=float)  # 24 hours x 7 days
    total = int(values.sum())
    tops = values.cumsum(axis=1)
    bottoms = tops - values
    y_max = tops[:, -1].max() * 1.05 if total else 1.0

    fig = Figure(figsize=(12, 7), dpi=100, facecolor="white")
    left, bottom, width, height = 0.065, 0.095, 0.92, 0.74
    ax = fig.add_axes((left, bottom, width, height))
    ax.set_axis_off()
    ax.set_xlim(-0.6, 23.6)
    ax.set_ylim(0, y_max)
    x_data_y_axes = blended_transform_factory(ax.transData, ax.transAxes)
    x_axes_y_data = blended_transform_factory(ax.transAxes, ax.transData)
    muted = "#555555"

    y_ticks = [tick for tick in MaxNLocator(nbins=7, integer=True).tick_values(0, y_max) if 0 <= tick <= y_max]
    ax.hlines(y_ticks[1:], -0.6, 23.6, colors="#DDDDDD", linewidths=0.8, zorder=0)
    ax.hlines([0], -0.6, 23.6, colors="#888888", linewidths=1.0, zorder=4)
    for tick, label in zip(y_ticks, _count_labels(y_ticks), strict=True):
        ax.text(-0.008, tick, label, transform=x_axes_y_data, ha="right", va="center", fontsize=10)
    for hour in HOURS:
        ax.text(hour, -0.012, f"{hour:02d}", transform=x_data_y_axes, ha="center", va="top", fontsize=10)
    ax.text(0.5, -0.065, "Hour of day (pickup, New York time)", transform=ax.transAxes,
            ha="center", va="top", fontsize=11)
    ax.text(-0.058, 0.5, "Trips", transform=ax.transAxes, rotation=90, ha="center", va="center", fontsize=11)

    half_width = 0.4
    x = np.asarray(HOURS, dtype=float)
    for day_index, colour in enumerate(DAY_COLOURS):
        low, high = bottoms[:, day_index], tops[:, day_index]
        verts = np.stack(
            [np.column_stack([x - half_width, low]), np.column_stack([x - half_width, high]),
             np.column_stack([x + half_width, high]), np.column_stack([x + half_width, low])],
            axis=1,
        )
        ax.add_collection(
            PolyCollection(list(verts), facecolors=colour, edgecolors="white", linewidths=0.4, zorder=3),
            autolim=False,
        )
    if total == 0:
        ax.text(0.5, 0.5, "No trips in this range", transform=ax.transAxes,
                ha="center", va="center", fontsize=14, color="#666666")

    # Title, subtitle and legend hang off the plot's left edge, so they line up with each other.
    top = bottom + height
    fig.text(left, top + 0.118, report_title(request), ha="left", va="baseline", fontsize=15, fontweight="bold")
    fig.text(left, top + 0.077, report_subtitle(request, total), ha="left", va="baseline", fontsize=11, color=muted)
    slot, key_w, key_h, legend_y = 0.105, 0.0117, 0.0157, top + 0.03
    for index, (day, colour) in enumerate(zip(DAY_NAMES, DAY_COLOURS, strict=True)):
        x0 = left + index * slot
        fig.patches.append(
            Rectangle((x0, legend_y - key_h / 2), key_w, key_h, transform=fig.transFigure, facecolor=colour,
                      figure=fig)
        )
        fig.text(x0 + key_w + 0.006, legend_y, day, ha="left", va="center", fontsize=10)
    return fig


def write_report_files(
    request: ReportRequest,
    counts: pd.DataFrame,
    paths: DataPaths | None = None,
    run_id: str | None = None,
    owner: str | None = None,
    ingest_notes: list[dict[str, Any]] | None = None,
) -> ReportOutputs:
    """Publish ``outputs/<name>/`` (PNG, CSV, manifest) from a 168-row counts frame, all at once.

    Refuses (``InvalidRequest`` on ``name``) to replace a folder that holds a different request's
    report, unless both have the same non-empty ``owner`` (a request file edited in place).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from PIL import Image  # matplotlib's own PNG writer

    paths = paths or data_paths()
    total = int(counts["num_trips"].sum())
    fig = render_borough_chart(request, counts)
    canvas = FigureCanvasAgg(fig)  # Agg for this figure only; pyplot and the global backend stay untouched
    canvas.draw()
    # Opaque RGB at a low zlib level: flat colours compress well, for a fraction of the default's time.
    image = Image.frombuffer("RGBA", canvas.get_width_height(), canvas.buffer_rgba(), "raw", "RGBA", 0, 1)
    png = io.BytesIO()
    image.convert("RGB").save(png, format="PNG", compress_level=1)
    csv_text = counts.loc[:, list(CSV_COLUMNS)].to_csv(index=False, lineterminator="\n")
    published = publish_report(
        request, png.getvalue(), csv_text.encode("utf-8"), total, paths, run_id=run_id, owner=owner,
        ingest_notes=ingest_notes,
    )
    return ReportOutputs(
        png=published.file("png"), csv=published.file("csv"), total_trips=total,
        folder=published.folder, manifest=published.folder / MANIFEST_FILE, version=published.version,
        manifest_document=published.manifest,
    )


def render_report(
    request: ReportRequest,
    paths: DataPaths | None = None,
    run_id: str | None = None,
    owner: str | None = None,
    ingest_notes: list[dict[str, Any]] | None = None,
) -> ReportOutputs:
    """Count the request's trips and publish its PNG and CSV as ``outputs/<name>/``.

    ``ingest_notes`` (what the gate found: kept partitions in use) go into the manifest.
    """
    paths = paths or data_paths()
    return write_report_files(request, report_counts(request, paths), paths, run_id=run_id, owner=owner,
                              ingest_notes=ingest_notes)
