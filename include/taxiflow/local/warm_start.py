"""``airflow scheduler`` with the libraries taxiflow's tasks use already imported (warm workers).

LocalExecutor forks its workers from the scheduler process when it starts, and each worker forks
every task process from itself. A module the scheduler imported before that is one no task ever
imports again: the task process inherits it. taxiflow's tasks spend most of their own time
importing pandas, matplotlib, DuckDB and PyArrow (0.8 s of the 1 s ``render_report`` took on a
quiet 2-core machine, for 0.15 s of querying and drawing), so the embedded default starts its
scheduler through this module instead of the ``airflow`` script::

    python -m taxiflow.local.warm_start [--restart-on-crash] scheduler [airflow scheduler options]

It imports :data:`WARM_MODULES`, then runs Airflow's own command line unchanged; with
``--restart-on-crash`` (what ``make run`` uses) in a forked child that is forked again, still
warm, if it dies (:func:`supervise`). Only third-party
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
    # ``@task.sensor`` its sensor, and a few more. tests/test_stack.py checks nothing else is left.
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


RESTART_FLAG = "--restart-on-crash"
CALM_SECONDS = 60  # a run this long resets the back-off
IDLE_WORKER_TITLE = b"LocalExecutor: <idle>"  # what Airflow's LocalExecutor names a worker that waits
PR_SET_CHILD_SUBREAPER = 36  # linux/prctl.h


def become_subreaper() -> bool:
    """Have the processes a dead scheduler leaves behind (its LocalExecutor workers) re-parented to
    this process instead of to init, so it can end them (Linux; elsewhere they stay where they are)."""
    import ctypes

    try:
        return ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def idle_orphans(keep: int) -> set[int]:
    """The children of this process, other than ``keep``, that are idle LocalExecutor workers."""
    import os

    from taxiflow.local.processes import children  # stdlib only; Airflow imports it anyway (hostname_callable)

    found = set()
    for pid in children(os.getpid()):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as command:
                title = command.read()
        except OSError:  # gone meanwhile
            continue
        if pid != keep and IDLE_WORKER_TITLE in title:
            found.add(pid)
    return found


def end_idle_orphans(keep: int, seen_idle: set[int]) -> set[int]:
    """SIGKILL the orphaned workers that were idle at the last look too; return those idle now.

    A scheduler that dies leaves its LocalExecutor workers waiting on a queue nobody will fill again
    (eight processes per crash, holding the warm libraries; they inherited the scheduler's SIGTERM
    handler, so only SIGKILL ends them). One still running a task, or picking up a task the dead
    scheduler had already queued, reports to the API server, not to the scheduler: it is left to
    finish and ended once it has been idle for two looks in a row.
    """
    import os
    import signal

    idle = idle_orphans(keep)
    for pid in idle & seen_idle:
        os.kill(pid, signal.SIGKILL)
    return idle - seen_idle


def wait_for(child: int, poll: float = 0.5, scan_every: float = 2.0) -> int:
    """The exit code of ``child``; meanwhile reap every other child that exits (a subreaper inherits
    orphans) and end the idle workers a dead scheduler left (:func:`end_idle_orphans`)."""
    import os
    import time

    next_scan, seen_idle = 0.0, set[int]()
    while True:
        pid, status = os.waitpid(-1, os.WNOHANG)
        if pid == child:
            return os.waitstatus_to_exitcode(status)
        if pid:  # an orphan ended: look for the next one straight away
            continue
        if time.monotonic() >= next_scan:
            seen_idle = end_idle_orphans(child, seen_idle)
            next_scan = time.monotonic() + scan_every
        time.sleep(poll)


def supervise(args: list[str]) -> int:
    """Warm up once, then run ``airflow <args>`` in a forked child, and fork it again (warm) when it
    dies of anything but our own stop: the scheduler exits on some database errors (an upstream race,
    apache/airflow#71923, crashes it on a rescheduled sensor's failure) and nothing else restarts it.
    SIGTERM/SIGINT go to the child and end the loop; restarts back off from 1 s to 30 s. The workers
    a dead scheduler leaves are re-parented here and ended once idle (:func:`end_idle_orphans`)."""
    import contextlib
    import os
    import signal
    import time

    warm_up()
    become_subreaper()
    from airflow.__main__ import main as airflow_main

    stopping: list[int] = []
    child = 0

    def forward(signum: int, _frame: object) -> None:
        stopping.append(signum)
        if child:
            with contextlib.suppress(ProcessLookupError):  # between a crash and the next start
                os.kill(child, signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    delay = 1.0
    while True:
        started = time.monotonic()
        child = os.fork()
        if child == 0:  # the component itself, warm
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.default_int_handler)
            sys.argv = ["airflow", *args]
            try:
                airflow_main()
            except SystemExit as done:
                os._exit(done.code if isinstance(done.code, int) else 1)
            except BaseException:
                import traceback

                traceback.print_exc()
                os._exit(1)
            os._exit(0)
        code = wait_for(child)
        if stopping or code == 0:
            return 0 if code == 0 or stopping else code
        delay = 1.0 if time.monotonic() - started > CALM_SECONDS else min(delay * 2, 30.0)
        print(f"taxiflow.local.warm_start: airflow {' '.join(args)} exited with {code}; "
              f"starting it again in {delay:.0f} s", file=sys.stderr, flush=True)
        time.sleep(delay)
        if stopping:
            return 0


if __name__ == "__main__":
    if sys.argv[1:2] == [RESTART_FLAG]:
        sys.exit(supervise(sys.argv[2:]))
    main()
