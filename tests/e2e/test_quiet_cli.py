"""The CLI a user runs from the README prints what their command says, and nothing else.

Airflow's ``dags`` commands import its graphviz renderer, which warns on every call when the
``graphviz`` Python package is missing; requirements.txt pins it. This runs the README's commands
against the live deployment with the environment ``.airflow/env.sh`` exports.
"""

from __future__ import annotations

import pytest

from taxiflow.config import REPORT_DAG_ID

pytestmark = pytest.mark.e2e

NOISE = ("warning", "Warning", "graphviz", "Traceback", "deprecated")


def test_readme_cli_commands_print_only_their_own_output(airflow_stack):
    stack = airflow_stack
    conf = '{"borough": "Manhattan", "start_date": "2016-06-01", "end_date": "2016-06-08"}'
    commands = [
        ("dags", "trigger", REPORT_DAG_ID, "--conf", conf, "-r", "quiet-cli"),
        ("dags", "list-runs", REPORT_DAG_ID),
        ("dags", "list"),
    ]
    for command in commands:
        result = stack.airflow(*command)
        printed = result.stdout + result.stderr
        assert not [word for word in NOISE if word in printed], f"airflow {' '.join(command)}:\n{printed}"
        assert result.stderr.strip() == "", f"airflow {' '.join(command)} wrote to stderr:\n{result.stderr}"
    assert "quiet-cli" in stack.airflow("dags", "list-runs", REPORT_DAG_ID).stdout
