"""How one raw file is read: its column era, its columns as trip-schema SQL, lon/lat trips placed in zones.

``inspect_raw_file`` matches a file's header to one of its source's column eras
(``taxiflow.data.eras``: every header TLC has used since 2009, as data) and maps its columns onto
``TRIP_SCHEMA``; a ``RawFile`` then gives the DuckDB SQL of each trip column, cast and cleaned the
same way for every era. Trips of a longitude/latitude era (yellow and green before 2016-07) are
placed in their taxi zones by point in polygon (``place_in_zones``, ``taxiflow.data.geo``).
``trips_query`` is the one query that reads every file of a drop into trip rows. What is done with
the rows (validation, the partition, its summary) is ``taxiflow.data.ingest``. ``zones_and_copies``
opens the DuckDB that reads them while they download.
"""

from __future__ import annotations

import re
from collections.abc import Generator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, closing, contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from taxiflow.config import TRIP_SCHEMA, DataPaths
from taxiflow.data import eras, storage, warehouse

if TYPE_CHECKING:
    import duckdb


@contextmanager
def zones_and_copies(
    files: Sequence[storage.DataPath], paths: DataPaths
) -> Generator[tuple[duckdb.DuckDBPyConnection, list[Path]], None, None]:
    """A DuckDB connection holding the zone table, and local copies of ``files`` (``storage.local_copies``).

    DuckDB opens and loads the zones while the files download: on S3 each took ~0.13 s for a
    3M-row month on loopback (``benchmarks/profile_ingest.py``). Closed, copies removed, on exit.
    """
    with ExitStack() as stack:
        # The worker only waits for the download (fsspec's own I/O thread does it): DuckDB opens in
        # this thread, as before the overlap (opened in the worker, the S3 ingest's peak RSS was
        # 320-321 MB in two runs against 316-318 MB). Should opening fail, leaving the pool waits
        # for the download, and the stack removes the copies.
        with ThreadPoolExecutor(max_workers=1) as pool:
            fetching = pool.submit(stack.enter_context, storage.local_copies(list(files)))
            con = stack.enter_context(closing(warehouse.duckdb_connection(paths)))
            warehouse.create_zones_table(con, paths)
            copies = fetching.result()
        yield con, copies


@dataclass(frozen=True)
class RawFile:
    """One raw file, its era, how DuckDB reads it, and which of its columns feeds each trip column.

    ``read_path`` is what DuckDB reads: the file itself, its local copy (a file in an object
    store, ``storage.local_copies``), or for a file of a lon/lat era, once
    ``place_in_zones`` has placed its points in zones, a local Parquet copy of its trips with zone
    ids (``pickup_present`` then names the column that says whether the row had a pickup value).
    """

    path: storage.DataPath  # the raw file: on disk or in the bucket
    reader: str  # a table function with one ``?`` for the path
    columns: dict[str, tuple[str, str] | None]  # trip column -> (file column, its DuckDB type)
    era: eras.Era | None = None
    read_path: Path | None = None
    present_column: str | None = None
    zone_counts: dict[str, int] | None = None  # rows placed by coordinates, and those in no zone

    @property
    def source_path(self) -> storage.DataPath:
        return self.read_path or self.path

    @property
    def needs_zones(self) -> bool:
        return self.columns.get(eras.PICKUP_LON) is not None and self.columns.get("pickup_zone_id") is None

    def expression(self, column: str) -> str:
        """SQL for one trip column, cast to ``TRIP_SCHEMA``; NULL when the file lacks the column."""
        target = COLUMN_TYPES[column]
        found = self.columns.get(column)
        if found is None:
            return f"CAST(NULL AS {target})"
        name, file_type = found
        quoted = _quote(name)
        if file_type == target:
            return quoted
        if file_type != "VARCHAR":
            return f"TRY_CAST({quoted} AS {target})"
        # Surrounding spaces and quotes are not part of a value (", "-separated and quoted CSVs).
        text = f"nullif(trim({quoted}, ' \"'), '')"
        if target == "TIMESTAMP":
            # TLC's "2019-01-15 15:36:12" first; then the "01/15/2019 03:36:12 PM" of TLC's own CSV
            # exports (NYC Open Data); then other ISO forms (fractions, a "T"), only when as long as a
            # whole timestamp: a value cut short ("2019-02-01 00:") is unparseable, not midnight.
            return (
                f"coalesce(try_strptime({text}, '%Y-%m-%d %H:%M:%S'), "
                f"try_strptime({text}, '%m/%d/%Y %I:%M:%S %p'), "
                f"CASE WHEN length({text}) >= 19 THEN TRY_CAST({text} AS TIMESTAMP) END)"
            )
        codes = self.era.codes.get(column) if self.era else None
        if codes:  # CSH/CRD, VTS/CMT, HV0003: TLC's numeric codes (see taxiflow.data.eras)
            cases = " ".join(f"WHEN {_sql_text(code)} THEN {int(number)}" for code, number in codes.items())
            return f"coalesce(TRY_CAST({text} AS {target}), CASE upper({text}) {cases} END)"
        return f"TRY_CAST({text} AS {target})"

    def pickup_present(self) -> str:
        """SQL that is true when the file has *some* pickup value on the row, parseable or not."""
        if self.present_column:
            return f"({_quote(self.present_column)})"
        name, file_type = self.columns["pickup_at"]  # type: ignore[misc]
        if file_type == "VARCHAR":
            return f"(nullif(trim({_quote(name)}, ' \"'), '') IS NOT NULL)"
        return f"({_quote(name)} IS NOT NULL)"


