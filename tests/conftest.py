"""Fixtures shared by the package tests: a private data root, and the real TLC files in tests/data/tlc.

Airflow reads ``AIRFLOW_HOME`` once, when first imported: the test process gets a throwaway one
(removed at exit), so tests never touch a developer's ``~/airflow`` or a real deployment. The
end-to-end tests' Airflow processes get their own homes from ``taxiflow.local.stack``.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections import Counter
from pathlib import Path

_AIRFLOW_HOME = tempfile.mkdtemp(prefix="taxiflow-tests-airflow-home-")
atexit.register(shutil.rmtree, _AIRFLOW_HOME, ignore_errors=True)
os.environ["AIRFLOW_HOME"] = _AIRFLOW_HOME
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"

# Imported only now: Airflow (which taxiflow may pull in) reads AIRFLOW_HOME once, at import.
import pytest  # ruff: ignore[module-import-not-at-top-of-file]

from taxiflow.config import DATA_DIR_ENV, DataPaths  # ruff: ignore[module-import-not-at-top-of-file]

REPO_ROOT = Path(__file__).resolve().parent.parent
SHIPPED_ZONE_TABLE = REPO_ROOT / "data" / "reference" / "taxi_zone_lookup.csv"
TLC_DIR = REPO_ROOT / "tests" / "data" / "tlc"  # shipped with the repository; see its README

# The compose tier's fixtures (one deployment per session: tests/compose/ and the compose drills), and
# the module order and per-module times of every run (one live deployment up at a time).
pytest_plugins = ["tests.compose.fixtures", "tests.support.module_times"]


@pytest.fixture
def data_root(tmp_path, monkeypatch) -> DataPaths:
    """A data root in ``tmp_path`` with only the shipped zone table; TAXIFLOW_DATA_DIR points at it."""
    root = tmp_path / "data"
    (root / "reference").mkdir(parents=True)
    shutil.copyfile(SHIPPED_ZONE_TABLE, root / "reference" / SHIPPED_ZONE_TABLE.name)
    monkeypatch.setenv(DATA_DIR_ENV, str(root))
    return DataPaths(root.resolve())


@pytest.fixture(scope="session")
def tlc_dir() -> Path:
    """``tests/data/tlc``: real TLC files nobody here wrote, shipped with the repository."""
    if not (TLC_DIR / "SHA256SUMS").is_file():
        pytest.skip(f"real TLC files missing from {TLC_DIR}: they ship with the repository "
                    "(restore them with `git checkout -- tests/data/tlc`)")
    return TLC_DIR


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory):
    """A real S3 server (SeaweedFS ``weed mini``) on loopback free ports, stopped by its PID at the end."""
    from tests.support.seaweedfs import start_seaweedfs

    server = start_seaweedfs(tmp_path_factory.mktemp("seaweedfs"), bucket="taxiflow-tests")
    yield server
    server.stop()


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def any_root(request, tmp_path, monkeypatch) -> DataPaths:
    """A fresh data root on each backend: a local folder, and a fresh prefix of the SeaweedFS bucket."""
    if request.param == "local":
        root = tmp_path / "data"
        root.mkdir()
        monkeypatch.setenv(DATA_DIR_ENV, str(root))
    else:
        import uuid

        server = request.getfixturevalue("seaweedfs")
        for name, value in server.env(prefix=f"t-{uuid.uuid4().hex[:12]}").items():
            monkeypatch.setenv(name, value)
    from taxiflow.data.storage import data_paths

    return data_paths()


@pytest.fixture
def s3_requests(monkeypatch) -> Counter:
    """Every request s3fs sends from now on, by operation (as ``benchmarks/profiling.py``'s ``count_s3_calls``)."""
    import s3fs.core

    sent: Counter = Counter()
    original = s3fs.core.S3FileSystem._call_s3

    async def counted(self, method, *args, **kwargs):
        sent[method] += 1
        return await original(self, method, *args, **kwargs)

    monkeypatch.setattr(s3fs.core.S3FileSystem, "_call_s3", counted)
    return sent
