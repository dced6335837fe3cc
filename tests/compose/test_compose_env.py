"""scripts/compose_env.py (`make compose-env`): writes .env once, completes it, never duplicates a line."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "compose_env.py"
SECRETS = ("_AIRFLOW_WWW_USER_PASSWORD", "POSTGRES_PASSWORD", "AIRFLOW__CORE__FERNET_KEY",
           "AIRFLOW__API_AUTH__JWT_SECRET", "TAXIFLOW_S3_SECRET_KEY", "TAXIFLOW_RUN_NOTES_PASSWORD")


def run(env_file: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), "--env-file", str(env_file), *args],
                          capture_output=True, text=True, check=False)


def assignments(env_file: Path) -> list[tuple[str, str]]:
    return re.findall(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$", env_file.read_text(), flags=re.M)


def test_creates_env_with_uid_and_every_secret(tmp_path):
    env_file = tmp_path / ".env"
    assert run(env_file).returncode == 0
    values = dict(assignments(env_file))
    expected_uid = "50000" if os.getuid() == 0 else str(os.getuid())
    assert values["AIRFLOW_UID"] == expected_uid
    for name in SECRETS:
        assert len(values[name]) >= 16, name
    assert re.fullmatch(r"[0-9a-f]{32}", values["POSTGRES_PASSWORD"])  # URL-safe
    # the S3 keys go into a JSON connection: nothing to escape
    assert re.fullmatch(r"[0-9a-f]{20}", values["TAXIFLOW_S3_ACCESS_KEY"])
    assert re.fullmatch(r"[0-9a-f]{40}", values["TAXIFLOW_S3_SECRET_KEY"])
    assert re.fullmatch(r"[0-9a-f]{32}", values["TAXIFLOW_RUN_NOTES_PASSWORD"])  # JSON connection too
    from cryptography.fernet import Fernet

    Fernet(values["AIRFLOW__CORE__FERNET_KEY"].encode())  # a valid Fernet key
    assert env_file.stat().st_mode & 0o777 == 0o600


def test_second_run_changes_nothing_and_no_line_appears_twice(tmp_path):
    env_file = tmp_path / ".env"
    run(env_file)
    first = env_file.read_text()
    result = run(env_file)
    assert result.returncode == 0 and "no secret changed" in result.stderr
    assert env_file.read_text() == first
    names = [name for name, _ in assignments(env_file)]
    assert len(names) == len(set(names))


def test_values_are_set_in_place(tmp_path):
    env_file = tmp_path / ".env"
    run(env_file)
    before = dict(assignments(env_file))
    assert run(env_file, "AIRFLOW_API_PORT=18080", "AIRFLOW_UID=1234", "NEW_SETTING=x").returncode == 0
    after = assignments(env_file)
    assert [name for name, _ in after].count("AIRFLOW_API_PORT") == 1
    values = dict(after)
    assert values["AIRFLOW_API_PORT"] == "18080" and values["AIRFLOW_UID"] == "1234" and values["NEW_SETTING"] == "x"
    assert all(values[name] == before[name] for name in SECRETS)


def test_old_readme_duplicate_is_collapsed_to_the_value_compose_used(tmp_path):
    """`cp .env.example .env; echo AIRFLOW_UID=... >> .env` left two lines; compose used the last."""
    env_file = tmp_path / ".env"
    env_file.write_text((ROOT / ".env.example").read_text() + "AIRFLOW_UID=4321\n")
    result = run(env_file)
    assert "AIRFLOW_UID was set more than once" in result.stderr
    uids = [value for name, value in assignments(env_file) if name == "AIRFLOW_UID"]
    assert uids == ["4321"]


def test_a_set_secret_is_never_replaced(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("POSTGRES_PASSWORD=keepme\n")
    run(env_file)
    assert dict(assignments(env_file))["POSTGRES_PASSWORD"] == "keepme"


@pytest.mark.parametrize("bad", ["NOEQUALS", "1BAD=x", "has space=x"])
def test_malformed_assignment_is_refused_naming_it(tmp_path, bad):
    result = run(tmp_path / ".env", bad)
    assert result.returncode != 0 and repr(bad) in result.stderr
    assert not (tmp_path / ".env").exists()
