"""``python -m taxiflow.data.check_storage``: can this host use taxiflow's data root? One line, exit 0 or 2.

What ``make run`` runs before it starts anything, and what a deployment's init step (docker compose's
``airflow-init``, a Helm hook) runs with the same environment as its Airflow services. With
``TAXIFLOW_DATA_DIR=s3://...`` it reads the connection named by ``TAXIFLOW_STORAGE_CONN_ID``, asks the
bucket for itself, then writes and deletes a probe object at the root. Wrong keys, a missing bucket,
an unreachable endpoint, a missing connection or a malformed URL give one line on stderr naming the
URL, the connection and the endpoint, and exit status 2; never a stack trace.

    $ python -m taxiflow.data.check_storage
    taxiflow: data in s3://taxiflow/data (Airflow connection 'taxiflow_storage', endpoint http://127.0.0.1:8333)
"""

from __future__ import annotations

import os
import sys

from taxiflow.data import storage

EXIT_UNUSABLE = 2
LOG_LEVEL_ENV = "AIRFLOW__LOGGING__LOGGING_LEVEL"


def check() -> str:
    """``storage.check_root`` without Airflow's INFO lines (each connection look-up logs one on stdout).

    Airflow reads its log level once, when it is first imported (here, by an S3 root): if that
    happens in this call, it happens at ERROR; the environment is left as it was.
    """
    quiet = "airflow" not in sys.modules and LOG_LEVEL_ENV not in os.environ
    if quiet:
        os.environ[LOG_LEVEL_ENV] = "ERROR"
    try:
        return storage.check_root()
    finally:
        if quiet:
            del os.environ[LOG_LEVEL_ENV]


def main() -> int:
    """Print where the data lives (exit 0), or why it cannot be used there (stderr, exit 2)."""
    try:
        where = check()
    except (storage.StorageError, ValueError) as err:
        print(f"taxiflow: {err}", file=sys.stderr)
        return EXIT_UNUSABLE
    print(f"taxiflow: data in {where}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
