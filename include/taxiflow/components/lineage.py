"""Lineage as Airflow Assets: drop -> raw -> trips -> metrics -> report, with every month's figures.

One static Asset per source and stage, and one for the reports, so the Assets page lists a handful
of assets and the graph of any of them (its *data* view: tasks with their inlets and outlets) reads
``<source>_drop`` -> ``copy_to_raw_<source>`` -> ``<source>_raw`` -> ``process_<source>`` ->
``<source>_trips`` -> ``build_metrics_<source>`` -> ``<source>_metrics`` -> ``render_report`` ->
``borough_reports``.

A month is not an asset of its own (months and report names are data, not code; an asset per month
would fill the Assets page with hundreds of entries): each asset event carries the month (or the
report name) as its **partition key**, which the UI shows on the event (``/api/v2/assets/events``
returns it as ``partition_key``), and the figures of that month in its ``extra``:

* ``<source>_drop`` (``wait_for_<source>`` when it sees the drop complete, and ``download_<source>`` of
  ``download_tlc_trips`` when it lands one): the drop's files, bytes, sha256;
* ``<source>_raw`` (``copy_to_raw_<source>``, when the drop was copied into a new raw version for
  validation): the copied files, bytes, sha256, and the version's folder (``staged_in``).
  ``process_<source>`` then validates that copy and publishes it with the partition, or refuses it
  and keeps the last good one: the month's ``<source>_trips`` event is the one that says a copy
  was published, and names its raw files;
* ``<source>_trips`` (``process_<source>``): rows read, written, rejected (by reason), outside the
  month, with an unknown zone, and the partition file's bytes and sha256, as in its ``_summary.json``;
* ``<source>_metrics`` (``create_metrics``): rows and trips of the month's metrics, their files;
* ``borough_reports`` (``render_report``): the request, the published files, and the partitions
  (source, month) the report counted, each with its rows written and when it was ingested.

Asset URIs are the data's own location below the data root (``file:///...`` or ``s3://...``), so
they say where to look. The events are recorded only when the task succeeds: a refused drop leaves
``<source>_trips``'s last event, like the data, as it was (docs/lineage.md).

``*_extra`` builders are plain functions of summaries and file facts (unit-tested without Airflow);
``*_event`` collect one task's extra, ``emit`` records it on the task's ``outlet_events``. Files
taxiflow writes (trips, metrics) carry facts taken from the local file before upload
(``warehouse.write_parquet_atomically``): never read back from the store. A drop is hashed by
reading it (``drop_facts``, each with the ETag served with the bytes hashed); its staged copy carries
the facts of the bytes ``copy_to_raw`` copied (``raw.copied_facts``): on S3 the sensor's, passed on
through XCom (``DROP_FACTS_KEY``), for an object that still has that ETag.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from taxiflow.config import SOURCES, DataPaths, Partition
from taxiflow.data import storage, warehouse

if TYPE_CHECKING:
    from airflow.sdk import Asset

    from taxiflow.data.storage import DataPath

# Asset group shown on the Assets page, so taxiflow's assets sort together and read as one family.
ASSET_GROUP = "taxiflow"
REPORTS_ASSET_NAME = "borough_reports"
# The XCom key under which ``wait_for_<source>`` hands ``drop_facts`` to ``copy_to_raw_<source>``.
DROP_FACTS_KEY = "drop_facts"

# The figures of a trips partition's ``_summary.json`` an event repeats, in this order.
PARTITION_COUNTS = (
    "rows_read", "rows_written", "rows_rejected", "rows_outside_month", "rows_unknown_zone",
)


def drop_asset_name(source: str) -> str:
    return f"{source}_drop"


def raw_asset_name(source: str) -> str:
    return f"{source}_raw"


def trips_asset_name(source: str) -> str:
    return f"{source}_trips"


def metrics_asset_name(source: str) -> str:
    return f"{source}_metrics"


def _uri(path: DataPath) -> str:
    """An asset URI for a place below the data root: ``file:///abs/path`` or ``s3://bucket/key``."""
    if storage.is_remote(path):
        return storage.url(path)
    return "file://" + quote(str(path), safe="/=")  # keeps source=green readable (as_uri escapes "=")


