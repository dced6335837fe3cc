"""The clients' venv (.venv/clients, made by `make dev`) holds exactly what requirements-clients.txt pins.

The live tests of the clients are in tests/e2e/test_clients.py; these only check, in seconds, that
the pins are exact, that the venv matches them, and that the documented entry points start.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

PROJECT_DIR = Path(__file__).resolve().parents[3]
CLIENTS_PYTHON = PROJECT_DIR / ".venv" / "clients" / "bin" / "python"


def normalized(name: str) -> str:
    """A distribution name as PEP 503 compares them (jaraco.classes == jaraco-classes)."""
    return re.sub(r"[-_.]+", "-", name).lower()


PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;#]+)$")


def pins(path: Path) -> dict[str, str]:
    """name -> version of every requirement line; each must be an exact ``name==version`` pin."""
    found = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = PIN.match(line)
        assert match, f"{path.name}: {line!r} is not an exact name==version pin"
        found[normalized(match[1])] = match[2]
    return found


@pytest.fixture(scope="module")
def clients_python() -> Path:
    if not CLIENTS_PYTHON.exists():
        pytest.fail(f"{CLIENTS_PYTHON} is missing: run `make dev` (installs requirements-clients.txt there)")
    return CLIENTS_PYTHON


def test_the_lock_pins_exactly_what_the_input_asks_for():
    wanted = pins(PROJECT_DIR / "requirements-clients.in")
    locked = pins(PROJECT_DIR / "requirements-clients.txt")
    assert set(wanted) == {"apache-airflow-client", "apache-airflow-ctl"}
    assert wanted["apache-airflow-client"].startswith("3.")
    for name, version in wanted.items():
        assert locked.get(name) == version, f"requirements-clients.txt is stale for {name}: re-lock (see the .in file)"


def test_the_clients_venv_holds_the_locked_versions(clients_python):
    listed = subprocess.run([str(clients_python), "-m", "pip", "list", "--format", "json"],
                            capture_output=True, text=True, check=True, timeout=120)
    installed = {normalized(p["name"]): p["version"] for p in json.loads(listed.stdout)}
    locked = pins(PROJECT_DIR / "requirements-clients.txt")
    wrong = {name: (version, installed.get(name)) for name, version in locked.items() if installed.get(name) != version}
    assert not wrong, f"(pinned, installed) differ: {wrong}; run `make dev`"


def test_the_documented_entry_points_start(clients_python):
    script = PROJECT_DIR / "scripts" / "report_with_python_client.py"
    shown = subprocess.run([str(clients_python), str(script), "--help"], capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr
    assert "--borough" in shown.stdout and "--start-date" in shown.stdout
    ctl = subprocess.run([str(clients_python.parent / "airflowctl"), "auth", "token", "--help"],
                         capture_output=True, text=True, timeout=120)
    assert ctl.returncode == 0, ctl.stderr
    assert "--api-url" in ctl.stdout and "--username" in ctl.stdout
