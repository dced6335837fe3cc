"""``TlcDownloadOperator``: download one month of TLC trips into the landing folder (local or in the bucket)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from taxiflow.config import SUCCESS_MARKER, Partition
from taxiflow.data import files, storage
from taxiflow.data.storage import DataPath, data_paths
from taxiflow.data.tlc import TLC_CONN_ID, trip_file_name

if TYPE_CHECKING:
    from airflow.sdk import Context


def write_success_marker(folder: DataPath, data_file: DataPath, size: int, sha256: str) -> DataPath:
    """Write ``folder/_SUCCESS`` whole, after the data file, describing the complete file it vouches for."""
    manifest = {"file": data_file.name, "bytes": size, "sha256": sha256}
    return files.write_text_atomically(folder / SUCCESS_MARKER, json.dumps(manifest) + "\n")


class TlcDownloadOperator(BaseOperator):
    """Download ``<source>_tripdata_<month>.parquet`` into ``landing/<source>/<month>/``.

    The landing folder is below the data root: a local folder, or the bucket's
    ``landing/<source>/<month>/`` prefix when ``TAXIFLOW_DATA_DIR`` is ``s3://...`` (the download
    streams to a local temporary file and is uploaded as one object once complete).
    The data file appears under its final name only when complete; ``_SUCCESS`` is written after
    it (and removed first, so a failed re-download never leaves a marker vouching for nothing new).
    The ingest DAG's sensor waits for that marker. The zone table at ``reference/`` is refreshed
    first when it is missing or older than ``zone_table_max_age_days``. Returns the data file path.

    :param source: ``yellow`` or ``green`` (templated).
    :param month: ``YYYY-MM`` (templated).
    :param tlc_conn_id: the HTTP connection holding TLC's base URL (``nyc_tlc``); it must exist.
    :param zone_table_max_age_days: refresh the zone table when older than this.
    :param max_attempts: HTTP attempts per file before the task try fails.
    :param retry_wait_seconds: first wait between HTTP attempts (doubles each time).
    """

    template_fields = ("source", "month")
    ui_color = "#c6e2ff"

    def __init__(
        self,
        *,
        source: str,
        month: str,
        tlc_conn_id: str = TLC_CONN_ID,
        zone_table_max_age_days: float = 30,
        max_attempts: int = 3,
        retry_wait_seconds: float = 5.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.source = source
        self.month = month
        self.tlc_conn_id = tlc_conn_id
        self.zone_table_max_age_days = zone_table_max_age_days
        self.max_attempts = max_attempts
        self.retry_wait_seconds = retry_wait_seconds

    def execute(self, context: Context) -> str:
        try:
            trip_file_name(self.source, self.month)
        except ValueError as err:  # retrying cannot fix a bad source or month
            raise AirflowFailException(str(err)) from err

        from taxiflow.components.hooks import TlcHook  # the HTTP stack loads at run time, not at DAG parse time

        paths = data_paths()
        landing = paths.landing_dir(Partition(self.source, self.month))
        storage.make_dirs(landing)
        storage.remove(landing / SUCCESS_MARKER)

        with TlcHook(
            self.tlc_conn_id, max_attempts=self.max_attempts, retry_wait_seconds=self.retry_wait_seconds
        ) as hook:
            self._refresh_zone_table(hook, paths.zone_table)
            fetched = hook.download_month(self.source, self.month, landing)
        marker = write_success_marker(landing, fetched.path, fetched.size, fetched.sha256)
        self.log.info("Landed %s and %s", storage.url(fetched.path), marker.name)
        if "outlet_events" in context:  # the <source>_drop asset event (a bare execute({}) has no context)
            from taxiflow.components import lineage

            # the facts taken while the file streamed in: the landed file is not read again
            lineage.emit_drop(context["outlet_events"], Partition(self.source, self.month), [fetched.facts()], paths)
        return storage.url(fetched.path)

    def _refresh_zone_table(self, hook: Any, zone_table: DataPath) -> None:
        try:
            hook.download_zone_table(zone_table, max_age_days=self.zone_table_max_age_days)
        except Exception:
            if not zone_table.is_file():
                raise
            # Trips matter more than a fresh copy of a table that rarely changes.
            self.log.warning("Could not refresh %s; keeping the old copy", zone_table, exc_info=True)
