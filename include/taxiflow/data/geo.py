"""Pickup and dropoff longitude/latitude to TLC taxi zones, by point in polygon.

Yellow and green files before July 2016 carry coordinates instead of zone ids. ``ZoneIndex`` puts
points in TLC's own zone polygons (``taxi_zones.zip``, the shapefile TLC publishes, shipped in this
package): the polygons are in NAD83 / New York Long Island (US feet, EPSG:2263), so WGS84 lon/lat
are projected first (pyproj), then looked up in a shapely 2 ``STRtree``, all vectorised (numpy
arrays in, an array of zone ids out). A point that lies in no zone (in the river, outside the city,
at 0,0, missing) gets no zone id: the metrics count it under borough "Unknown". A point on the
border of two zones goes to the zone listed first in the shapefile.

``write_zoned_parquet`` runs a DuckDB query in record batches, places each batch's points and
writes the trips with their zone ids to a local Parquet file: memory stays at one batch however
big the month is.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import duckdb
    import numpy as np

ZONE_SHAPEFILE = "taxi_zones.zip"
SHAPEFILE_CRS = "EPSG:2263"  # NAD83 / New York Long Island (ftUS): what TLC's .prj says
WGS84 = "EPSG:4326"
# Points outside this box cannot be in a zone (the zones' extent, with a margin): they skip the
# polygon test, which makes 0,0 and other junk coordinates cheap.
LON_RANGE = (-74.30, -73.65)
LAT_RANGE = (40.45, 40.95)
NO_ZONE = -1
BATCH_ROWS = 1 << 20


# Cells of a grid over the zones (US feet): a point in a cell that lies wholly inside one zone gets
# that zone at once; only points in cells that cross a zone border take the exact polygon test.
GRID_CELL_FEET = 250.0
_BORDER, _OUTSIDE = -2, NO_ZONE


@dataclass(frozen=True)
class ZoneIndex:
    """TLC's zone polygons (EPSG:2263), a grid of which cells lie wholly in one zone, and the projection."""

    polygons: Any  # np.ndarray[object] of prepared shapely polygons (zones 56 and 103 have several)
    zone_ids: Any  # np.ndarray[int32], the zone id of each polygon
    bounds: Any  # np.ndarray (n, 4): each polygon's xmin, ymin, xmax, ymax
    grid: Any  # np.ndarray[int32] (ny * nx): a zone id, _BORDER or _OUTSIDE per cell
    origin: tuple[float, float]
    shape: tuple[int, int]  # (nx, ny)
    transformer: Any  # pyproj.Transformer WGS84 -> EPSG:2263

    def lookup(self, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        """Zone id of each (lon, lat) point (WGS84 degrees); ``NO_ZONE`` where none contains it."""
        import numpy as np

        lon = np.asarray(lon, dtype=np.float64)
        lat = np.asarray(lat, dtype=np.float64)
        result = np.full(lon.shape, NO_ZONE, dtype=np.int32)
        inside = (
            (lon >= LON_RANGE[0]) & (lon <= LON_RANGE[1]) & (lat >= LAT_RANGE[0]) & (lat <= LAT_RANGE[1])
        )  # NaN compares false: missing coordinates stay without a zone
        candidates = np.flatnonzero(inside)
        if candidates.size == 0:
            return result
        x, y = self.transformer.transform(lon[candidates], lat[candidates])
        nx, ny = self.shape
        ix = np.floor((x - self.origin[0]) / GRID_CELL_FEET).astype(np.int64)
        iy = np.floor((y - self.origin[1]) / GRID_CELL_FEET).astype(np.int64)
        on_grid = (ix >= 0) & (ix < nx) & (iy >= 0) & (iy < ny)
        cell_zone = np.full(candidates.shape, _OUTSIDE, dtype=np.int32)
        cell_zone[on_grid] = self.grid[iy[on_grid] * nx + ix[on_grid]]
        border = np.flatnonzero(cell_zone == _BORDER)
        if border.size:
            cell_zone[border] = self._exact(x[border], y[border])
        result[candidates] = cell_zone
        return result

    def _exact(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Point in polygon for points near a border: each polygon tests the points in its bounds."""
        import numpy as np
        import shapely

        found = np.full(x.shape, NO_ZONE, dtype=np.int32)
        order = np.argsort(x, kind="stable")
        sorted_x = x[order]
        # Reversed, so where two polygons share a border point the one listed first wins.
        for i in range(len(self.polygons) - 1, -1, -1):
            x0, y0, x1, y1 = self.bounds[i]
            low, high = np.searchsorted(sorted_x, x0, "left"), np.searchsorted(sorted_x, x1, "right")
            near = order[low:high]
            near = near[(y[near] >= y0) & (y[near] <= y1)]
            if near.size:
                hit = shapely.intersects_xy(self.polygons[i], x[near], y[near])
                found[near[hit]] = self.zone_ids[i]
        return found


@functools.cache
def zone_index() -> ZoneIndex:
    """The zone index, built once per process from the packaged shapefile (~1 s)."""
    import numpy as np
    import pyproj
    import shapefile  # pyshp
    import shapely
    from shapely.geometry import shape

    with resources.as_file(resources.files("taxiflow.data") / ZONE_SHAPEFILE) as path:
        reader = shapefile.Reader(str(path))
        try:
            polygons, ids = [], []
            for record in reader.iterShapeRecords():
                polygons.append(shape(record.shape.__geo_interface__))
                ids.append(int(record.record["LocationID"]))
        finally:
            reader.close()
    geometries = np.asarray(polygons, dtype=object)
    zone_ids = np.asarray(ids, dtype=np.int32)
    shapely.prepare(geometries)
    # The grid: STRtree over the cells, queried with each (prepared) polygon.
    x0, y0, x1, y1 = shapely.total_bounds(geometries)
    nx, ny = int(np.ceil((x1 - x0) / GRID_CELL_FEET)), int(np.ceil((y1 - y0) / GRID_CELL_FEET))
    column, row = np.meshgrid(np.arange(nx), np.arange(ny), indexing="xy")
    left, bottom = x0 + column.ravel() * GRID_CELL_FEET, y0 + row.ravel() * GRID_CELL_FEET
    cells = shapely.STRtree(shapely.box(left, bottom, left + GRID_CELL_FEET, bottom + GRID_CELL_FEET))
    grid = np.full(nx * ny, _OUTSIDE, dtype=np.int32)
    _, touched = cells.query(geometries, predicate="intersects")
    grid[touched] = _BORDER
    # Reversed, so that a cell inside two overlapping polygons gets the first one's zone.
    polygon_index, cell_index = cells.query(geometries, predicate="contains_properly")
    reverse = np.argsort(-polygon_index, kind="stable")
    grid[cell_index[reverse]] = zone_ids[polygon_index[reverse]]
    return ZoneIndex(
        polygons=geometries,
        zone_ids=zone_ids,
        bounds=shapely.bounds(geometries),
        grid=grid,
        origin=(float(x0), float(y0)),
        shape=(nx, ny),
        transformer=pyproj.Transformer.from_crs(WGS84, SHAPEFILE_CRS, always_xy=True),
    )


def write_zoned_parquet(
    con: duckdb.DuckDBPyConnection,
    query: str,
    params: list[Any],
    target: Path,
    coordinates: dict[str, tuple[str, str]],
) -> dict[str, int]:
    """Run ``query``, put each coordinate pair into a zone column, write the rest plus zones to ``target``.

    ``coordinates`` maps an output zone column to the query's (longitude, latitude) columns, which
    are dropped from the output; the zone columns (INTEGER, NULL where no zone) take the place of
    same-named columns of the query. Returns rows written and, per zone column, the rows with
    coordinates in no zone (``<column>_outside``).
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    index = zone_index()
    reader = con.sql(query, params=params).to_arrow_reader(BATCH_ROWS)
    dropped = {name for pair in coordinates.values() for name in pair}
    counts = {"rows": 0, **{f"{column}_outside": 0 for column in coordinates}}
    writer = None
    try:
        for batch in reader:
            columns, names = [], []
            for name in batch.schema.names:
                if name in dropped:
                    continue
                if name in coordinates:
                    lon_name, lat_name = coordinates[name]
                    lon = pc.fill_null(batch.column(lon_name).cast(pa.float64()), np.nan).to_numpy()
                    lat = pc.fill_null(batch.column(lat_name).cast(pa.float64()), np.nan).to_numpy()
                    zones = index.lookup(lon, lat)
                    missing = zones == NO_ZONE
                    counts[f"{name}_outside"] += int(missing.sum())
                    columns.append(pa.array(zones, type=pa.int32(), mask=missing))
                else:
                    columns.append(batch.column(name))
                names.append(name)
            table = pa.Table.from_arrays(columns, names=names)
            if writer is None:
                writer = pq.ParquetWriter(str(target), table.schema, compression="snappy")
            writer.write_table(table)
            counts["rows"] += batch.num_rows
        if writer is None:  # no rows at all: still a valid, empty file with the right columns
            schema = pa.schema([
                (f.name, pa.int32() if f.name in coordinates else f.type)
                for f in reader.schema if f.name not in dropped
            ])
            writer = pq.ParquetWriter(str(target), schema, compression="snappy")
    finally:
        if writer is not None:
            writer.close()
    return counts
