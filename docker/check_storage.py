"""airflow-init's start-time check: can this deployment use its data root and its task-log folder?

Writes and deletes a probe object at ``TAXIFLOW_DATA_DIR`` and at ``[logging]
remote_base_log_folder`` (when remote logging is on) through their Airflow connections. Wrong keys,
a missing bucket or an unreachable endpoint end it with exit status 1 and one line naming the URL,
the connection and the endpoint (``taxiflow.data.check_storage.check_root``), never a stack trace, so
``docker compose up`` stops at airflow-init and ``docker compose logs airflow-init`` says why.
"""

from __future__ import annotations

import os
import sys


def log_folder() -> object | None:
    """The remote task-log folder as a path ``check_root`` can probe, or None when logs stay local."""
    if os.environ.get("AIRFLOW__LOGGING__REMOTE_LOGGING", "").lower() != "true":
        return None
    folder = os.environ.get("AIRFLOW__LOGGING__REMOTE_BASE_LOG_FOLDER", "")
    if not folder.startswith("s3://"):
        return None  # another remote (GCS, CloudWatch ...): Airflow's own handler reports problems
    from airflow.sdk import ObjectStoragePath

    conn_id = os.environ.get("AIRFLOW__LOGGING__REMOTE_LOG_CONN_ID") or "aws_default"
    return ObjectStoragePath(f"s3://{conn_id}@{folder.removeprefix('s3://')}".rstrip("/"))


def main() -> int:
    from taxiflow.data.check_storage import check_root
    from taxiflow.data.storage import StorageError

    checks = [("data root", None)]
    try:
        logs = log_folder()
    except ValueError as err:
        print(f"taxiflow: task logs: {err}", file=sys.stderr)
        return 1
    if logs is not None:
        checks.append(("task logs", logs))
    for what, path in checks:
        try:
            where = check_root(path)
        except (StorageError, ValueError) as err:  # ValueError: TAXIFLOW_DATA_DIR is not a folder or s3:// URL
            print(f"taxiflow: {what}: {err}", file=sys.stderr)
            return 1
        print(f"taxiflow: {what}: {where}: readable and writable")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
