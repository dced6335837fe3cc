"""airflow-init's last step: the FAB user ``name_run`` writes each ingest run's note as.

The ingest DAG's ``name_run`` task calls this deployment's own REST API (``PATCH /api/v2/dags/
ingest_taxi_trips/dagRuns/{run_id}``) through the HTTP connection ``taxiflow_api``
(``TAXIFLOW_API_CONN_ID``; docs/lineage.md). That connection's login and password are the account's
one source: this script makes the FAB user of that login, with that password, and a role of its own
that may read and edit the ingest DAG and its runs, nothing else (FAB adds *can read on Website*
to every custom role; its ``User`` role could also clear tasks, delete runs and trigger every DAG).
Run at every start, it changes only what differs: a password changed in ``.env`` is taken over, the
role gets back any permission taken from it.
"""

from __future__ import annotations

import sys

ROLE = "TaxiflowRunNotes"
# What PATCH and GET .../dagRuns/{run_id} need from the FAB auth manager, for the ingest DAG only:
# edit (read) on the DAG and on its runs (fab_auth_manager.is_authorized_dag).
ACTIONS = ("can_read", "can_edit")


def resources(dag_id: str) -> tuple[str, ...]:
    return f"DAG:{dag_id}", f"DAG Run:{dag_id}"


def ensure_role(sm, dag_id: str):
    """The role with exactly the run-note permissions (created, or completed, here)."""
    role = sm.add_role(ROLE)  # returns the existing one if there is one
    for resource in resources(dag_id):
        for action in ACTIONS:
            sm.add_permission_to_role(role, sm.create_permission(action, resource))
    return role


def ensure_user(sm, role, login: str, password: str) -> str:
    """The user ``login`` with ``password`` and ``role`` only; a line saying what changed."""
    user = sm.find_user(username=login)
    if user is None:
        if not sm.add_user(login, "taxiflow", "run notes", f"{login}@taxiflow.invalid", role, password):
            raise SystemExit(f"taxiflow: could not create the FAB user {login!r} (see the log above)")
        return f"created user {login!r} (role {ROLE})"
    changed = []
    if [r.name for r in user.roles] != [ROLE]:
        user.roles = [role]
        sm.update_user(user)
        changed.append(f"role set to {ROLE}")
    if not sm.check_password(login, password):
        sm.reset_password(user.id, password)
        changed.append("password taken from the connection")
    return f"user {login!r}: " + (", ".join(changed) if changed else "unchanged")


def main() -> int:
    from airflow.exceptions import AirflowNotFoundException
    from airflow.models.connection import Connection
    from airflow.providers.fab.auth_manager.cli_commands.utils import get_application_builder

    from taxiflow.components.run_notes import api_conn_id
    from taxiflow.config import INGEST_DAG_ID

    conn_id = api_conn_id()
    try:
        conn = Connection.get_connection_from_secrets(conn_id)
    except AirflowNotFoundException:  # the deployment chose not to note runs
        print(f"taxiflow: no connection {conn_id!r}: ingest runs get no note (docs/lineage.md)")
        return 0
    if not conn.login or not conn.password:
        print(f"taxiflow: connection {conn_id!r} needs a login and a password (the run-notes user)",
              file=sys.stderr)
        return 1
    with get_application_builder() as appbuilder:
        sm = appbuilder.sm
        role = ensure_role(sm, INGEST_DAG_ID)
        print(f"taxiflow: run notes: {ensure_user(sm, role, conn.login, conn.password)}; "
              f"may read and edit {' and '.join(resources(INGEST_DAG_ID))} only")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
