"""What ``/api/v1`` does in Airflow: create a run through Airflow's trigger path, read one, health."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from taxiflow.config import REPORT_DAG_ID
from taxiflow.doors.api_v1.shapes import ApiV1Error, TriggerRequest, dag_run_v1, explain_param_error

if TYPE_CHECKING:
    from airflow.api_fastapi.auth.managers.models.base_user import BaseUser


def _param_schemas(dag_id: str, session: Any) -> dict[str, Mapping[str, Any]]:
    from airflow.models.dagbag import DBDagBag

    dag = DBDagBag().get_latest_version_of_dag(dag_id, session=session)
    if dag is None:
        return {}
    return {name: {**param.schema, "description": param.description} for name, param in dag.params.items()}


def check_report_conf(conf: Mapping[str, Any]) -> None:
    """What JSON schema cannot say about a ``borough_report`` conf (start before end, range limits), as 400.

    Runs after Airflow validated the params, so a schema error keeps Airflow's own wording (the
    same as the CLI and /api/v2); this door, unlike those, can also refuse a reversed range before a
    run exists, with the message ``validate_request`` would fail with.
    """
    from taxiflow.reports.params import report_param_schemas
    from taxiflow.reports.request import InvalidRequest, ReportRequest, check_limits

    merged = {name: schema.get("default") for name, schema in report_param_schemas().items()}
    merged.update(conf)
    try:
        check_limits(ReportRequest.from_conf(merged))
    except InvalidRequest as err:
        raise ApiV1Error(400, str(err)) from None


# DAG-specific checks a conf must pass beyond its params' JSON schema, by dag_id.
CONF_CHECKS: dict[str, Any] = {REPORT_DAG_ID: check_report_conf}


def trigger_run(dag_id: str, request: TriggerRequest, user: BaseUser) -> dict[str, Any]:
    """Create a run through Airflow's trigger path; Airflow 2's DAGRun JSON, or ApiV1Error."""
    from airflow.api.common.trigger_dag import trigger_dag
    from airflow.exceptions import DagNotFound, DagRunAlreadyExists, ParamValidationError
    from airflow.models.dag import DagModel
    from airflow.models.dagrun import DagRun
    from airflow.models.log import Log
    from airflow.utils.session import create_session
    from airflow.utils.types import DagRunTriggeredByType
    from sqlalchemy import select

    with create_session() as session:
        dag_model = session.scalar(select(DagModel).where(DagModel.dag_id == dag_id))
        if dag_model is None or dag_model.is_stale:
            raise ApiV1Error(404, f"DAG with dag_id: '{dag_id}' not found", title="DAG not found")
        if dag_model.has_import_errors:
            raise ApiV1Error(400, f"DAG with dag_id: '{dag_id}' has import errors",
                             title="DAG cannot be triggered")
        if request.logical_date is not None:
            clash = session.scalar(
                select(DagRun.run_id)
                .where(DagRun.dag_id == dag_id, DagRun.logical_date == request.logical_date)
                .limit(1)
            )
            if clash is not None:
                raise ApiV1Error(409, f"DAGRun with DAG ID: '{dag_id}' and DAGRun logical date: "
                                      f"'{request.logical_date.isoformat(sep=' ')}' already exists")
        try:
            run = trigger_dag(
                dag_id,
                triggered_by=DagRunTriggeredByType.REST_API,
                triggering_user_name=user.get_name(),
                run_id=request.run_id,
                conf=request.conf,
                logical_date=request.logical_date,
                # A run with a logical date may start at that moment (and its data interval is
                # inferred from it, as in Airflow 2); one without may start now.
                run_after=request.logical_date,
                replace_microseconds=False,
                session=session,
            )
        except DagRunAlreadyExists:
            raise ApiV1Error(409, f"DAGRun with DAG ID: '{dag_id}' and DAGRun ID: "
                                  f"'{request.run_id}' already exists") from None
        except DagNotFound:
            raise ApiV1Error(404, f"DAG with dag_id: '{dag_id}' not found", title="DAG not found") from None
        except ParamValidationError as err:
            raise ApiV1Error(400, explain_param_error(str(err), _param_schemas(dag_id, session))) from None
        except ValueError as err:
            raise ApiV1Error(400, str(err)) from None
        if run is None:  # trigger_dag's signature allows it; it never happens for a manual run
            raise RuntimeError(f"Airflow created no run for DAG {dag_id!r}")
        if dag_id in CONF_CHECKS:
            CONF_CHECKS[dag_id](request.conf)  # raising rolls the session back: no run is kept
        if request.data_interval is not None:
            run.data_interval_start, run.data_interval_end = request.data_interval
        if request.note:
            run.note = (request.note, user.get_id())
        session.add(Log(
            event="trigger_dag_run",
            dag_id=dag_id,
            run_id=run.run_id,
            owner=user.get_name(),
            extra=json.dumps({"source": "api_v1", "method": "POST", "conf": request.conf}),
        ))
        session.flush()
        return dag_run_v1(run)


def get_run(dag_id: str, run_id: str) -> dict[str, Any]:
    """One run as Airflow 2's DAGRun JSON; ApiV1Error(404) if the DAG has no such run."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        run = session.scalar(select(DagRun).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id))
        if run is None:
            raise ApiV1Error(404, f"DAGRun with DAG ID: '{dag_id}' and DagRun ID: '{run_id}' not found",
                             title="DAGRun not found")
        return dag_run_v1(run)


def airflow_health() -> dict[str, Any]:
    """Airflow's own health summary (metadatabase, scheduler, ...)."""
    from airflow.api.common.airflow_health import get_airflow_health

    return get_airflow_health()
