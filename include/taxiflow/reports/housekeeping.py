"""The maintenance sweep: what a crashed writer left that no later publish will clean up.

A publish cleans up after itself and after every writer of the same partition or report that
died before it (``versions.publish``, ``outputs.publish_report``: safe by construction, any age).
What stays is what nobody publishes again: a version of a partition or report whose last writer
died (its task failed for good, or a request was never asked again), and the parts of multipart
uploads a killed process or a dying server left on the server. This sweep removes them, by age:

* trips partition versions no ``_summary.json`` names, ``versions.ORPHAN_AGE`` old;
* raw versions (``raw/<source>/<month>/<version>/``) no partition's ``_summary.json`` names, as old
  (a refused drop, a copy whose task was killed), and staged copies of the layout before versions
  (``raw/<source>/.<month>.staged/``) whose files are as old;
* report versions no ``manifest.json`` names, ``outputs.ORPHAN_AGE`` old;
* multipart uploads below the data root started ``multipart.STALE_UPLOAD_AGE`` ago.

Each age is safe because a writer never names a version older than its ``PUBLISH_DEADLINE``
(docs/object-storage.md, "Cleaning up"). The ``storage_sweep`` DAG runs it daily; by hand::

    python -m taxiflow.reports.housekeeping        # prints what went, as JSON
"""

from __future__ import annotations

import json
import logging
from typing import Any

from taxiflow.config import DataPaths, Partition
from taxiflow.data import multipart, raw, storage, versions, warehouse
from taxiflow.data.storage import data_paths
from taxiflow.reports import outputs

log = logging.getLogger(__name__)


def sweep_partitions(paths: DataPaths | None = None) -> list[str]:
    """Delete abandoned versions of every trips partition (``source=*/month=*``); return their URLs."""
    paths = paths or data_paths()
    removed = []
    for source in storage.list_dir(paths.trips):
        if not source.name.startswith("source="):
            continue
        for month in storage.list_dir(source):
            if month.name.startswith("month="):
                removed += [storage.url(month / version) for version in versions.sweep(month, warehouse.SUMMARY_FILE)]
    return removed


def sweep_raw(paths: DataPaths | None = None) -> list[str]:
    """Delete raw versions no partition names (``raw/<source>/<month>/v-*``) and staged copies of the
    layout before versions (``raw/<source>/.<month>.staged/``); return their URLs."""
    paths = paths or data_paths()
    removed = []
    for source in storage.list_dir(paths.raw):
        removed += [storage.url(source / name) for name in raw.sweep_legacy_staged(source)]
        for month in storage.list_dir(source):
            if versions.is_version(month.name) or not (storage.is_remote(month) or month.is_dir()):
                continue
            try:
                partition = Partition(source.name, month.name)
            except ValueError:  # not a source/month folder
                continue
            published = warehouse.published_trips(partition, paths)
            keep = raw.raw_version(published.summary) if published else None
            removed += [storage.url(month / version) for version in raw.sweep(month, keep)]
    return removed


def sweep_reports(paths: DataPaths | None = None) -> list[str]:
    """Delete abandoned versions of every report folder in ``outputs/``; return their URLs."""
    paths = paths or data_paths()
    removed = []
    for folder in storage.list_dir(paths.outputs):
        if storage.is_remote(folder) or folder.is_dir():  # outputs/ also holds files (error documents, CSVs)
            removed += [storage.url(folder / version) for version in outputs.sweep_report(folder.name, paths)]
    return removed


def sweep_storage(paths: DataPaths | None = None) -> dict[str, list[str]]:
    """All four sweeps; what each removed (URLs of versions, keys of aborted uploads)."""
    paths = paths or data_paths()
    swept: dict[str, Any] = {
        "partition_versions": sweep_partitions(paths),
        "raw_versions": sweep_raw(paths),
        "report_versions": sweep_reports(paths),
        "multipart_uploads": multipart.sweep(paths.root),
    }
    for kind, items in swept.items():
        log.info("swept %d %s%s", len(items), kind.replace("_", " "), f": {', '.join(items)}" if items else "")
    return swept


def main() -> None:
    print(json.dumps(sweep_storage(), indent=2))


if __name__ == "__main__":
    main()
