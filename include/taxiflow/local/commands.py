"""The command line each component of a local deployment starts with.

Airflow's own ``airflow <component>``, except where the embedded default does better:

* the LocalExecutor scheduler starts warm (:mod:`taxiflow.local.warm_start`): its workers fork with
  the tasks' libraries already imported, and it is started again if it crashes;
* the log server is Airflow's own app (``airflow.utils.serve_logs``) started once on 127.0.0.1: the
  scheduler and triggerer would each start one on every interface, which Airflow does not let us
  configure, so they run with ``--skip-serve-logs``.

Before the components start, :func:`compile_sources` byte-compiles the DAG files, the plugins and
the taxiflow package: every parse and every task imports them, and where ``PYTHONDONTWRITEBYTECODE``
is set (many machines and images) Python would compile them from source each time.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

LOG_SERVER_COMPONENT = "log-server"


def compile_sources(project_dir: Path) -> None:
    """Write ``__pycache__`` for ``dags/``, ``plugins/`` and the taxiflow package (only what changed).

    A file edited later is still read from source (Python checks each ``.pyc`` against its source's
    time stamp): compiling is an optimisation, so a folder that cannot be written is skipped.
    """
    import compileall

    import taxiflow

    for folder in (project_dir / "dags", project_dir / "plugins", Path(taxiflow.__file__).parent):
        if folder.is_dir():
            compileall.compile_dir(folder, quiet=2, workers=1)


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
