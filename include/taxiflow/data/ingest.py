"""From a landing drop to one normalised warehouse partition of trips, validated before it replaces anything.

``raw.copy_to_raw`` copies the drop into a fresh raw version (``raw/<source>/<month>/<version>/``)
and names it in ``raw/<source>/<month>/_staged.json``; ``process_partition`` validates that
version's files, writes the new partition as a fresh version
(``warehouse/trips/source=<source>/month=<month>/<version>/trips.parquet``) and only then publishes
both at once: ``_summary.json``, which names the trips version and the raw version it was built
from (``raw_version``, and lists its files), is written last with a conditional write
(``taxiflow.data.versions``); the superseded trips and raw versions are then deleted. Readers
follow ``_summary.json``, so a re-ingest never shows old and new mixed, on local disk or S3. A
refused drop (``DropRefused``) leaves the previous raw copy and partition exactly as they were, and
its message says so. With nothing staged (``_staged.json`` names the published raw version),
``process_partition`` rebuilds the partition from the current raw copy.

Each file's header is matched to one of its source's column eras and its trips are read through
``taxiflow.data.readers`` (trips of a longitude/latitude era are placed in their taxi zones there).
A file whose header matches no era is refused, naming what it lacks; so is a drop mixing files of
two eras.

A file is refused whole when a column a row needs is missing, or when more than
``MAX_OUTSIDE_MONTH_SHARE`` (1 %) of its rows have pickups outside the folder's month: it was
dropped under the wrong month (the message says how many rows and which months they belong to).

Real TLC months list a few trips that started in another month (at most 0.02 % in the files we
test with): **strays**. A stray that started in the month just before or after the file's month
is stored with the partition (``rows_strays_kept``, by month in ``strays_kept_by_month``) and
counted in the month it started, once (``strays.counted_trips_sql``: not if that month's own
files list the same trip, and a re-drop replaces what the file contributed). A stray further away
(TLC files hold junk dates such as 2002 or 2088) is counted in ``rows_strays_dropped`` and not
stored: it would otherwise open a month nobody drops.

A row is rejected (counted, not written) when its pickup time is missing or unparseable: it cannot
be placed in time. Pickup zone ids that are NULL or missing from the zone table are kept
(``rows_unknown_zone``; metrics file them as "Unknown"). A value that does not fit its type (``abc``
as a fare) becomes NULL on that row only. ``rows_read = rows_written + rows_rejected +
rows_outside_month`` and ``rows_outside_month = rows_strays_kept + rows_strays_dropped``
(``rows_written`` counts the month's own trips). Error messages name files and columns, never a
file's contents.
"""

from __future__ import annotations

import logging
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from taxiflow.config import DATA_FILE_SUFFIXES, DataPaths, Partition
from taxiflow.data import raw as raw_store
from taxiflow.data import readers, refusals, storage, strays, versions, warehouse
from taxiflow.data.storage import data_paths

if TYPE_CHECKING:
    import duckdb

log = logging.getLogger(__name__)

REJECT_PICKUP_MISSING = "pickup_at_missing"
REJECT_PICKUP_UNPARSEABLE = "pickup_at_unparseable"

# A file with more of its (placeable) rows outside its folder's month than this was dropped under
# the wrong month and is refused whole. Real TLC months stay far below (0.02 % at most here).
MAX_OUTSIDE_MONTH_SHARE = 0.01


class DropRefused(ValueError):
    """A staged drop failed validation; the previous raw copy and partition were kept."""


# --- processing ------------------------------------------------------------------------------------


