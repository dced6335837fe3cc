"""A test-only seam: pause a process at a named point of an object-store write, so a drill can kill
the S3 server exactly there (tests/drills/test_s3_faults.py; docs/drills.md).

Off unless ``TAXIFLOW_FAULT_PAUSE_AT`` is set, which no deployment does. It holds an ``fnmatch``
pattern over point names ``<when>-<action>:<url>``, e.g. ``before-write:*/_summary.json`` or
``during-upload:*/trips.parquet*``:

* ``before-write`` / ``after-write``: around one object written (PUT, conditional PUT, server-side copy);
* ``before-delete`` / ``after-delete``: around one object or prefix deleted;
* ``during-upload``: inside the upload of a local file, after its first part reached the server
  (the armed upload goes in 5 MiB parts, so a file over 10 MiB is cut between parts).

The first point that matches writes its name to ``$TAXIFLOW_FAULT_DIR/reached`` and waits until
``$TAXIFLOW_FAULT_DIR/resume`` exists; later points go by (one pause per process).
"""

from __future__ import annotations

import fnmatch
import os
import time
from collections.abc import Generator
from contextlib import contextmanager
from pathlib import Path

PAUSE_AT_ENV = "TAXIFLOW_FAULT_PAUSE_AT"
SIGNAL_DIR_ENV = "TAXIFLOW_FAULT_DIR"
REACHED_FILE = "reached"
RESUME_FILE = "resume"
ARMED_PART_SIZE = 5 * 1024 * 1024  # the smallest part S3 (and SeaweedFS) accepts

_paused = False


def armed(point: str) -> bool:
    """True if ``point`` is where this process is to pause (and it has not paused yet)."""
    pattern = os.environ.get(PAUSE_AT_ENV, "")
    return bool(pattern) and not _paused and fnmatch.fnmatchcase(point, pattern)


def checkpoint(point: str) -> None:
    """Pause here if ``point`` is armed: signal ``reached``, wait for ``resume``."""
    global _paused
    if not armed(point):
        return
    _paused = True
    folder = Path(os.environ[SIGNAL_DIR_ENV])
    (folder / REACHED_FILE).write_text(point)
    while not (folder / RESUME_FILE).exists():
        time.sleep(0.02)


@contextmanager
def around(action: str, url: str) -> Generator[None, None, None]:
    """``before-<action>:<url>`` and ``after-<action>:<url>`` checkpoints around the block."""
    checkpoint(f"before-{action}:{url}")
    # a failed write has no after-point: its exception goes on to the caller
    yield  # ruff: ignore[fallible-context-manager]
    checkpoint(f"after-{action}:{url}")


class UploadProgress:
    """An fsspec upload callback that stops at ``during-upload:<url>`` once the first part is sent."""

    def __init__(self, url: str) -> None:
        self.point = f"during-upload:{url}"

    def set_size(self, size: int) -> None:
        pass

    def relative_update(self, inc: int = 1) -> None:
        checkpoint(self.point)

    def branched(self, *args: object, **kwargs: object) -> None:
        return None
