"""Files that readers never see half-written: the one atomic writer every module uses.

A new file is written to a temporary local file first. On local disk it is hidden in its target's
own folder (same file system, so ``os.replace`` is atomic) and renamed over the target; on S3 it is
uploaded once complete (an object appears whole or not at all). A reader sees the old file or the
new one, never a mix. On any error the temporary file is removed and the target is left untouched.
A link planted at a local target is replaced, not followed. Local temporary names start with ``.``
and end in ``.tmp`` (or ``.part`` for downloads), which no landing watcher or partition glob picks up.

``local_facts`` gives a written file's name, bytes and sha256 from its local temporary file, before
it is uploaded: on S3 the lineage figures of what a task wrote cost no read back from the store.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

from taxiflow.data.storage import FILE_MODE, TEMP_SUFFIX, DataPath, replacing

__all__ = [
    "FILE_MODE", "TEMP_SUFFIX", "local_facts", "replacing", "sha256_of_local", "write_atomically",
    "write_json_atomically", "write_text_atomically",
]


def write_atomically(target: DataPath, write: Callable[[IO[bytes]], object]) -> DataPath:
    """Replace ``target`` with what ``write(binary_file)`` writes; returns ``target``."""
    with replacing(target) as temp, open(temp, "wb") as file:
        write(file)
    return target


def write_text_atomically(target: DataPath, text: str) -> DataPath:
    """Replace ``target`` with ``text`` (UTF-8); returns ``target``."""
    return write_atomically(target, lambda file: file.write(text.encode("utf-8")))


def write_json_atomically(target: DataPath, document: Mapping[str, Any]) -> DataPath:
    """Replace ``target`` with ``document`` as indented JSON and a final newline; returns ``target``."""
    return write_text_atomically(target, json.dumps(document, indent=2, ensure_ascii=False) + "\n")


def sha256_of_local(path: Path) -> str:
    """The hex sha256 of a local file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as reader:
        while block := reader.read(1024 * 1024):
            digest.update(block)
    return digest.hexdigest()


def local_facts(local: Path, name: str) -> dict[str, Any]:
    """``{"name", "bytes", "sha256"}`` of a local file about to become the file ``name``."""
    return {"name": name, "bytes": local.stat().st_size, "sha256": sha256_of_local(local)}
