"""Borough reports: trips by hour of day and day of week, as a CSV and a stacked bar chart.

A request arrives as a mapping (Airflow conf, a JSON request file, a REST body, CLI flags) and is
validated once, here, into a ``ReportRequest``; every door reports a bad field with the same
``InvalidRequest`` message. The counts come from the small ``hourly_borough`` metrics table, never
from raw trips, so a report costs the same whether the warehouse holds one month or ten years.

Light at import time on purpose (no pandas, DuckDB or matplotlib until a report is computed): DAG
files import ``taxiflow.params`` (the JSON-schema side of the same rules) at parse time.
"""

from __future__ import annotations

import os
import re
import tempfile
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from taxiflow.config import (
    BOROUGHS,
    DAY_NAMES,
    FIRST_MONTH,
    MONTH_PATTERN,
    SOURCE_NAMES,
    SOURCES,
    DataPaths,
    data_paths,
    months_covering,
)
from taxiflow.params import DATE_PATTERN, NAME_PATTERN, RESERVED_NAME_PREFIX, report_param_schemas  # noqa: F401  (re-exported)

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

METRICS_TABLE = "hourly_borough"
METRICS_FILE = "part.parquet"
CSV_COLUMNS = ("hour_of_day", "day_of_week", "num_trips")
HOURS = tuple(range(24))

# The keys a request may carry, in the order forms and messages list them.
REQUEST_KEYS: tuple[str, ...] = ("borough", "start_date", "end_date", "sources", "name")

# ``\Z``-anchored in Python (``$`` would accept a trailing newline); JSON schema anchors ``$`` at the end.
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,79}")
_DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_MONTH_DIR_RE = re.compile(MONTH_PATTERN)

NAME_ALLOWED = (
    "1-80 letters, digits, '-' or '_', starting with a letter or digit (no dots or slashes), "
    f"not starting with '{RESERVED_NAME_PREFIX}'"
)
DATE_ALLOWED = f"a date as YYYY-MM-DD, on or after {FIRST_MONTH.isoformat()}"
SOURCES_ALLOWED = (
    f"a list of distinct values from {', '.join(SOURCE_NAMES)}; empty or null means all"
)