def _asset(name: str, location: DataPath, description: str) -> Asset:
    from airflow.sdk import Asset

    return Asset(name=name, uri=_uri(location), group=ASSET_GROUP, extra={"description": description})


def drop_asset(source: str, paths: DataPaths | None = None) -> Asset:
    """``landing/<source>/``: the drops of one source, one event per complete month."""
    paths = paths or storage.names()
    return _asset(drop_asset_name(source), paths.landing / source,
                  f"{SOURCES[source].label} drops in landing/ (data files and _SUCCESS), by month")


def raw_asset(source: str, paths: DataPaths | None = None) -> Asset:
    """``raw/<source>/``: the last validated copy of each month's drop."""
    paths = paths or storage.names()
    return _asset(raw_asset_name(source), paths.raw / source,
                  f"{SOURCES[source].label} raw copies of validated drops, by month")


def trips_asset(source: str, paths: DataPaths | None = None) -> Asset:
    """``warehouse/trips/source=<source>/``: the normalised trips, one partition per month."""
    paths = paths or storage.names()
    return _asset(trips_asset_name(source), paths.trips_source_dir(source),
                  f"{SOURCES[source].label} normalised trips (warehouse partitions), by month")


def metrics_asset(source: str, paths: DataPaths | None = None) -> Asset:
    """``warehouse/metrics/hourly_borough/source=<source>/`` (and ``hourly_zone``): what reports read."""
    paths = paths or storage.names()
    return _asset(metrics_asset_name(source), paths.metrics_source_dir(warehouse.HOURLY_BOROUGH, source),
                  f"{SOURCES[source].label} hourly metrics by zone and borough, by month")


def reports_asset(paths: DataPaths | None = None) -> Asset:
    """``outputs/``: every published borough report, one event per publish (partition key: its name)."""
    paths = paths or storage.names()
    return _asset(REPORTS_ASSET_NAME, paths.outputs, "Borough reports (PNG, CSV, manifest), by report name")


# --- file facts ------------------------------------------------------------------------------------


def file_facts(files: Iterable[DataPath]) -> list[dict[str, Any]]:
    """``[{"name", "bytes", "sha256"}]`` of each file, in the order given: size and hash from one read."""
    return [{key: facts[key] for key in ("name", "bytes", "sha256")} for facts in tagged_facts(files)]


def tagged_facts(files: Iterable[DataPath]) -> list[dict[str, Any]]:
    """``file_facts`` with ``etag``: the ETag served with the bytes hashed (None on local disk)."""
    facts = []
    for file in files:
        size, digest, etag = storage.sha256(file)
        facts.append({"name": file.name, "bytes": size, "sha256": digest, "etag": etag})
    return facts


# --- extras ----------------------------------------------------------------------------------------


