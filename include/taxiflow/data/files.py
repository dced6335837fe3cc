"""Files that readers never see half-written: the one atomic writer every module uses.

A new file is written under a hidden temporary name in its target's own folder (same file system,
so ``os.replace`` is atomic), then renamed over the target: a reader sees the old file or the new
one, never a mix. On any error the temporary file is removed and the target is left untouched. A
link planted at the target is replaced, not followed. The temporary names start with ``.`` and end
in ``.tmp`` (or ``.part`` for downloads), which no landing watcher or partition glob picks up.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Generator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

TEMP_SUFFIX = ".tmp"

# mkstemp creates files readable by their owner only; what we write is for whoever reads the data root.
FILE_MODE = 0o644


@contextmanager
def replacing(target: Path, suffix: str = TEMP_SUFFIX) -> Generator[Path, None, None]:
    """Yield a fresh hidden temporary path beside ``target``; it replaces ``target`` if the block succeeds.

    Every caller gets its own temporary name, so concurrent writers of one target never collide
    (the last rename wins, whole).
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=suffix)
    os.close(handle)
    temp = Path(name)
    try:
        yield temp
        os.chmod(temp, FILE_MODE)
        os.replace(temp, target)
    finally:
        temp.unlink(missing_ok=True)


def write_atomically(target: Path, write: Callable[[IO[bytes]], object]) -> Path:
    """Replace ``target`` with what ``write(binary_file)`` writes; returns ``target``."""
    with replacing(target) as temp, open(temp, "wb") as file:
        write(file)
    return target


def write_text_atomically(target: Path, text: str) -> Path:
    """Replace ``target`` with ``text`` (UTF-8); returns ``target``."""
    return write_atomically(target, lambda file: file.write(text.encode("utf-8")))


def write_json_atomically(target: Path, document: Mapping[str, Any]) -> Path:
    """Replace ``target`` with ``document`` as indented JSON and a final newline; returns ``target``."""
    return write_text_atomically(target, json.dumps(document, indent=2, ensure_ascii=False) + "\n")
