"""From a landing drop to one normalised warehouse partition of trips, validated before it replaces anything.

``copy_to_raw`` copies the drop into a **staged** copy beside raw (``raw/<source>/.<month>.staged/``);
``process_partition`` validates the staged files, writes the new partition under a hidden name and
only then swaps both in: the staged copy becomes ``raw/<source>/<month>/`` and the new file becomes
``warehouse/trips/source=<source>/month=<month>/trips.parquet`` (plus ``_summary.json``, which lists
the raw files it was built from). A refused drop (``DropRefused``) leaves the previous raw copy and
partition exactly as they were, and its message says so. With nothing staged, ``process_partition``
rebuilds the partition from the current raw copy.

A file is refused whole when a column a row needs is missing, or when more than
``MAX_OUTSIDE_MONTH_SHARE`` (1 %) of its rows have pickups outside the folder's month: it was
dropped under the wrong month (the message says how many rows and which months they belong to).
Real TLC months have a few stray rows (at most 0.02 % in the files we test with); those are counted
per month in ``rows_outside_month_by_month`` and **not stored**: a partition holds only its own
month's pickups, so no trip can be counted by two partitions.

A row is rejected (counted, not written) when its pickup time is missing or unparseable: it cannot
be placed in time. Pickup zone ids that are NULL or missing from the zone table are kept
(``rows_unknown_zone``; metrics file them as "Unknown"). A value that does not fit its type (``abc``
as a fare) becomes NULL on that row only. ``rows_read = rows_written + rows_rejected +
rows_outside_month``. Error messages name files and columns, never a file's contents.
"""

from __future__ import annotations

import json
import logging
import re
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
    Partition,
    data_paths,
)
from taxiflow.data import storage, warehouse
from taxiflow.data.files import write_text_atomically
from taxiflow.data.landing import UnsafeDropError
from taxiflow.data.raw import copy_to_raw, data_files_in, promote_staged, raw_files, staged_dir

if TYPE_CHECKING:
    import duckdb

log = logging.getLogger(__name__)

# Without these a row cannot be placed in time or space, so a file lacking one is refused whole.
FILE_REQUIRED_COLUMNS = (*REQUIRED_COLUMNS, "pickup_zone_id")

REJECT_PICKUP_MISSING = "pickup_at_missing"
REJECT_PICKUP_UNPARSEABLE = "pickup_at_unparseable"

# A file with more of its (placeable) rows outside its folder's month than this was dropped under
# the wrong month and is refused whole. Real TLC months stay far below (0.02 % at most here).
MAX_OUTSIDE_MONTH_SHARE = 0.01

__all__ = ["DropRefused", "UnsafeDropError", "copy_to_raw", "process_partition", "raw_files", "staged_dir"]


class DropRefused(ValueError):
    """A staged drop failed validation; the previous raw copy and partition were kept."""


# --- raw -------------------------------------------------------------------------------------------


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


_COLUMN_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_ ]{0,63}")


def _describe_columns(names: list[str]) -> str:
    """The header for an error message, only if it looks like column names, never raw text.

    A file that is not what its name says (a key, a log, a password file linked in) has a "header"
    that is really its first line: that must not reach a task log, which every viewer can read.
    """
    if names and all(_COLUMN_NAME_RE.fullmatch(name) for name in names) and len(names) <= 64:
        return f"columns: {', '.join(names)}"
    return f"{len(names)} column(s) whose names do not look like a TLC header (not shown)"


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
        f"SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM {reader})", [storage.duckdb_path(path)]
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
                f"{looked_for}); the file has {_describe_columns([name for name, _ in described])}"
            )
    return RawFile(path=path, reader=reader, columns=columns)


# --- processing ------------------------------------------------------------------------------------


