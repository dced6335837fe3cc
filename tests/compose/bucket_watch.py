"""A reader of the deployment's bucket that polls it all through a drill and writes down what it saw.

What it checks at every poll, only through the published S3 port, as any reader on any host would:

* no object under ``warehouse/`` or ``outputs/`` is empty (a truncated or half-done upload);
* a trips partition that has its ``_summary.json`` (its done marker, written last) holds, in the
  version folder the summary names, a ``trips.parquet`` with exactly the summary's rows (its
  month's ``rows_written`` and the ``rows_strays_kept`` for the months next to it);
* the warehouse as readers query it (``warehouse.connect``: complete partitions only) shows the
  watched month either not at all or with all its rows, never part of them;
* every report ``manifest.json`` names objects that exist, with the sizes it records.

Problems are collected (never raised in the thread); the drill asserts there were none.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field

from taxiflow.config import DataPaths, Partition

CHECKED_PREFIXES = ("data/warehouse/", "data/outputs/")


@dataclass
class BucketWatch:
    """Poll ``deployment``'s bucket every ``interval`` seconds between ``start()`` and ``stop()``."""

    deployment: object
    bucket: DataPaths
    partition: Partition
    interval: float = 0.5
    problems: list[str] = field(default_factory=list)
    visible_rows: list[int] = field(default_factory=list)  # the month's rows readers saw, per poll
    polls: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> BucketWatch:
        self._thread = threading.Thread(target=self._run, name="bucket-watch", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> BucketWatch:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=120)
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.check_once()
            except Exception as err:  # a reader's error is a finding too; keep watching
                self.problems.append(f"poll {self.polls}: {type(err).__name__}: {err}")
            self.polls += 1
            self._stop.wait(self.interval)

    def check_once(self) -> None:
        objects = self.deployment.objects("data/")
        for key, size in objects.items():
            if key.startswith(CHECKED_PREFIXES) and not key.endswith("/") and size == 0:
                self.problems.append(f"empty object visible: {key}")
        self._check_partition(objects)
        self._check_manifests(objects)

    def _check_partition(self, objects: dict[str, int]) -> None:
        import pyarrow.parquet as pq

        from taxiflow.data import storage, warehouse

        folder = self.bucket.trips_dir(self.partition)
        prefix = f"data/warehouse/trips/source={self.partition.source}/month={self.partition.month}/"
        summary_key = prefix + warehouse.SUMMARY_FILE
        complete_rows = None
        # this reader's own listing cache predates what the S3 listing above shows: forget it first
        storage.refresh(folder)
        if summary_key in objects:
            summary = json.loads((folder / warehouse.SUMMARY_FILE).read_bytes())
            # the summary names the version folder its trips.parquet was written to before it
            trips_key = f"{prefix}{summary['version']}/{warehouse.TRIPS_FILE}"
            if trips_key not in objects:
                self.problems.append(f"{summary_key} is there but {trips_key} is not")
                return
            with (folder / summary["version"] / warehouse.TRIPS_FILE).open("rb") as handle:
                rows = pq.ParquetFile(handle).metadata.num_rows
            stored = summary["rows_written"] + summary["rows_strays_kept"]
            if rows != stored:
                self.problems.append(f"{trips_key} has {rows} rows, its summary says {stored}")
            complete_rows = summary["rows_written"]  # the month's own trips: what the trips view shows of it
        con = warehouse.connect(self.bucket)
        try:
            tables = {row[0] for row in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
            visible = 0
            if "trips" in tables:
                visible = con.execute("SELECT count(*) FROM trips WHERE source = ? AND month = ?",
                                      [self.partition.source, self.partition.month]).fetchone()[0]
        finally:
            con.close()
        self.visible_rows.append(visible)
        if visible and complete_rows is not None and visible != complete_rows:
            self.problems.append(f"readers saw {visible} rows of {self.partition}, the partition holds {complete_rows}")
        if visible and complete_rows is None and summary_key not in self.deployment.objects(prefix):
            self.problems.append(f"readers saw {visible} rows of {self.partition} without its {warehouse.SUMMARY_FILE}")

    def _check_manifests(self, objects: dict[str, int]) -> None:
        for key in objects:
            if not (key.startswith("data/outputs/") and key.endswith("/manifest.json")):
                continue
            folder = key.rsplit("/", 1)[0]
            manifest = self._read_json(key)
            if manifest is None:
                continue  # removed between the listing and the read
            current = self.deployment.objects(folder + "/")
            for kind, entry in manifest["files"].items():
                target = f"{folder}/{entry.get('key') or entry['name']}"
                if target not in current:
                    # a newer manifest may have replaced this one and cleaned its version up: re-read it
                    time.sleep(0.2)
                    latest = self._read_json(key) or {}
                    if latest.get("version") == manifest.get("version"):
                        self.problems.append(f"{key} names {kind} {target}, which does not exist")
                elif current[target] != entry["bytes"]:
                    self.problems.append(f"{key} says {target} has {entry['bytes']} bytes, it has {current[target]}")

    def _read_json(self, key: str) -> dict | None:
        client = self.deployment.s3_client()
        try:
            return json.loads(client.get_object(Bucket="taxiflow", Key=key)["Body"].read())
        except client.exceptions.NoSuchKey:
            return None
