"""From a landing drop to one normalised warehouse partition of trips.

``copy_to_raw`` freezes the drop into ``raw/<source>/<month>/``; ``process_partition`` reads every raw
file, maps its columns onto ``config.TRIP_SCHEMA`` and writes
``warehouse/trips/source=<source>/month=<month>/trips.parquet`` plus ``_summary.json``.

A row is rejected (counted, not written) only when its pickup time is missing or unparseable: it
cannot be placed in time. Everything else is kept as TLC published it: pickups outside the file's
month count on their real date (``rows_outside_month``), and pickup zone ids that are NULL or
missing from the zone table are kept too (``rows_unknown_zone``; metrics file them as "Unknown").
A value that does not fit its type (``abc`` as a fare) becomes NULL on that row only.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from taxiflow.config import (
    DATA_FILE_SUFFIXES,
    REQUIRED_COLUMNS,
    SOURCES,
    TRIP_SCHEMA,
    DataPaths,
    check_month,
    check_source,
    data_paths,
    parse_month,
)
from taxiflow.data import warehouse
from taxiflow.data.files import write_text_atomically
from taxiflow.data.landing import data_files, is_data_file

if TYPE_CHECKING:
    import duckdb

log = logging.getLogger(__name__)

# Without these a row cannot be placed in time or space, so a file lacking one is refused whole.
FILE_REQUIRED_COLUMNS = (*REQUIRED_COLUMNS, "pickup_zone_id")

REJECT_PICKUP_MISSING = "pickup_at_missing"
REJECT_PICKUP_UNPARSEABLE = "pickup_at_unparseable"


# --- raw -------------------------------------------------------------------------------------------


def copy_to_raw(source: str, month: str, paths: DataPaths | None = None) -> list[Path]:
    """Copy the drop's data files to ``raw/<source>/<month>/``, replacing whatever raw held.

    The files are copied into a hidden sibling folder first and swapped in with renames, so raw
    never holds a mix of two drops. Landing is only read, never modified.
    """
    check_source(source)
    check_month(month)
    paths = paths or data_paths()
    files = data_files(source, month, paths)
    if not files:
        raise FileNotFoundError(
            f"no data files ({', '.join(DATA_FILE_SUFFIXES)}) in {paths.landing_dir(source, month)} "
            f"for source {source!r}, month {month!r}"
        )
    raw_dir = paths.raw_dir(source, month)
    raw_dir.parent.mkdir(parents=True, exist_ok=True)
    token = uuid.uuid4().hex
    incoming = raw_dir.with_name(f".{month}.{token}.incoming")
    retired = raw_dir.with_name(f".{month}.{token}.retired")
    incoming.mkdir()
    try:
        for file in files:
            shutil.copy2(file, incoming / file.name)
        if raw_dir.exists():
            os.rename(raw_dir, retired)
        os.rename(incoming, raw_dir)
    finally:
        shutil.rmtree(incoming, ignore_errors=True)
        shutil.rmtree(retired, ignore_errors=True)
    return raw_files(source, month, paths)


def raw_files(source: str, month: str, paths: DataPaths | None = None) -> list[Path]:
    """The data files in ``raw/<source>/<month>/``, sorted by name."""
    folder = (paths or data_paths()).raw_dir(source, month)
    if not folder.is_dir():
        return []
    return sorted(path for path in folder.iterdir() if is_data_file(path))


# --- reading one raw file --------------------------------------------------------------------------


@dataclass(frozen=True)
class RawFile:
    """One raw file, how DuckDB reads it, and which of its columns feeds each trip column."""

    path: Path
    reader: str  # a table function with one ``?`` for the path
    columns: dict[str, tuple[str, str] | None]  # trip column -> (file column, its DuckDB type)

    def expression(self, column: str) -> str:
        """SQL for one trip column, cast to ``TRIP_SCHEMA``; NULL when the file lacks the column."""
        target = TRIP_SCHEMA[column]
        found = self.columns[column]
        if found is None:
            return f"CAST(NULL AS {target})"
        name, file_type = found
        quoted = _quote(name)
        if file_type == target:
            return quoted
        if target == "TIMESTAMP" and file_type == "VARCHAR":
            # ISO first; then the "01/15/2019 03:36:12 PM" of TLC's own CSV exports (NYC Open Data).
            text = f"nullif(trim({quoted}), '')"
            return (
                f"coalesce(TRY_CAST({text} AS TIMESTAMP), "
                f"try_strptime({text}, '%m/%d/%Y %I:%M:%S %p'))"
            )
        if file_type == "VARCHAR":
            return f"TRY_CAST(nullif(trim({quoted}), '') AS {target})"
        return f"TRY_CAST({quoted} AS {target})"

    def pickup_present(self) -> str:
        """SQL that is true when the file has *some* pickup value on the row, parseable or not."""
        name, file_type = self.columns["pickup_at"]  # type: ignore[misc]
        if file_type == "VARCHAR":
            return f"(nullif(trim({_quote(name)}), '') IS NOT NULL)"
        return f"({_quote(name)} IS NOT NULL)"


def _quote(identifier: str) -> str:
    """A double-quoted SQL identifier (only ever a column name DuckDB itself reported)."""
    return '"' + identifier.replace('"', '""') + '"'


def _reader_for(path: Path) -> str:
    name = path.name.lower()
    if name.endswith(".parquet"):
        return "read_parquet(?, hive_partitioning = false)"
    # Text for every column so one bad value is a NULL on one row, not a failed file; mixed
    # CRLF/LF line endings (TLC's 2019 yellow CSVs) need strict_mode off. No hive columns: a
    # "key=value" folder somewhere above the data root must not turn into a column.
    return (
        "read_csv(?, header = true, all_varchar = true, strict_mode = false, "
        "hive_partitioning = false)"
    )


def inspect_raw_file(con: duckdb.DuckDBPyConnection, source: str, path: Path) -> RawFile:
    """Map a file's columns onto the trip schema; a ValueError if a column a row needs is missing."""
    reader = _reader_for(path)
    described = con.execute(
        f"SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM {reader})", [str(path)]
    ).fetchall()
    by_lower_name: dict[str, tuple[str, str]] = {}
    for name, column_type in described:
        by_lower_name.setdefault(name.lower(), (name, column_type))
    columns: dict[str, tuple[str, str] | None] = {}
    for column, candidates in SOURCES[source].columns.items():
        columns[column] = next(
            (by_lower_name[c.lower()] for c in candidates if c.lower() in by_lower_name), None
        )
    for column in FILE_REQUIRED_COLUMNS:
        if columns.get(column) is None:
            looked_for = ", ".join(SOURCES[source].columns.get(column, ()))
            raise ValueError(
                f"{path.name}: no column for {column!r} (looked for, case-insensitively: "
                f"{looked_for}); the file has: {', '.join(name for name, _ in described)}"
            )
    return RawFile(path=path, reader=reader, columns=columns)