def process_partition(partition: Partition, paths: DataPaths | None = None) -> dict[str, Any]:
    """Validate the staged drop (or the current raw copy), then swap in raw and partition; return the summary.

    Raises ``DropRefused`` (nothing replaced, the message says what was kept) when a file lacks a
    column, cannot be read, or belongs mostly to another month. Re-running replaces the partition,
    never appends.
    """
    source, month = partition.source, partition.month
    paths = paths or data_paths()
    staged = data_files_in(staged_dir(partition, paths))
    files = staged or raw_files(partition, paths)
    if not files:
        raise FileNotFoundError(
            f"no raw files for source {source!r}, month {month!r} in {paths.raw_dir(partition)}: "
            f"run copy_to_raw first"
        )
    month_start, month_end = _month_bounds(partition.first_day)
    target = warehouse.trips_file(partition, paths)
    pending = target.with_name(f".{target.name}.{uuid.uuid4().hex}.pending")

    con = warehouse.duckdb_connection(paths)
    try:
        warehouse.create_zones_table(con, paths)
        try:
            raws = [inspect_raw_file(con, source, path) for path in files]
            stats = _file_stats(con, raws, month_start, month_end)
        except ValueError as err:
            raise DropRefused(_refusal(partition, str(err), bool(staged), paths)) from None
        except Exception as err:  # DuckDB's own messages may quote the file's bytes: never pass them on
            raise DropRefused(_refusal(
                partition, f"cannot read {', '.join(f.name for f in files)} as "
                f"{'/'.join(DATA_FILE_SUFFIXES)} ({type(err).__name__})", bool(staged), paths,
            )) from None
        misplaced = [_misplaced(s, month) for s in stats if _is_misplaced(s)]
        if misplaced:
            raise DropRefused(_refusal(partition, "; ".join(misplaced), bool(staged), paths))
        rows_read = sum(s["rows_read"] for s in stats)
        rows_rejected = sum(s["rows_rejected"] for s in stats)
        rows_outside = sum(s["rows_outside_month"] for s in stats)
        trips_sql, trips_params = _trips_query(raws, month_start, month_end)
        written = warehouse.write_parquet_atomically(
            con, trips_sql, trips_params, pending, expected_rows=rows_read - rows_rejected - rows_outside
        )
    finally:
        con.close()

    try:
        if staged:
            promote_staged(partition, paths)
            files = raw_files(partition, paths)
        storage.move(pending, target)
    finally:
        storage.remove(pending)
    outside_by_month: dict[str, int] = {}
    for s in stats:
        for other, count in s["outside_by_month"].items():
            outside_by_month[other] = outside_by_month.get(other, 0) + count
    summary: dict[str, Any] = {
        "source": source,
        "month": month,
        "files": [
            {"name": s["name"], "rows_read": s["rows_read"], "rows_rejected": s["rows_rejected"],
             "rows_outside_month": s["rows_outside_month"]}
            for s in stats
        ],
        "raw_files": [{"name": f.name, "bytes": storage.info(f)["size"]} for f in files],
        "rows_read": rows_read,
        "rows_written": written,
        "rows_rejected": rows_rejected,
        "rows_rejected_by_reason": {
            REJECT_PICKUP_MISSING: sum(s[REJECT_PICKUP_MISSING] for s in stats),
            REJECT_PICKUP_UNPARSEABLE: sum(s[REJECT_PICKUP_UNPARSEABLE] for s in stats),
        },
        "rows_outside_month": rows_outside,
        "rows_outside_month_by_month": dict(sorted(outside_by_month.items())),
        "rows_unknown_zone": sum(s["rows_unknown_zone"] for s in stats),
        "pickup_min": _iso(min((s["pickup_min"] for s in stats if s["pickup_min"]), default=None)),
        "pickup_max": _iso(max((s["pickup_max"] for s in stats if s["pickup_max"]), default=None)),
        "path": storage.url(target),
        "written_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    write_text_atomically(target.with_name(warehouse.SUMMARY_FILE), json.dumps(summary, indent=2) + "\n")
    by_reason = summary["rows_rejected_by_reason"]
    log.info(
        "Ingested %s %s%s: %d file(s), %d rows read, %d written, %d rejected (%d without pickup time, "
        "%d unparseable), %d outside the month and not stored (%s), %d with an unknown pickup zone",
        source, month, " (new drop validated and swapped in)" if staged else " (rebuilt from raw)",
        len(files), rows_read, written, rows_rejected,
        by_reason[REJECT_PICKUP_MISSING], by_reason[REJECT_PICKUP_UNPARSEABLE], rows_outside,
        ", ".join(f"{n} in {m}" for m, n in summary["rows_outside_month_by_month"].items()) or "none",
        summary["rows_unknown_zone"],
    )
    return summary


def _is_misplaced(stats: dict[str, Any]) -> bool:
    placeable = stats["rows_read"] - stats["rows_rejected"]
    return placeable > 0 and stats["rows_outside_month"] > MAX_OUTSIDE_MONTH_SHARE * placeable


def _misplaced(stats: dict[str, Any], month: str) -> str:
    placeable = stats["rows_read"] - stats["rows_rejected"]
    outside = stats["rows_outside_month"]
    where = ", ".join(f"{count:,} in {other}" for other, count in stats["outside_by_month"].items())
    return (
        f"{stats['name']}: {outside:,} of its {placeable:,} rows ({outside / placeable:.1%}) have "
        f"pickups outside {month} ({where}); more than {MAX_OUTSIDE_MONTH_SHARE:.0%} means it was "
        f"dropped under the wrong month: drop it in the folder of the month its trips belong to"
    )


def _refusal(partition: Partition, problem: str, staged: bool, paths: DataPaths) -> str:
    """The refusal message: what is wrong, and what the warehouse still holds."""
    source, month = partition.source, partition.month
    if not staged:
        return f"{source} {month}: {problem}. Nothing was replaced."
    kept_raw = raw_files(partition, paths)
    target = warehouse.trips_file(partition, paths)
    if kept_raw or target.exists():
        kept = (
            f"the last good raw copy (raw/{source}/{month}/: {', '.join(f.name for f in kept_raw) or 'empty'}) "
            f"and warehouse partition ({'present' if target.exists() else 'none'}) are kept as they were"
        )
    else:
        kept = "nothing had been ingested for this month before, and nothing was written"
    return f"{source} {month}: the new drop is refused: {problem}. {kept}."


def read_summary(partition: Partition, paths: DataPaths | None = None) -> dict[str, Any]:
    """The ``_summary.json`` of one trips partition."""
    path = warehouse.trips_file(partition, paths)
    return json.loads(path.with_name(warehouse.SUMMARY_FILE).read_text(encoding="utf-8"))


def _trips_query(
    raws: list[RawFile], month_start: datetime, month_end: datetime
) -> tuple[str, list[Any]]:
    """Every file's rows with a pickup inside the month, in ``TRIP_SCHEMA`` order and types."""
    selects = []
    for raw in raws:
        expressions = ", ".join(
            f"{raw.expression(column)} AS {_quote(column)}" for column in TRIP_SCHEMA
        )
        selects.append(f"SELECT {expressions} FROM {raw.reader}")
    union = " UNION ALL ".join(selects)
    return (
        f"SELECT * FROM ({union}) WHERE pickup_at >= ? AND pickup_at < ?",
        [*(storage.duckdb_path(r.path) for r in raws), month_start, month_end],
    )


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
        params += [index, storage.duckdb_path(raw.path)]
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
    outside_by_month: dict[int, dict[str, int]] = {index: {} for index in range(len(raws))}
    if any(row[4] for row in rows):
        for index, other, count in con.execute(
            f"""
            SELECT file_index, strftime(pickup_at, '%Y-%m') AS other_month, count(*)
            FROM ({union}) AS rows
            WHERE pickup_at < ? OR pickup_at >= ?
            GROUP BY ALL ORDER BY 1, 3 DESC, 2
            """,
            [*params, month_start, month_end],
        ).fetchall():
            outside_by_month[index][other] = count
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
                "outside_by_month": outside_by_month[index],
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
