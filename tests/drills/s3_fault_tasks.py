"""The task code the S3 fault drill runs in a process of its own (tests/drills/test_s3_faults.py).

``python -m tests.drills.s3_fault_tasks STEP [STEP ...]`` runs each step as the DAG's task runs it,
in order, and stops at the first that fails (exit status 1, the error on stderr): a failed try, as
Airflow sees it. A step is ``copy:<source>:<month>``, ``process:<source>:<month>``,
``metrics:<source>:<month>`` (``build_metrics``: this month's and changed neighbours'), or
``report:<conf as JSON>``. The data root and connection come from the environment, as in a worker;
``TAXIFLOW_FAULT_PAUSE_AT`` arms a pause (``taxiflow.data.faults``).
"""

from __future__ import annotations

import json
import sys

from taxiflow.config import Partition


def run(step: str) -> None:
    kind, _, argument = step.partition(":")
    if kind == "report":
        from taxiflow.reports.render import render_report
        from taxiflow.reports.request import ReportRequest

        outputs = render_report(ReportRequest.from_conf(json.loads(argument)), run_id="drill_s3_faults")
        print(f"report: version {outputs.version}, {outputs.total_trips} trips")
        return
    source, month = argument.split(":")
    partition = Partition(source, month)
    if kind == "copy":
        from taxiflow.data import ingest
        from taxiflow.data.raw import copy_to_raw

        print(f"copy {partition}: {[path.name for path in copy_to_raw(partition)]}")
    elif kind == "process":
        from taxiflow.data import ingest
        from taxiflow.data.raw import copy_to_raw

        summary = ingest.process_partition(partition, run_id="drill_s3_faults")
        print(f"process {partition}: version {summary['version']}, {summary['rows_written']} rows")
    elif kind == "metrics":
        from taxiflow.data import metrics

        print(f"metrics {partition}: {metrics.refresh_metrics(partition)['trips']} trips")
    else:
        raise SystemExit(f"unknown step {step!r}: copy, process, metrics or report")


if __name__ == "__main__":
    for argument in sys.argv[1:]:
        run(argument)
