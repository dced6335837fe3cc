"""Fixtures shared by the package tests: a private data root, and the real TLC samples."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from taxiflow.config import DATA_DIR_ENV, DataPaths

REPO_ROOT = Path(__file__).resolve().parent.parent
SHIPPED_ZONE_TABLE = REPO_ROOT / "data" / "reference" / "taxi_zone_lookup.csv"
TLC_DIR = REPO_ROOT.parent / "shared" / "data" / "tlc"


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
    """``../shared/data/tlc`` from the repository root: real TLC files nobody here wrote."""
    if not (TLC_DIR / "SHA256SUMS").is_file():
        pytest.skip(f"real TLC samples not found at {TLC_DIR} (../shared/data/tlc from the repo root)")
    return TLC_DIR