def _totals(files: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    return {"files": [dict(f) for f in files], "bytes": sum(int(f["bytes"]) for f in files)}


def drop_extra(partition: Partition, files: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """A complete drop: which files, how many bytes, their checksums."""
    return {"source": partition.source, "month": partition.month, **_totals(files)}


def raw_extra(partition: Partition, files: Sequence[Mapping[str, Any]], staged_in: str) -> dict[str, Any]:
    """A drop copied into raw, waiting to be validated by ``process_<source>``."""
    return {"source": partition.source, "month": partition.month, **_totals(files), "staged_in": staged_in}


def partition_extra(summary: Mapping[str, Any], trips_file: Mapping[str, Any]) -> dict[str, Any]:
    """A trips partition: the counts of its ``_summary.json``, its raw files, its file's bytes and sha256."""
    extra: dict[str, Any] = {"source": summary["source"], "month": summary["month"]}
    extra.update({key: summary[key] for key in PARTITION_COUNTS if key in summary})
    for key in ("rows_rejected_by_reason", "rows_outside_month_by_month", "pickup_min", "pickup_max",
                "written_at"):
        if key in summary:
            extra[key] = summary[key]
    extra.update({"raw_files": [f["name"] for f in summary.get("raw_files", [])],
                  "file": trips_file["name"], "bytes": trips_file["bytes"], "sha256": trips_file["sha256"]})
    return extra


def metrics_extra(result: Mapping[str, Any], files: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """A month's metrics: rows per table, trips counted (in all and by borough), the files."""
    return {
        "source": result["source"], "month": result["month"],
        "trips": result["trips"], "hourly_zone_rows": result["rows"], "hourly_borough_rows": result["borough_rows"],
        "trips_by_borough": dict(result.get("boroughs", {})),
        **_totals(files),
    }


def report_extra(
    request: Mapping[str, Any], manifest: Mapping[str, Any], partitions: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    """A published report: its request, files (bytes, sha256) and the partitions it counted."""
    files = [{"name": entry.get("name", role), "bytes": entry.get("bytes"), "sha256": entry.get("sha256")}
             for role, entry in sorted(manifest.get("files", {}).items())]
    return {
        "name": manifest.get("name", request.get("name")),
        "request": {key: request[key] for key in ("borough", "start_date", "end_date", "sources") if key in request},
        "total_trips": manifest.get("total_trips"),
        "run_id": manifest.get("run_id"),
        "written_at": manifest.get("written_at"),
        "files": files,
        "partitions": [dict(p) for p in partitions],
    }


def partition_used(summary: Mapping[str, Any]) -> dict[str, Any]:
    """How a report names one partition it counted: source, month, rows written, when ingested."""
    return {"source": summary["source"], "month": summary["month"], "rows_written": summary.get("rows_written"),
            "written_at": summary.get("written_at")}


# --- collecting the facts on a worker --------------------------------------------------------------


def metrics_files(result: Mapping[str, Any]) -> list[dict[str, Any]]:
    """File facts of a month's two metrics files (``hourly_zone``, ``hourly_borough``), named by table,
    as ``build_metrics`` took them from its local files before upload."""
    tables = (warehouse.HOURLY_ZONE, warehouse.HOURLY_BOROUGH)
    return [{**result["files"][table], "name": f"{table}/{result['files'][table]['name']}"} for table in tables]


def partitions_used(sources: Iterable[str], months: Iterable[str],
                    paths: DataPaths | None = None) -> list[dict[str, Any]]:
    """What a report counted: each (source, month) partition it read, from its ``_summary.json``;
    a month with no partition (none ingested, or TLC published none) is named with ``rows_written`` None."""
    from taxiflow.data.ingest import read_summary

    used = []
    for source in sources:
        for month in months:
            partition = Partition(source, month)
            try:
                used.append(partition_used(read_summary(partition, paths)))
            except FileNotFoundError:
                used.append({"source": source, "month": month, "rows_written": None, "written_at": None})
    return used


def emit(outlet_events: Any, asset: Asset, partition_key: str, extra: Mapping[str, Any]) -> None:
    """Record one asset event with ``extra`` for ``partition_key`` on a running task's outlets."""
    event = outlet_events[asset]
    event.extra = dict(extra)
    event.add_partitions(partition_key)


# --- what DAG files use: each task's inlets and outlets, and its events ------------------------------


def drop_outlets(source: str) -> dict[str, list[Asset]]:
    """``wait_for_<source>`` announces a complete drop."""
    return {"outlets": [drop_asset(source)]}


def raw_lineage(source: str) -> dict[str, list[Asset]]:
    """``copy_to_raw_<source>`` copies the drop into raw."""
    return {"inlets": [drop_asset(source)], "outlets": [raw_asset(source)]}


def trips_lineage(source: str) -> dict[str, list[Asset]]:
    """``process_<source>`` validates the raw copy and publishes the trips partition."""
    return {"inlets": [raw_asset(source)], "outlets": [trips_asset(source)]}


def metrics_lineage(source: str) -> dict[str, list[Asset]]:
    """``build_metrics_<source>`` reads a trips partition and writes its metrics."""
    return {"inlets": [trips_asset(source)], "outlets": [metrics_asset(source)]}


def report_lineage(sources: Iterable[str]) -> dict[str, list[Asset]]:
    """``render_report`` reads the metrics of the ingested sources and publishes a report."""
    return {"inlets": [metrics_asset(source) for source in sources], "outlets": [reports_asset()]}


def emit_drop(outlet_events: Any, partition: Partition, facts: Sequence[Mapping[str, Any]],
              paths: DataPaths | None = None) -> Sequence[Mapping[str, Any]]:
    """The drop event of a complete month from its data files' ``tagged_facts``; returns ``facts``."""
    emit(outlet_events, drop_asset(partition.source, paths), partition.month, drop_event(partition, facts))
    return facts


def drop_facts(partition: Partition, paths: DataPaths | None = None) -> list[dict[str, Any]]:
    """The drop's data files as the sensor hashed them (``tagged_facts``): ``copy_to_raw`` copies an
    object that still has the ETag hashed without reading it again (``raw.copy_to_raw``'s ``seen``)."""
    from taxiflow.data import landing

    return tagged_facts(landing.data_files(partition, paths))


def drop_event(partition: Partition, facts: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """``emit_drop``'s extra, from ``drop_facts`` (what ``benchmarks/bench_storage.py`` counts as the sensor's work)."""
    return drop_extra(partition, [{key: f[key] for key in ("name", "bytes", "sha256")} for f in facts])


def emit_raw(outlet_events: Any, partition: Partition, copied: Sequence[DataPath],
             paths: DataPaths | None = None) -> dict[str, Any]:
    """The raw event of a drop just copied into raw (``copied``: the staged files)."""
    paths = paths or storage.data_paths()
    extra = raw_event(partition, copied, paths)
    emit(outlet_events, raw_asset(partition.source, paths), partition.month, extra)
    return extra


def raw_event(partition: Partition, copied: Sequence[DataPath], paths: DataPaths | None = None) -> dict[str, Any]:
    """``emit_raw``'s extra; ``staged_in``: the raw version the drop was copied into."""
    paths = paths or storage.data_paths()
    from taxiflow.data import raw

    staged_in = copied[0].parent if copied else paths.raw_dir(partition)
    facts = raw.copied_facts(partition, list(copied), paths)  # taken while copying: no copy read again
    return raw_extra(partition, facts if facts is not None else file_facts(copied), storage.url(staged_in))


def emit_partition(outlet_events: Any, partition: Partition, summary: Mapping[str, Any],
                   paths: DataPaths | None = None) -> dict[str, Any]:
    """The trips event of a partition just published (``summary``: its ``_summary.json``)."""
    paths = paths or storage.data_paths()
    extra = partition_event(summary)
    emit(outlet_events, trips_asset(partition.source, paths), partition.month, extra)
    return extra


def emit_metrics(outlet_events: Any, partition: Partition, result: Mapping[str, Any],
                 paths: DataPaths | None = None) -> dict[str, Any]:
    """The metrics event of a month whose metrics were just rebuilt (``result``: ``build_metrics``'s)."""
    extra = metrics_event(result)
    emit(outlet_events, metrics_asset(partition.source, paths), partition.month, extra)
    return extra


def partition_event(summary: Mapping[str, Any]) -> dict[str, Any]:
    """``emit_partition``'s extra: the trips file's facts are those ``process_partition`` took from its
    local file before upload (``summary["trips_file"]``), not read back from the store."""
    return partition_extra(summary, summary["trips_file"])


def metrics_event(result: Mapping[str, Any]) -> dict[str, Any]:
    """``emit_metrics``'s extra (the files' facts from ``result``: taken before upload)."""
    return metrics_extra(result, metrics_files(result))


def emit_report(outlet_events: Any, request: Mapping[str, Any], manifest: Mapping[str, Any],
                months: Iterable[str], paths: DataPaths | None = None) -> dict[str, Any]:
    """The reports event of one publish: partition key = the report's name."""
    extra = report_extra(request, manifest, partitions_used(request["sources"], months, paths))
    emit(outlet_events, reports_asset(paths), str(extra["name"]), extra)
    return extra
