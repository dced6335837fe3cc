"""``python -m taxiflow.local.warm_start scheduler``: ``airflow scheduler`` with the libraries taxiflow's
tasks use already imported. LocalExecutor forks its workers from the scheduler, and they fork every task
process: what the scheduler imported first, no task imports again. Never taxiflow's own modules (an edit
takes effect at the next task). Saves 48.5 % of a report's run (``benchmarks/bench_warm.py``,
docs/local-stack.md); ``TAXIFLOW_WARM_START=0`` starts the plain ``airflow scheduler``.
"""

from __future__ import annotations

import importlib
import os
import sys
import warnings
from collections.abc import Mapping

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
# What a task adds when the data root is a bucket (``TAXIFLOW_DATA_DIR=s3://...``): every task that
# touches data makes its S3 filesystem (``taxiflow.data.locations.filesystem``: the amazon provider's
# connection parser, s3fs, aiobotocore, botocore): ~0.2 s of each such task's start
# (docs/benchmarks.md, request file -> chart). Not on a local root: no task there imports them.
# Not boto3 nor the provider's S3Hook: a task does not use them, and every page the scheduler holds
# counts in the RSS of each task forked from it.
S3_WARM_MODULES: tuple[str, ...] = (
    "s3fs", "aiobotocore.session", "botocore.session", "airflow.sdk.io",
    "airflow.providers.amazon.aws.utils.connection_wrapper", "upath.implementations.cloud",
    "airflow.sdk.execution_time.cache", "airflow.sdk.definitions.connection",  # the connection look-up
)
DATA_DIR_ENV = "TAXIFLOW_DATA_DIR"  # taxiflow.config's, not imported: no taxiflow module is pre-imported


def warm_modules(environ: Mapping[str, str] = os.environ) -> tuple[str, ...]:
    return WARM_MODULES + (S3_WARM_MODULES if "://" in environ.get(DATA_DIR_ENV, "") else ())


def warm_up() -> None:
    """Import :func:`warm_modules`; a missing one is a line on stderr (warming is an optimisation,
    never a reason not to start). Airflow's deprecation warnings about its own modules are not ours."""
    for name in warm_modules():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                warnings.simplefilter("ignore", FutureWarning)  # Airflow's DeprecatedImportWarning
                importlib.import_module(name)
        except ImportError as err:
            print(f"taxiflow.local.warm_start: not pre-imported {name}: {err}", file=sys.stderr)


def main() -> None:
    """Warm up, then run Airflow's own command line with this process's arguments."""
    warm_up()
    from airflow.__main__ import main as airflow_main

    sys.argv = ["airflow", *sys.argv[1:]]
    airflow_main()


if __name__ == "__main__":
    main()