# --- processing ------------------------------------------------------------------------------------


def process_partition(source: str, month: str, paths: DataPaths | None = None) -> dict[str, Any]:
    """Normalise every raw file of one month into ``trips.parquet``; return the partition summary.

    Re-running replaces the partition (atomic ``os.replace``), never appends. The summary (also
    written as ``_summary.json`` beside the parquet) counts what was read, written and rejected.
    """
    check_source(source)
    first_day = parse_month(check_month(month))
    paths = paths or data_paths()
    files = raw_files(source, month, paths)
    if not files:
        raise FileNotFoundError(
            f"no raw files for source {source!r}, month {month!r} in {paths.raw_dir(source, month)}: "
            f"run copy_to_raw first"
        )
    month_start, month_end = _month_bounds(first_day)
    target = warehouse.trips_file(source, month, paths)

    con = warehouse.duckdb_connection()
    try:
        warehouse.create_zones_table(con, paths)
        raws = [inspect_raw_file(con, source, path) for path in files]
        stats = _file_stats(con, raws, month_start, month_end)
        rows_read = sum(s["rows_read"] for s in stats)
        rows_rejected = sum(s["rows_rejected"] for s in stats)
        trips_sql, trips_params = _trips_query(raws)
        written = warehouse.write_parquet_atomically(
            con, trips_sql, trips_params, target, expected_rows=rows_read - rows_rejected
        )
    finally:
        con.close()

    summary: dict[str, Any] = {
        "source": source,
        "month": month,
        "files": [
            {"name": s["name"], "rows_read": s["rows_read"], "rows_rejected": s["rows_rejected"]}
            for s in stats
        ],
        "rows_read": rows_read,
        "rows_written": written,
        "rows_rejected": rows_rejected,
        "rows_rejected_by_reason": {
            REJECT_PICKUP_MISSING: sum(s[REJECT_PICKUP_MISSING] for s in stats),
            REJECT_PICKUP_UNPARSEABLE: sum(s[REJECT_PICKUP_UNPARSEABLE] for s in stats),
        },
        "rows_outside_month": sum(s["rows_outside_month"] for s in stats),
        "rows_unknown_zone": sum(s["rows_unknown_zone"] for s in stats),
        "pickup_min": _iso(min((s["pickup_min"] for s in stats if s["pickup_min"]), default=None)),
        "pickup_max": _iso(max((s["pickup_max"] for s in stats if s["pickup_max"]), default=None)),
        "path": str(target),
        "written_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    write_text_atomically(target.with_name(warehouse.SUMMARY_FILE), json.dumps(summary, indent=2) + "\n")
    by_reason = summary["rows_rejected_by_reason"]
    log.info(
        "Ingested %s %s: %d file(s), %d rows read, %d written, %d rejected (%d without pickup time, "
        "%d unparseable), %d outside the month, %d with an unknown pickup zone, pickups %s .. %s",
        source, month, len(files), rows_read, written, rows_rejected,
        by_reason[REJECT_PICKUP_MISSING], by_reason[REJECT_PICKUP_UNPARSEABLE],
        summary["rows_outside_month"], summary["rows_unknown_zone"],
        summary["pickup_min"], summary["pickup_max"],
    )
    return summary


def read_summary(source: str, month: str, paths: DataPaths | None = None) -> dict[str, Any]:
    """The ``_summary.json`` of one trips partition."""
    path = warehouse.trips_file(check_source(source), check_month(month), paths)
    return json.loads(path.with_name(warehouse.SUMMARY_FILE).read_text(encoding="utf-8"))


def _trips_query(raws: list[RawFile]) -> tuple[str, list[Any]]:
    """Every file's rows with a parseable pickup, in ``TRIP_SCHEMA`` order and types."""
    selects = []
    for raw in raws:
        expressions = ", ".join(
            f"{raw.expression(column)} AS {_quote(column)}" for column in TRIP_SCHEMA
        )
        selects.append(f"SELECT {expressions} FROM {raw.reader}")
    union = " UNION ALL ".join(selects)
    return f"SELECT * FROM ({union}) WHERE pickup_at IS NOT NULL", [str(r.path) for r in raws]


def _file_stats(
    con: duckdb.DuckDBPyConnection, raws: list[RawFile], month_start: datetime, month_end: datetime
) -> list[dict[str, Any]]:
    """Per file: rows read, rejected by reason, outside the month, unknown zone, pickup range.

    Reads only the pickup time and zone columns, so it costs a fraction of the write.
    """
    selects, params = [], []
    for index, raw in enumerate(raws):
        selects.append(
            f"SELECT ?::INTEGER AS file_index, {raw.pickup_present()} AS pickup_present, "
            f"{raw.expression('pickup_at')} AS pickup_at, "
            f"{raw.expression('pickup_zone_id')} AS pickup_zone_id FROM {raw.reader}"
        )
        params += [index, str(raw.path)]
    union = " UNION ALL ".join(selects)
    rows = con.execute(
        f"""
        SELECT file_index,
               count(*) AS rows_read,
               count(*) FILTER (WHERE NOT pickup_present) AS missing,
               count(*) FILTER (WHERE pickup_present AND pickup_at IS NULL) AS unparseable,
               count(*) FILTER (WHERE pickup_at < ? OR pickup_at >= ?) AS outside_month,
               count(*) FILTER (WHERE pickup_at IS NOT NULL AND zones.zone_id IS NULL) AS unknown_zone,
               min(pickup_at), max(pickup_at)
        FROM ({union}) AS rows
        LEFT JOIN zones ON zones.zone_id = rows.pickup_zone_id
        GROUP BY file_index
        """,
        # ``?`` are numbered by position in the text: the month bounds come before the union's.
        [month_start, month_end, *params],
    ).fetchall()
    by_index = {row[0]: row for row in rows}
    stats = []
    for index, raw in enumerate(raws):
        _, read, missing, unparseable, outside, unknown, first, last = by_index.get(
            index, (index, 0, 0, 0, 0, 0, None, None)
        )
        stats.append(
            {
                "name": raw.path.name,
                "rows_read": read,
                "rows_rejected": missing + unparseable,
                REJECT_PICKUP_MISSING: missing,
                REJECT_PICKUP_UNPARSEABLE: unparseable,
                "rows_outside_month": outside,
                "rows_unknown_zone": unknown,
                "pickup_min": first,
                "pickup_max": last,
            }
        )
    return stats


def _month_bounds(first_day: date) -> tuple[datetime, datetime]:
    """``[first instant of the month, first instant of the next)`` as naive local timestamps."""
    start = datetime(first_day.year, first_day.month, 1)
    if first_day.month == 12:
        return start, datetime(first_day.year + 1, 1, 1)
    return start, datetime(first_day.year, first_day.month + 1, 1)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat(sep=" ") if value is not None else None
