"""An event trigger that watches the request folder without touching it (for an ``AssetWatcher``).

The standard provider's file triggers that an ``AssetWatcher`` accepts delete the file they saw;
request files are the user's and are only ever read. :class:`RequestFilesTrigger` lists
``requests/*.json`` every ``poll_interval`` seconds and fires one event when files are new or
changed (by size and modification time), once each file has kept the same fingerprint for two
polls in a row (so a file still being written does not fire half-written). Its watermark, the
fingerprints it has fired for, lives in the asset's state store when the triggerer provides one
(Airflow 3.3), so a restart does not fire again for files it already reported; without a store it
fires once for every file after a restart, which is harmless: the consumer DAG dedupes by run id.

An event carries the names it is about, but the consumer scans the whole folder on every run, so
events that coalesce into one DAG run (several files in the same instant) lose nothing.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from airflow.triggers.base import BaseEventTrigger, TriggerEvent
from pydantic import JsonValue

WATERMARK_KEY = "fired_fingerprints"


def folder_fingerprints(folder: Path) -> dict[str, str]:
    """``{file name: "size:mtime_ns"}`` for the request files in ``folder`` (links and hidden ignored)."""
    from taxiflow.reports.request_files import request_files

    if not folder.is_dir():
        return {}
    found, _ignored = request_files(folder)
    prints = {}
    for path in found:
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            continue
        prints[path.name] = f"{info.st_size}:{info.st_mtime_ns}"
    return prints


class RequestFilesTrigger(BaseEventTrigger):
    """Fire when request files appear or change in ``folder`` (default: the data root's ``requests/``)."""

    def __init__(self, folder: str | None = None, poll_interval: float = 0.5, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.folder = folder
        self.poll_interval = poll_interval

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return f"{type(self).__module__}.{type(self).__qualname__}", {
            "folder": self.folder, "poll_interval": self.poll_interval,
        }

    def _folder(self) -> Path:
        from taxiflow.data.storage import data_paths

        return Path(self.folder) if self.folder else data_paths().requests

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
        folder = self._folder()
        fired = await self._load_watermark()
        previous: dict[str, str] = {}
        while True:
            current = await asyncio.to_thread(folder_fingerprints, folder)
            settled = {name: fp for name, fp in current.items() if previous.get(name) == fp}
            new = sorted(name for name, fp in settled.items() if fired.get(name) != fp)
            gone = [name for name in fired if name not in current]
            if new or gone:
                fired = {name: fp for name, fp in fired.items() if name in current}
                fired.update({name: settled[name] for name in new})
                await self._save_watermark(fired)
            if new:
                self.log.info("New or changed request files in %s: %s", folder, ", ".join(new))
                yield TriggerEvent({"folder": str(folder), "files": new})
            previous = current
            await asyncio.sleep(self.poll_interval)