def process_partition(
    partition: Partition, paths: DataPaths | None = None, run_id: str | None = None
) -> dict[str, Any]:
    """Validate the staged drop (or the current raw copy), then publish it with the partition; return the summary.

    Raises ``DropRefused`` (nothing replaced, the message says what was kept) when a file lacks a
    column, cannot be read, or belongs mostly to another month. Re-running replaces the partition
    (a new version), never appends; ``versions.PreconditionFailed`` if another writer published
    the partition meanwhile (nothing of this run stays). A refusal is also recorded
    (``warehouse/refusals/``, ``taxiflow.data.refusals``, naming ``run_id``), for reports and the
    quality page.
    """
    source, month = partition.source, partition.month
    paths = paths or data_paths()
    folder = paths.trips_dir(partition)
    previous = versions.read_marker(folder, warehouse.SUMMARY_FILE)  # first: a publish based on it may lose
    current_raw = raw_store.raw_version(previous.document if previous else None)
    staged_raw = raw_store.staged_version(partition, paths, current_raw)
    if staged_raw:
        files = raw_store.data_files_in(paths.raw_dir(partition) / staged_raw)
        if not files:
            raise FileNotFoundError(
                f"the drop staged for source {source!r}, month {month!r} "
                f"({storage.url(paths.raw_dir(partition) / staged_raw)}) has no files any more: run copy_to_raw again"
            )
    else:
        files = raw_store.raw_files(partition, paths, previous.document) if previous else []
    staged = bool(staged_raw)
    if not files:
        raise FileNotFoundError(
            f"no raw files for source {source!r}, month {month!r} in {paths.raw_dir(partition)}: "
            f"run copy_to_raw first"
        )
    month_start, month_end = strays.month_bounds(month)
    neighbours = strays.adjacent_months(month)
    window_start = min(strays.month_bounds(m)[0] for m in [month, *neighbours])
    window_end = max(strays.month_bounds(m)[1] for m in [month, *neighbours])
    version = versions.new_version()
    target = folder / version / warehouse.TRIPS_FILE

    try:
        # Unwound in reverse: on S3 the drop's local copies are removed and DuckDB lets go of its
        # memory before the trips file is uploaded (nothing is uploaded after an error), so the
        # upload's buffers do not add to DuckDB's peak. Locally the file is renamed into place.
        with ExitStack() as finish:
            written = finish.enter_context(storage.replacing(target)) if storage.is_remote(target) else target
            # the drop is read three times: fetched once
            con, readable = finish.enter_context(readers.zones_and_copies(files, paths))
            raw_sizes = [copy.stat().st_size for copy in readable]  # the summary's raw_files: no HEAD each
            try:
                pairs = zip(files, readable, strict=True)
                raws = [readers.inspect_raw_file(con, source, path, copy) for path, copy in pairs]
                stats = _file_stats(con, raws, month_start, month_end)
            except ValueError as err:
                raise _refuse(partition, str(err), files, bool(staged), paths, run_id) from None
            except Exception as err:  # DuckDB's own messages may quote the file's bytes: never pass them on
                raise _refuse(
                    partition, f"cannot read {', '.join(f.name for f in files)} as "
                    f"{'/'.join(DATA_FILE_SUFFIXES)} ({type(err).__name__})", files, bool(staged), paths, run_id,
                ) from None
            misplaced = [_misplaced(s, month) for s in stats if _is_misplaced(s)]
            if misplaced:
                raise _refuse(partition, "; ".join(misplaced), files, bool(staged), paths, run_id)
            rows_read = sum(s["rows_read"] for s in stats)
            rows_rejected = sum(s["rows_rejected"] for s in stats)
            rows_outside = sum(s["rows_outside_month"] for s in stats)
            outside_by_month: dict[str, int] = {}
            for s in stats:
                for other, count in s["outside_by_month"].items():
                    outside_by_month[other] = outside_by_month.get(other, 0) + count
            strays_kept = {m: outside_by_month[m] for m in neighbours if outside_by_month.get(m)}
            trips_sql, trips_params = readers.trips_query(raws, window_start, window_end)
            stored, trips_file = warehouse.write_parquet_atomically(
                con, trips_sql, trips_params, written,
                expected_rows=rows_read - rows_rejected - rows_outside + sum(strays_kept.values()),
            )
    except BaseException:
        versions.remove_version(folder, version)
        raise

    raw_version = staged_raw or current_raw
    rows_strays_kept = sum(strays_kept.values())
    summary: dict[str, Any] = {
        "source": source,
        "month": month,
        "version": version,
        "files": [
            {"name": s["name"], "rows_read": s["rows_read"], "rows_rejected": s["rows_rejected"],
             "rows_outside_month": s["rows_outside_month"], **_file_details(s)}
            for s in stats
        ],
        "raw_version": raw_version,  # the raw copy published with this partition (None: raw before versions)
        "raw_files": [{"name": f.name, "bytes": size} for f, size in zip(files, raw_sizes, strict=True)],
        "rows_read": rows_read,
        "rows_written": stored - rows_strays_kept,
        "rows_rejected": rows_rejected,
        "rows_rejected_by_reason": {
            REJECT_PICKUP_MISSING: sum(s[REJECT_PICKUP_MISSING] for s in stats),
            REJECT_PICKUP_UNPARSEABLE: sum(s[REJECT_PICKUP_UNPARSEABLE] for s in stats),
        },
        "rows_outside_month": rows_outside,
        "rows_outside_month_by_month": dict(sorted(outside_by_month.items())),
        "rows_strays_kept": rows_strays_kept,
        "strays_kept_by_month": strays_kept,
        "rows_strays_dropped": rows_outside - rows_strays_kept,
        "rows_unknown_zone": sum(s["rows_unknown_zone"] for s in stats),
        "pickup_min": _iso(min((s["pickup_min"] for s in stats if s["pickup_min"]), default=None)),
        "pickup_max": _iso(max((s["pickup_max"] for s in stats if s["pickup_max"]), default=None)),
        "path": storage.url(target),
        "trips_file": trips_file,  # name, bytes, sha256: of the local file, before upload (lineage)
        "written_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    # Listed before the publish, as versions.publish lists the trips versions: a drop staged after
    # this listing is not touched. Without a raw version (raw before versions) nothing goes.
    raw_superseded = raw_store.superseded(partition, paths, keep=raw_version) if raw_version else []
    try:
        versions.publish(folder, warehouse.SUMMARY_FILE, summary, replaces=previous)
    except BaseException:
        versions.remove_version(folder, version, marker=warehouse.SUMMARY_FILE)  # kept if it was published
        raise
    raw_store.remove(partition, paths, raw_superseded)
    versions.remove_superseded(folder, version, legacy_files=(warehouse.TRIPS_FILE,))
    by_reason = summary["rows_rejected_by_reason"]
    log.info(
        "Ingested %s %s%s as version %s: %d file(s), %d rows read, %d written, %d rejected (%d without "
        "pickup time, %d unparseable), %d outside the month (%s): %d stored to count in the month they "
        "started (%s), %d further away and not stored; %d with an unknown pickup zone",
        source, month, " (new drop validated and published)" if staged else " (rebuilt from raw)", version,
        len(files), rows_read, summary["rows_written"], rows_rejected,
        by_reason[REJECT_PICKUP_MISSING], by_reason[REJECT_PICKUP_UNPARSEABLE], rows_outside,
        ", ".join(f"{n} in {m}" for m, n in summary["rows_outside_month_by_month"].items()) or "none",
        rows_strays_kept, ", ".join(f"{n} in {m}" for m, n in strays_kept.items()) or "none",
        summary["rows_strays_dropped"], summary["rows_unknown_zone"],
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


def _refuse(
    partition: Partition, problem: str, files: list[Path], staged: bool, paths: DataPaths, run_id: str | None
) -> DropRefused:
    """Record the refusal (``taxiflow.data.refusals``); the exception to raise, its message built from what is kept."""
    refusals.record_refusal(partition, problem, [f.name for f in files], new_drop=staged, run_id=run_id, paths=paths)
    return DropRefused(_refusal(partition, problem, staged, paths))


def _refusal(partition: Partition, problem: str, staged: bool, paths: DataPaths) -> str:
    """The refusal message: what is wrong, and what the warehouse still holds."""
    source, month = partition.source, partition.month
    if not staged:
        return f"{source} {month}: {problem}. Nothing was replaced."
    published_trips = warehouse.published_trips(partition, paths)
    published = published_trips is not None
    kept_raw = raw_store.raw_files(partition, paths, published_trips.summary) if published_trips else []
    if kept_raw or published:
        kept = (
            f"the last good raw copy (raw/{source}/{month}/: {', '.join(f.name for f in kept_raw) or 'empty'}) "
            f"and warehouse partition ({'present' if published else 'none'}) are kept as they were"
        )
    else:
        kept = "nothing had been ingested for this month before, and nothing was written"
    return f"{source} {month}: the new drop is refused: {problem}. {kept}."


def read_summary(partition: Partition, paths: DataPaths | None = None) -> dict[str, Any]:
    """The ``_summary.json`` of one published trips partition (``FileNotFoundError`` if none)."""
    published = warehouse.published_trips(partition, paths)
    if published is None:
        raise FileNotFoundError(f"no published trips partition for {partition}")
    return published.summary


def _file_stats(
    con: duckdb.DuckDBPyConnection, raws: list[readers.RawFile], month_start: datetime, month_end: datetime
) -> list[dict[str, Any]]:
    """Per file: rows read, rejected by reason, outside the month, unknown zone, pickup range.

    Reads only the pickup time and zone columns, so it costs a fraction of the write. First
    refuses a drop mixing column eras, and places the trips of lon/lat-era files in their zones:
    their entries in ``raws`` are replaced by the zoned copies, which ``readers.trips_query`` then reads.
    """
    readers.check_one_era(raws)
    for index, raw in enumerate(raws):
        if raw.needs_zones:
            raws[index] = readers.place_in_zones(con, raw)
    selects, params = [], []
    for index, raw in enumerate(raws):
        selects.append(
            f"SELECT ?::INTEGER AS file_index, {raw.pickup_present()} AS pickup_present, "
            f"{raw.expression('pickup_at')} AS pickup_at, "
            f"{raw.expression('pickup_zone_id')} AS pickup_zone_id FROM {raw.reader}"
        )
        params += [index, storage.duckdb_path(raw.source_path)]
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
                "era": raw.era.name if raw.era else None,
                **(raw.zone_counts or {}),
            }
        )
    return stats


def _file_details(stats: dict[str, Any]) -> dict[str, Any]:
    """What a summary says of a file beyond its counts: its column era, and for a lon/lat era how
    many rows were placed in zones by their coordinates and how many of those fell in no zone."""
    keys = ("era", "rows_placed_by_coordinates", "rows_in_no_zone")
    return {key: stats[key] for key in keys if stats.get(key) is not None}


def _iso(value: datetime | None) -> str | None:
    return value.isoformat(sep=" ") if value is not None else None
