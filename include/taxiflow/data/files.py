"""Files that readers never see half-written: the one atomic writer every module uses.

A new file is written to a temporary local file first. On local disk it is hidden in its target's
own folder (same file system, so ``os.replace`` is atomic) and renamed over the target; on S3 it is
uploaded once complete (an object appears whole or not at all). A reader sees the old file or the
new one, never a mix. On any error the temporary file is removed and the target is left untouched.
A link planted at a local target is replaced, not followed. Local temporary names start with ``.``
and end in ``.tmp`` (or ``.part`` for downloads), which no landing watcher or partition glob picks up.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import IO, Any

from taxiflow.data.storage import FILE_MODE, TEMP_SUFFIX, DataPath, replacing

__all__ = [
    "FILE_MODE", "TEMP_SUFFIX", "replacing", "write_atomically", "write_json_atomically", "write_text_atomically",
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
