"""The length limit on a report run's id, so its task logs' paths can never be too long.

Every door enforces it before a run exists (``taxiflow.doors``), and the report's first task
(``validate_request``) for runs the CLI writes straight to the database.

A task's log is ``<AIRFLOW_HOME>/logs/dag_id=<dag>/run_id=<run id>/task_id=<task>/attempt=<n>.log``:
one path component per run id, and Linux allows 255 bytes per component. A run id of at most
:data:`MAX_RUN_ID_LENGTH` characters leaves room for ``run_id=`` and multi-byte characters in
every component. Report names (the output file stems, also of request files) are at most 80
characters by their param's pattern (``taxiflow.reports.params``).
"""

from __future__ import annotations

MAX_RUN_ID_LENGTH = 200
MAX_RUN_ID_BYTES = 248  # 255 bytes per path component, minus "run_id="


def run_id_problem(run_id: str) -> str | None:
    """Why this run id is refused (naming the limit), or None if it is fine."""
    if len(run_id) > MAX_RUN_ID_LENGTH or len(run_id.encode()) > MAX_RUN_ID_BYTES:
        return (f"dag_run_id: {len(run_id)} characters is too long; at most {MAX_RUN_ID_LENGTH} characters "
                f"(and {MAX_RUN_ID_BYTES} bytes in UTF-8) are allowed, so the run's task logs can be written")
    return None
