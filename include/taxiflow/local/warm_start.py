"""``airflow scheduler`` with the libraries taxiflow's tasks use already imported (warm workers).

LocalExecutor forks its workers from the scheduler, and they fork every task process: a module the
scheduler imported first is one no task imports again. ``python -m taxiflow.local.warm_start scheduler``
imports :data:`WARM_MODULES` (never taxiflow's own, so an edit takes effect at the next task), then runs
Airflow's command line unchanged (``TAXIFLOW_WARM_START=0``: plain ``airflow scheduler``). Measured:
48.5 % of a report's run saved (``benchmarks/bench_warm.py``, docs/local-stack.md).
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
    "airflow.providers.standard.decorators.branch_python",  # create_metrics' pick_source (@task.branch)
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
