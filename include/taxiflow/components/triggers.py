"""An event trigger that watches the request folder without touching it (for an ``AssetWatcher``).

The standard provider's file triggers that an ``AssetWatcher`` accepts delete the file they saw;
request files are the user's and are only ever read. :class:`RequestFilesTrigger` lists
``requests/*.json`` (a local folder, or the ``requests/`` prefix of the bucket when the data root is
``s3://``) every ``poll_interval`` seconds and fires one event when files are new or changed (by
size and modification time; in a bucket by ETag and LastModified). On disk a file fires once it
has kept the same fingerprint for two polls in a row, so a file still being written does not fire
half-written. In a bucket it fires on the first listing that shows it: an object is listed only
once its upload has completed, whole, so waiting for a second listing (one more poll interval)
would only add latency. Its watermark, the
fingerprints it has fired for, lives in the asset's state store when the triggerer provides one
(Airflow 3.3), so a restart does not fire again for files it already reported; without a store it
fires once for every file after a restart, which is harmless: the consumer DAG dedupes by run id.

An event carries the names it is about, but the consumer scans the whole folder on every run, so
events that coalesce into one DAG run (several files in the same instant) lose nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseEventTrigger, TriggerEvent
from pydantic import JsonValue

from taxiflow.config import env_seconds, is_request_file_name

WATERMARK_KEY = "fired_fingerprints"
# Seconds between listings: a local listing is free; every bucket listing is a billed LIST request
# (AWS S3: about 1.3 million a month at one every 2 s), hence a longer default there.
LOCAL_POLL_SECONDS = 0.5
WATCH_SECONDS_ENV = "TAXIFLOW_REQUESTS_WATCH_SECONDS"
BUCKET_POLL_SECONDS = 2.0


def folder_fingerprints(folder: Any) -> dict[str, str]:
    """``{file name: fingerprint}`` for the request files in ``folder`` (links and hidden ignored)."""
    from taxiflow.data.documents import list_files

    files, _others = list_files(folder)
    return {entry.name: entry.stamp for entry in files if is_request_file_name(entry.name)}


class RequestFilesTrigger(BaseEventTrigger):
    """Fire when request files appear or change in ``folder`` (default: the data root's ``requests/``)."""

    def __init__(self, folder: str | None = None, poll_interval: float | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.folder = folder
        self.poll_interval = poll_interval

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return f"{type(self).__module__}.{type(self).__qualname__}", {
            "folder": self.folder, "poll_interval": self.poll_interval,
        }

    def _folder(self) -> Any:
        from taxiflow.data.locations import location
        from taxiflow.data.storage import data_paths

        return location(self.folder) if self.folder else data_paths().requests

    def _interval(self, folder: Any) -> float:
        from taxiflow.data.storage import is_remote

        if self.poll_interval is not None:
            return self.poll_interval
        if is_remote(folder):
            return env_seconds(WATCH_SECONDS_ENV, BUCKET_POLL_SECONDS)
        return env_seconds(WATCH_SECONDS_ENV, LOCAL_POLL_SECONDS)

    async def _load_watermark(self) -> dict[str, str]:
        if self.asset_state_store is None:
            return {}
        stored = await self.asset_state_store.aget(WATERMARK_KEY, default={})
        if not isinstance(stored, dict):
            return {}
        return {str(name): str(fingerprint) for name, fingerprint in stored.items()}

    async def _save_watermark(self, fired: dict[str, str]) -> None:
        if self.asset_state_store is not None:
            await self.asset_state_store.aset(WATERMARK_KEY, dict[str, JsonValue](fired))

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from taxiflow.data.storage import is_remote, url

        folder = await asyncio.to_thread(self._folder)
        interval = self._interval(folder)
        appears_whole = is_remote(folder)  # an object is listed only once its upload completed
        fired = await self._load_watermark()
        previous: dict[str, str] = {}
        while True:
            try:
                current = await asyncio.to_thread(folder_fingerprints, folder)
            except OSError as err:  # a bucket unreachable for a moment must not end the watcher
                self.log.warning("Cannot list %s (%s); trying again in %.1f s", url(folder), err, interval)
                await asyncio.sleep(interval)
                continue
            settled = current if appears_whole else {
                name: fp for name, fp in current.items() if previous.get(name) == fp}
            new = sorted(name for name, fp in settled.items() if fired.get(name) != fp)
            gone = [name for name in fired if name not in current]
            if new or gone:
                fired = {name: fp for name, fp in fired.items() if name in current}
                fired.update({name: settled[name] for name in new})
                await self._save_watermark(fired)
            if new:
                self.log.info("New or changed request files in %s: %s", url(folder), ", ".join(new))
                yield TriggerEvent({"folder": url(folder), "files": new})
            previous = current
            await asyncio.sleep(interval)
