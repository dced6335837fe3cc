"""The local Airflow stack's environment: what every process it starts is configured with."""

from __future__ import annotations


def test_cli_commands_wait_for_sqlite_and_processes_keep_airflow_defaults(tmp_path):
    """One-off commands get a longer SQLite busy timeout (an importable path); daemons and Postgres none."""
    import importlib

    from taxiflow.stack import AirflowStack

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
    from taxiflow.stack import AirflowStack

    env = AirflowStack(home=tmp_path / "h", project_dir=tmp_path, data_dir=tmp_path / "d", port=18234).env()
    assert env["AIRFLOW__API__PORT"] == "18234"
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://127.0.0.1:18234/execution/"
    assert env["AIRFLOW_HOME"] == str(tmp_path / "h")
    assert env["TAXIFLOW_DATA_DIR"] == str(tmp_path / "d")