# Trip columns and the coordinate pseudo-columns of lon/lat eras (read, placed in zones, not stored).
COLUMN_TYPES: dict[str, str] = {**TRIP_SCHEMA, **dict.fromkeys(eras.COORDINATE_COLUMNS, "DOUBLE")}
PICKUP_PRESENT = "pickup_present"


def _sql_text(value: str) -> str:
    """A SQL string literal of one of our own code names (``taxiflow.data.eras``), never input."""
    if not re.fullmatch(r"[A-Z0-9 ]{1,16}", value):
        raise ValueError(f"code {value!r} is not a plain code name")
    return f"'{value}'"


def _quote(identifier: str) -> str:
    """A double-quoted SQL identifier (only ever a column name DuckDB itself reported)."""
    return '"' + identifier.replace('"', '""') + '"'


def _reader_for(path: storage.DataPath) -> str:
    name = path.name.lower()
    if name.endswith(".parquet"):
        return "read_parquet(?, hive_partitioning = false)"
    # Text for every column so one bad value is a NULL on one row, not a failed file; mixed
    # CRLF/LF line endings (TLC's 2019 yellow CSVs) need strict_mode off; null_padding reads a row
    # cut short (or a blank line after the header) as one row, not as a shifted one. TLC's files are
    # always comma-separated (given, so the sniffer cannot guess otherwise on a quoted header).
    # No hive columns: a "key=value" folder somewhere above the data root must not turn into a column.
    return (
        "read_csv(?, header = true, all_varchar = true, strict_mode = false, null_padding = true, "
        "delim = ',', hive_partitioning = false)"
    )


def inspect_raw_file(
    con: duckdb.DuckDBPyConnection, source: str, path: storage.DataPath, read_path: Path | None = None
) -> RawFile:
    """Find a file's era and map its columns onto the trip schema.

    ``read_path``: a local copy of ``path`` to read instead (``storage.local_copies``).
    A ``ValueError`` naming the file, what it lacks and the eras tried when its header matches no
    era of ``source`` (a pickup time, and a pickup zone id or longitude/latitude, are required).
    """
    reader = _reader_for(path)
    described = con.execute(
        f"SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM {reader})",
        [storage.duckdb_path(read_path or path)],
    ).fetchall()
    types = {name: column_type for name, column_type in described}
    era, mapping = eras.match_era(source, path.name, [name for name, _ in described])
    columns: dict[str, tuple[str, str] | None] = {
        column: (mapping[column], types[mapping[column]]) if column in mapping else None
        for column in COLUMN_TYPES
    }
    return RawFile(path=path, reader=reader, columns=columns, era=era, read_path=read_path)


def check_one_era(raws: list[RawFile]) -> None:
    """Refuse a drop whose files belong to different eras: one of them is not what it claims."""
    by_era: dict[str, list[str]] = {}
    for raw in raws:
        if raw.era is not None:
            by_era.setdefault(raw.era.name, []).append(raw.path.name)
    if len(by_era) > 1:
        listed = "; ".join(f"{', '.join(names)}: era {era}" for era, names in by_era.items())
        raise ValueError(
            f"the drop mixes files of {len(by_era)} column eras ({listed}); a month's files come from "
            "one TLC publication: drop only the files of one era"
        )


def place_in_zones(con: duckdb.DuckDBPyConnection, raw: RawFile) -> RawFile:
    """A lon/lat-era file's trips with pickup and dropoff zone ids, as a local Parquet copy.

    The copy lives in a temporary folder that is removed when the returned ``RawFile`` is
    garbage-collected (at the latest when the process exits).
    """
    import shutil
    import tempfile
    import weakref

    from taxiflow.data import geo

    expressions = [f"{raw.expression(column)} AS {_quote(column)}" for column in TRIP_SCHEMA]
    expressions.append(f"{raw.pickup_present()} AS {PICKUP_PRESENT}")
    expressions += [f"{raw.expression(column)} AS {_quote(column)}" for column in eras.COORDINATE_COLUMNS]
    folder = Path(tempfile.mkdtemp(prefix="taxiflow-zones-"))
    try:
        target = folder / "trips.parquet"
        counts = geo.write_zoned_parquet(
            con, f"SELECT {', '.join(expressions)} FROM {raw.reader}", [storage.duckdb_path(raw.source_path)], target,
            coordinates={
                "pickup_zone_id": (eras.PICKUP_LON, eras.PICKUP_LAT),
                "dropoff_zone_id": (eras.DROPOFF_LON, eras.DROPOFF_LAT),
            },
        )
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    columns: dict[str, tuple[str, str] | None] = {column: (column, COLUMN_TYPES[column]) for column in TRIP_SCHEMA}
    zoned = RawFile(
        path=raw.path,
        reader="read_parquet(?, hive_partitioning = false)",
        columns=columns,
        era=raw.era,
        read_path=target,
        present_column=PICKUP_PRESENT,
        zone_counts={
            "rows_placed_by_coordinates": counts["rows"],
            "rows_in_no_zone": counts["pickup_zone_id_outside"],
        },
    )
    weakref.finalize(zoned, shutil.rmtree, folder, True)
    return zoned


def trips_query(
    raws: list[RawFile], window_start: datetime, window_end: datetime
) -> tuple[str, list[Any]]:
    """Every file's rows with a pickup inside the window (the month and its strays kept), in
    ``TRIP_SCHEMA`` order and types."""
    selects = []
    for raw in raws:
        expressions = ", ".join(
            f"{raw.expression(column)} AS {_quote(column)}" for column in TRIP_SCHEMA
        )
        selects.append(f"SELECT {expressions} FROM {raw.reader}")
    union = " UNION ALL ".join(selects)
    return (
        f"SELECT * FROM ({union}) WHERE pickup_at >= ? AND pickup_at < ?",
        [*(storage.duckdb_path(r.source_path) for r in raws), window_start, window_end],
    )
