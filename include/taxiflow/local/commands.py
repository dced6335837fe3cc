"""The command line each component of a local deployment starts with.

Airflow's own ``airflow <component>``, except where the embedded default does better:

* the LocalExecutor scheduler starts warm (:mod:`taxiflow.local.warm_start`): its workers fork with
  the tasks' libraries already imported, and it is started again if it crashes;
* the log server is Airflow's own app (``airflow.utils.serve_logs``) started once on 127.0.0.1: the
  scheduler and triggerer would each start one on every interface, which Airflow does not let us
  configure, so they run with ``--skip-serve-logs``.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

LOG_SERVER_COMPONENT = "log-server"


def airflow_executable() -> str:
    """The ``airflow`` script of the interpreter running this code (the project's venv)."""
    beside = Path(sys.executable).with_name("airflow")
    return str(beside) if beside.exists() else (shutil.which("airflow") or "airflow")


def component_command(component: str, env: dict[str, str], own_log_server: bool = False) -> list[str]:
    """The command line of one component: ``airflow <component>``, except that

    * a LocalExecutor scheduler starts warm (:mod:`taxiflow.local.warm_start`), so its workers fork
      with the tasks' libraries already imported;
    * with ``own_log_server`` (the embedded default), the scheduler and triggerer serve no logs
      (``--skip-serve-logs``) and ``log-server`` is Airflow's log server app on 127.0.0.1, at
      ``[logging] worker_log_server_port`` (the trigger log port is set to the same).
    """
    if component == LOG_SERVER_COMPONENT:
        return [sys.executable, "-m", "uvicorn", "--factory", "airflow.utils.serve_logs.log_server:get_app",
                "--host", "127.0.0.1", "--port", env["AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT"],
                "--no-access-log", "--log-level", "warning"]
    skip = ["--skip-serve-logs"] if own_log_server and component in ("scheduler", "triggerer") else []
    if component == "scheduler" and env.get("AIRFLOW__CORE__EXECUTOR") == "LocalExecutor":
        return [sys.executable, "-m", "taxiflow.local.warm_start", "--restart-on-crash", "scheduler", *skip]
    return [airflow_executable(), *component.split(), *skip]
