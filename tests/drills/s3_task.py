"""One task body of the pipeline in a process of its own, as a worker runs it (the S3 fault drill).

    python -m tests.drills.s3_task copy_to_raw green 2024-01
    python -m tests.drills.s3_task process_partition green 2024-01
    python -m tests.drills.s3_task build_metrics green 2024-01
    python -m tests.drills.s3_task render_report '{"borough": "Manhattan", ...}'

The same calls the DAGs' tasks make (``ingest_taxi_trips``, ``create_metrics``, ``borough_report``);
the data root and connection come from the environment. Exit status 0 when the step finished.
"""

from __future__ import annotations

import json
import sys

from taxiflow.config import Partition
from taxiflow.data import ingest, metrics


def main(argv: list[str]) -> int:
    step, *args = argv
    if step == "render_report":
        from taxiflow.reports.render import render_report
        from taxiflow.reports.request import ReportRequest

        render_report(ReportRequest.from_conf(json.loads(args[0])), run_id="drill")
        return 0
    steps = {"copy_to_raw": ingest.copy_to_raw, "process_partition": ingest.process_partition,
             "build_metrics": metrics.build_metrics}
    steps[step](Partition(*args))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
