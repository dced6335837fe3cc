"""The local Airflow stack's environment: what every process it starts is configured with."""

from __future__ import annotations


def test_cli_commands_wait_for_sqlite_and_processes_keep_airflow_defaults(tmp_path):
    """One-off commands get a longer SQLite busy timeout (an importable path); daemons and Postgres none."""
    import importlib

    from taxiflow.local.stack import AirflowStack

    local = AirflowStack(home=tmp_path / "h", project_dir=tmp_path, data_dir=tmp_path / "d")
    module, _, name = local.env(cli=True)["AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS"].rpartition(".")
    assert getattr(importlib.import_module(module), name)["timeout"] >= 30
    assert "AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS" not in local.env()
    postgres = AirflowStack(
        home=tmp_path / "h2", project_dir=tmp_path, data_dir=tmp_path / "d",
        extra_env={"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "postgresql+psycopg2://postgres@127.0.0.1/x"},
    ).env(cli=True)
    assert "AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS" not in postgres


def test_every_process_reaches_the_execution_api_on_the_chosen_port(tmp_path):
    from taxiflow.local.stack import AirflowStack

    env = AirflowStack(home=tmp_path / "h", project_dir=tmp_path, data_dir=tmp_path / "d", port=18234).env()
    assert env["AIRFLOW__API__PORT"] == "18234"
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://127.0.0.1:18234/execution/"
    assert env["AIRFLOW_HOME"] == str(tmp_path / "h")
    assert env["TAXIFLOW_DATA_DIR"] == str(tmp_path / "d")


def _fake_airflow(tmp_path, outcomes):
    """An ``airflow`` stand-in that answers the n-th call with outcomes[n]: (exit code, output)."""
    import json
    import stat

    script = tmp_path / "fake-airflow"
    state = tmp_path / "calls"
    state.write_text("0")
    script.write_text(
        "#!/usr/bin/env python3\n"
        "import json, pathlib, sys\n"
        f"state = pathlib.Path({str(state)!r})\n"
        "n = int(state.read_text()); state.write_text(str(n + 1))\n"
        f"code, text = json.loads({json.dumps(json.dumps(outcomes))})[n]\n"
        "print(text); sys.exit(code)\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return script, state


def test_cli_retries_a_lost_sqlite_race_and_accepts_an_earlier_commit(tmp_path, monkeypatch):
    import taxiflow.local.stack as stack_module
    from taxiflow.local.stack import AirflowStack

    script, calls = _fake_airflow(tmp_path, [
        [1, "sqlite3.OperationalError: database is locked"],
        [1, "AlreadyRunningBackfill: Another backfill is running for Dag ingest_taxi_trips."],
    ])
    monkeypatch.setattr(stack_module, "airflow_executable", lambda: str(script))
    monkeypatch.setattr(stack_module.time, "sleep", lambda seconds: None)
    stack = AirflowStack(home=tmp_path / "h", project_dir=tmp_path, data_dir=tmp_path / "d")
    (tmp_path / "h").mkdir()
    assert stack.airflow("backfill", "create").returncode == 0
    assert calls.read_text() == "2"


def test_cli_does_not_retry_other_failures(tmp_path, monkeypatch):
    import pytest

    import taxiflow.local.stack as stack_module
    from taxiflow.local.stack import AirflowStack

    script, calls = _fake_airflow(tmp_path, [[1, "ParamValidationError: Invalid input for param borough"]] * 3)
    monkeypatch.setattr(stack_module, "airflow_executable", lambda: str(script))
    stack = AirflowStack(home=tmp_path / "h", project_dir=tmp_path, data_dir=tmp_path / "d")
    (tmp_path / "h").mkdir()
    with pytest.raises(RuntimeError, match="Invalid input for param borough"):
        stack.airflow("dags", "trigger", "borough_report")
    assert calls.read_text() == "1"
    assert stack.airflow("dags", "trigger", "x", check=False).returncode == 1