class InvalidRequest(ValueError):
    """A request field with a value that is not allowed; the one place report input errors are worded.

    ``field`` names the field (``"conf"`` for the request as a whole), ``value`` is what arrived and
    ``allowed`` the allowed values (a tuple) or a description of them (a string).
    """

    def __init__(
        self,
        field: str,
        value: Any,
        allowed: Sequence[str] | str,
        problem: str | None = None,
        allowed_label: str = "allowed values",
    ) -> None:
        self.field = field
        self.value = value
        self.allowed = allowed if isinstance(allowed, str) else tuple(allowed)
        allowed_text = self.allowed if isinstance(self.allowed, str) else ", ".join(self.allowed)
        problem = problem if problem is not None else f"{value!r} is not allowed"
        self.message = f"{field}: {problem}; {allowed_label}: {allowed_text}"
        super().__init__(self.message)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form for REST error bodies."""
        allowed = self.allowed if isinstance(self.allowed, str) else list(self.allowed)
        value = self.value if isinstance(self.value, (str, int, float, bool, type(None))) else repr(self.value)
        return {"field": self.field, "value": value, "allowed": allowed, "message": self.message}


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def default_name(borough: str, start_date: date, end_date: date) -> str:
    """``staten-island_2024-01-01_2024-02-01``: the output stem when a request names none."""
    return f"{_slug(borough)}_{start_date.isoformat()}_{end_date.isoformat()}"


def _check_borough(value: Any) -> str:
    if value is None:
        raise InvalidRequest("borough", value, BOROUGHS, problem="is required")
    if not isinstance(value, str) or value not in BOROUGHS:
        raise InvalidRequest("borough", value, BOROUGHS)
    return value


def _parse_date(field: str, value: Any) -> date:
    if value is None:
        raise InvalidRequest(field, value, DATE_ALLOWED, problem="is required")
    if isinstance(value, datetime):
        # A timestamp would silently drop its time of day (and zone); make the caller say a day.
        raise InvalidRequest(field, value, DATE_ALLOWED, problem=f"{value.isoformat()!r} is not a date")
    if isinstance(value, date):
        parsed = value
    elif isinstance(value, str) and _DATE_RE.fullmatch(value):
        try:
            parsed = date.fromisoformat(value)
        except ValueError:
            raise InvalidRequest(
                field, value, DATE_ALLOWED, problem=f"{value!r} is not a calendar date"
            ) from None
    else:
        raise InvalidRequest(field, value, DATE_ALLOWED, problem=f"{value!r} is not a YYYY-MM-DD date")
    if parsed < FIRST_MONTH:
        raise InvalidRequest(
            field,
            value,
            DATE_ALLOWED,
            problem=f"{parsed.isoformat()!r} is before TLC's first trip records",
        )
    return parsed


def _parse_sources(value: Any) -> tuple[str, ...]:
    if value is None:
        return SOURCE_NAMES
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise InvalidRequest("sources", value, SOURCES_ALLOWED, problem=f"{value!r} is not a list")
    if len(value) == 0:
        return SOURCE_NAMES
    seen: set[str] = set()
    for item in value:
        if not isinstance(item, str) or item not in SOURCES:
            raise InvalidRequest(
                "sources", value, SOURCES_ALLOWED, problem=f"{item!r} is not a known source"
            )
        if item in seen:
            raise InvalidRequest("sources", value, SOURCES_ALLOWED, problem=f"{item!r} is listed twice")
        seen.add(item)
    # One canonical order, so equal requests compare equal and name the same sources the same way.
    return tuple(name for name in SOURCE_NAMES if name in seen)


def _check_name(value: Any) -> str:
    if not isinstance(value, str) or not _NAME_RE.fullmatch(value):
        raise InvalidRequest("name", value, NAME_ALLOWED)
    if value.startswith(RESERVED_NAME_PREFIX):
        raise InvalidRequest(
            "name", value, NAME_ALLOWED,
            problem=f"{value!r} starts with {RESERVED_NAME_PREFIX!r}, reserved for the weekly summaries",
        )
    return value


@dataclass(frozen=True)
class ReportRequest:
    """A validated report request: trips starting in ``borough`` on days in ``[start_date, end_date)``.

    Constructing one directly validates it too, so code holding a ``ReportRequest`` can trust it.
    """

    borough: str
    start_date: date
    end_date: date
    sources: tuple[str, ...] = SOURCE_NAMES
    name: str | None = None

    def __post_init__(self) -> None:
        _check_borough(self.borough)
        start = _parse_date("start_date", self.start_date)
        end = _parse_date("end_date", self.end_date)
        if end <= start:
            raise InvalidRequest(
                "end_date",
                self.end_date,
                f"a date after start_date {start.isoformat()} (the end day is not included)",
                problem=(
                    f"{end.isoformat()!r} is not after start_date {start.isoformat()!r}"
                ),
            )
        sources = _parse_sources(self.sources)
        name = default_name(self.borough, start, end) if self.name is None else _check_name(self.name)
        object.__setattr__(self, "start_date", start)
        object.__setattr__(self, "end_date", end)
        object.__setattr__(self, "sources", sources)
        object.__setattr__(self, "name", name)

    @classmethod
    def from_conf(cls, conf: Mapping[str, Any] | None) -> ReportRequest:
        """Validate a mapping as it arrives from conf/JSON; raises ``InvalidRequest`` naming the field."""
        if conf is None:
            conf = {}
        if not isinstance(conf, Mapping):
            raise InvalidRequest(
                "conf", conf, REQUEST_KEYS, problem=f"{conf!r} is not an object", allowed_label="allowed keys"
            )
        unknown = [key for key in conf if key not in REQUEST_KEYS]
        if unknown:
            listed = ", ".join(repr(key) for key in unknown)
            raise InvalidRequest(
                "conf",
                unknown[0] if len(unknown) == 1 else unknown,
                REQUEST_KEYS,
                problem=f"unknown key{'s' if len(unknown) > 1 else ''} {listed}",
                allowed_label="allowed keys",
            )
        name = conf.get("name")
        if name == "":
            name = None  # an empty form field means "use the default name"
        return cls(
            borough=_check_borough(conf.get("borough")),
            start_date=_parse_date("start_date", conf.get("start_date")),
            end_date=_parse_date("end_date", conf.get("end_date")),
            sources=_parse_sources(conf.get("sources")),
            name=name,
        )

    def to_conf(self) -> dict[str, Any]:
        """The JSON-safe mapping ``from_conf`` accepts; round-trips to an equal request."""
        return {
            "borough": self.borough,
            "start_date": self.start_date.isoformat(),
            "end_date": self.end_date.isoformat(),
            "sources": list(self.sources),
            "name": self.name,
        }

    @property
    def months(self) -> list[str]:
        """The months ``YYYY-MM`` the date range touches (what the ingest gate waits for)."""
        return months_covering(self.start_date, self.end_date)

    @property
    def last_day(self) -> date:
        """The last day included in the range (``end_date`` is excluded)."""
        return date.fromordinal(self.end_date.toordinal() - 1)




# --- Counting -------------------------------------------------------------------------------------


def metrics_partitions(source: str, paths: DataPaths, table: str = METRICS_TABLE) -> list[Path]:
    """Every existing ``part.parquet`` of one source's metrics table, oldest month first.

    Paths are built by ``DataPaths.metrics_dir`` from a validated source and month folder names that
    match ``YYYY-MM``; nothing a user typed is ever joined into a path or a glob.
    """
    if source not in SOURCES:
        raise InvalidRequest("sources", source, SOURCES_ALLOWED, problem=f"{source!r} is not a known source")
    source_dir = paths.metrics_dir(table, source, "0000-01").parent  # config owns the layout
    if not source_dir.is_dir():
        return []
    months = sorted(
        entry.name.removeprefix("month=")
        for entry in source_dir.iterdir()
        if entry.name.startswith("month=") and _MONTH_DIR_RE.match(entry.name.removeprefix("month="))
    )
    files = (paths.metrics_dir(table, source, month) / METRICS_FILE for month in months)
    return [file for file in files if file.is_file()]


def empty_counts() -> pd.DataFrame:
    """The 168-row grid (hour of day x day of week) with every count zero."""
    return _counts_frame([0] * (len(HOURS) * len(DAY_NAMES)))


def _counts_frame(num_trips) -> pd.DataFrame:
    import numpy as np
    import pandas as pd

    return pd.DataFrame(
        {
            "hour_of_day": np.repeat(np.arange(len(HOURS), dtype=np.int64), len(DAY_NAMES)),
            "day_of_week": list(DAY_NAMES) * len(HOURS),
            "num_trips": np.asarray(num_trips, dtype=np.int64),
        }
    )


# One in-memory DuckDB per process, opened on first use: creating a database costs more than a
# report's whole query, and a process that renders several reports (the request DAG, tests, the
# benchmark) should pay it once. Each query gets its own cursor (a connection of its own); a fork
# gets a fresh database, since a DuckDB instance must not cross fork().
_database: Any = None
_database_pid: int | None = None
_database_lock = threading.Lock()


def _cursor():
    global _database, _database_pid
    from taxiflow.warehouse import duckdb_connection

    with _database_lock:
        if _database is None or _database_pid != os.getpid():
            _database = duckdb_connection()
            _database_pid = os.getpid()
        return _database.cursor()


_COUNT_SQL = """
    SELECT pickup_hour::INTEGER AS hour_of_day,
           dayofweek(pickup_date)::INTEGER AS day_index,  -- 0 = Sunday, as DAY_NAMES
           sum(trips)::BIGINT AS num_trips
    FROM read_parquet(?)
    WHERE borough = ? AND pickup_date >= ? AND pickup_date < ?
    GROUP BY ALL
