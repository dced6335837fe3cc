"""Copies of a drop's files into a fresh folder: what ``raw`` needs of both backends, in one operation.

``copy_into(files, folder)``: ``folder`` (a new raw version, named by nobody yet) gets a copy of
each file. Locally each file is opened without following a link planted since it was listed
(``NotARegularFile`` otherwise) and copied with its times; in a bucket each object is copied
server-side. Nothing needs swapping in: the copy is named (``raw._staged.json``, then the
partition's ``_summary.json``) only once it is complete.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from taxiflow.data import storage
from taxiflow.data.storage import DataPath


class NotARegularFile(ValueError):
    """A file to copy is a link or not a regular file; ``name`` and ``reason`` say which and why."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"{name}: {reason}")
        self.name = name
        self.reason = reason


def copy_into(
    files: Sequence[DataPath], folder: DataPath, seen: Sequence[Mapping[str, Any]] | None = None
) -> tuple[list[DataPath], list[dict[str, Any]]]:
    """Copy ``files`` into ``folder`` (same names); return the copies and their facts.

    Facts: ``{"name", "bytes", "sha256"}`` of each copy, taken from the bytes copied (lineage reads
    no copy again), or on S3 from ``seen`` (facts with the ETag of the object hashed, by name) for
    an object that still has that ETag (``storage.copy_file``). Sources are only read.
    """
    copies = [folder / file.name for file in files]
    if storage.is_remote(folder):
        by_name = {facts.get("name"): facts for facts in seen or []}
        pairs = zip(files, copies, strict=True)
        hashes = [storage.copy_file(file, copy, by_name.get(file.name)) for file, copy in pairs]
    else:
        folder.mkdir(parents=True, exist_ok=True)
        hashes = [_copy_regular_file(file, copy) for file, copy in zip(files, copies, strict=True)]
    pairs = zip(copies, hashes, strict=True)
    return copies, [{"name": copy.name, "bytes": size, "sha256": digest} for copy, (size, digest) in pairs]


def _copy_regular_file(source: Path, target: Path) -> tuple[int, str]:
    """Copy one local file without following a link planted since it was listed; keeps its times.

    Returns the size and sha256 of the bytes copied."""
    try:
        fd = os.open(source, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    except OSError as err:
        raise NotARegularFile(
            source.name, f"cannot open it as a regular file without following links ({err.strerror})"
        ) from None
    with os.fdopen(fd, "rb") as reader:
        info = os.fstat(reader.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise NotARegularFile(source.name, "not a regular file")
        with open(target, "xb") as writer:
            facts = storage.read_hashed(reader, writer)
    os.utime(target, ns=(info.st_atime_ns, info.st_mtime_ns))
    return facts
