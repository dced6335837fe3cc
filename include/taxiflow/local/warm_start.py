"""``airflow scheduler`` with the libraries taxiflow's tasks use already imported (warm workers).

LocalExecutor forks its workers from the scheduler process when it starts, and each worker forks
every task process from itself. A module the scheduler imported before that is one no task ever
imports again: the task process inherits it. taxiflow's tasks spend most of their own time
importing pandas, matplotlib, DuckDB and PyArrow (0.8 s of the 1 s ``render_report`` took on a
quiet 2-core machine, for 0.15 s of querying and drawing), so the embedded default starts its
scheduler through this module instead of the ``airflow`` script::

    python -m taxiflow.local.warm_start scheduler [airflow scheduler options]

It imports :data:`WARM_MODULES`, then runs Airflow's own command line unchanged (supervisord
restarts it if it dies; ``TAXIFLOW_WARM_START=0`` starts the plain ``airflow scheduler``). Only third-party
libraries and Airflow's own modules are warmed, never taxiflow's: an edit of ``include/taxiflow``
takes effect at the next task, as it does without this. The cost is paid once per scheduler start
(about 1 s) and in its memory (about 100 MB, shared copy-on-write with the workers). Measured with
``benchmarks/bench_live.py`` (README, Benchmarks). The compose deployment runs Airflow's own
commands (its CeleryExecutor workers are separate programs).
"""

from __future__ import annotations

import importlib
import sys

WARM_MODULES: tuple[str, ...] = (
    # what the tasks import lazily (ingest, metrics, render)
    "numpy", "pandas", "pyarrow", "pyarrow.parquet", "duckdb",
    "matplotlib", "matplotlib.figure", "matplotlib.backends.backend_agg", "PIL.Image",
    # what parsing the DAG files imports (each task process parses its DAG file before it runs):
    "airflow.configuration",  # Airflow's first import, as its own command line does (import cycles)
    "airflow.sdk",
    "airflow.providers.standard.operators.trigger_dagrun",
    "airflow.providers.http.sensors.http",
    "airflow.providers.standard.sensors.external_task",
    # ... and what Airflow resolves lazily on the way: ``airflow.sdk.task`` (``@task``) imports the
    # standard provider's decorators, PythonOperator and ``packaging`` (55 ms of each task's start),
    # ``@task.sensor`` its sensor, and a few more. tests/unit/local/test_stack.py checks nothing else is left.
    "airflow.sdk.definitions.decorators",
    "airflow.providers.standard.decorators.sensor",
    "airflow.providers.standard.sensors.python",
    "airflow.providers.standard.operators.empty",
    "airflow.utils.operator_helpers",
    "airflow.version",
)


def warm_up(modules: tuple[str, ...] | None = None) -> None:
    """Import ``modules`` (default :data:`WARM_MODULES`); a missing one is skipped with a line on
    stderr (warming is an optimisation, never a reason not to start). Deprecation warnings that
    Airflow's own modules raise about each other while importing are not ours to show."""
    import warnings

    for name in WARM_MODULES if modules is None else modules:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                warnings.simplefilter("ignore", FutureWarning)  # Airflow's DeprecatedImportWarning
                importlib.import_module(name)
        except ImportError as err:
            print(f"taxiflow.local.warm_start: not pre-imported {name}: {err}", file=sys.stderr)


def main(argv: list[str] | None = None) -> None:
    """Warm up, then run ``airflow <argv>`` (``argv`` defaults to this process's arguments)."""
    args = sys.argv[1:] if argv is None else argv
    warm_up()
    from airflow.__main__ import main as airflow_main

    sys.argv = ["airflow", *args]
    airflow_main()


if __name__ == "__main__":
    main()