"""


def report_counts(request: ReportRequest, paths: DataPaths | None = None) -> pd.DataFrame:
    """Trips per hour of day and day of week: 168 rows, zeros included, hour then Sunday..Saturday.

    Reads every ``hourly_borough`` partition of the requested sources (a month's partition may hold
    late or early pickups of other days) and keeps pickup dates in ``[start_date, end_date)``.
    Missing partitions count as zero trips.
    """
    paths = paths or data_paths()
    files = [str(file) for source in request.sources for file in metrics_partitions(source, paths)]
    if not files:
        return empty_counts()
    cursor = _cursor()
    try:
        rows = cursor.execute(
            _COUNT_SQL, [files, request.borough, request.start_date, request.end_date]
        ).fetchall()
    finally:
        cursor.close()
    num_trips = [0] * (len(HOURS) * len(DAY_NAMES))
    for hour, day, trips in rows:
        num_trips[hour * len(DAY_NAMES) + day] = int(trips)
    return _counts_frame(num_trips)


# --- Rendering ------------------------------------------------------------------------------------

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
    png: Path
    csv: Path
    total_trips: int


def _day_words(day: date) -> str:
    return f"{day.day} {day:%b %Y}"


def report_title(request: ReportRequest) -> str:
    """``Trips starting in Manhattan by hour and day of week, 18 Dec 2023 – 7 Jan 2024``."""
    first, last = request.start_date, request.last_day
    span = _day_words(first) if first == last else f"{_day_words(first)} – {_day_words(last)}"
    return f"Trips starting in {request.borough} by hour and day of week, {span}"


def report_subtitle(request: ReportRequest, total_trips: int) -> str:
    labels = " + ".join(SOURCES[source].label.lower() for source in request.sources)
    noun = "trip" if total_trips == 1 else "trips"
    return f"{labels[0].upper()}{labels[1:]} records  ·  {total_trips:,} {noun} in total"


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
    for tick, label in zip(y_ticks, _count_labels(y_ticks)):
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
            PolyCollection(verts, facecolors=colour, edgecolors="white", linewidths=0.4, zorder=3),
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
    for index, (day, colour) in enumerate(zip(DAY_NAMES, DAY_COLOURS)):
        x0 = left + index * slot
        fig.patches.append(
            Rectangle((x0, legend_y - key_h / 2), key_w, key_h, transform=fig.transFigure, facecolor=colour,
                      figure=fig)
        )
        fig.text(x0 + key_w + 0.006, legend_y, day, ha="left", va="center", fontsize=10)
    return fig


def _replace_atomically(target: Path, write) -> None:
    """Write through ``write(file)`` to a temp file next to ``target``, then rename it into place."""
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            write(file)
        os.chmod(temp_name, 0o644)  # mkstemp makes 0600; reports are for whoever reads outputs/
        os.replace(temp_name, target)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise


def write_report_files(
    request: ReportRequest, counts: pd.DataFrame, paths: DataPaths | None = None
) -> ReportOutputs:
    """Write ``outputs/<name>.csv`` and ``outputs/<name>.png`` from a 168-row counts frame."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from PIL import Image  # matplotlib's own PNG writer

    paths = paths or data_paths()
    csv_path = paths.outputs / f"{request.name}.csv"
    png_path = paths.outputs / f"{request.name}.png"
    total = int(counts["num_trips"].sum())

    fig = render_borough_chart(request, counts)
    canvas = FigureCanvasAgg(fig)  # Agg for this figure only; pyplot and the global backend stay untouched
    canvas.draw()
    # Opaque RGB at a low zlib level: flat colours compress well, for a fraction of the default's time.
    image = Image.frombuffer("RGBA", canvas.get_width_height(), canvas.buffer_rgba(), "raw", "RGBA", 0, 1)
    image = image.convert("RGB")
    _replace_atomically(png_path, lambda file: image.save(file, format="PNG", compress_level=1))

    # The CSV goes last: once it is there, the chart beside it is complete too.
    csv_text = counts.loc[:, list(CSV_COLUMNS)].to_csv(index=False, lineterminator="\n")
    _replace_atomically(csv_path, lambda file: file.write(csv_text.encode("utf-8")))
    return ReportOutputs(png=png_path, csv=csv_path, total_trips=total)


def render_report(request: ReportRequest, paths: DataPaths | None = None) -> ReportOutputs:
    """Count the request's trips and write its CSV and PNG into ``outputs/``."""
    paths = paths or data_paths()
    return write_report_files(request, report_counts(request, paths), paths)
