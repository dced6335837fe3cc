"""Airflow settings that make the embedded default (SQLite, LocalExecutor) answer in seconds.

``LOCAL_AIRFLOW_SETTINGS`` is merged into the environment of every process ``taxiflow.local.stack``
starts (``make run`` and the end-to-end tests); an explicit ``AIRFLOW__*`` in a stack's
``extra_env`` still wins. Measured with ``make bench`` (``benchmarks/bench_live.py``, which can
also run with Airflow's own defaults for these keys); the figures are in the README (Benchmarks).

Where the time of a short run goes on the defaults: the scheduler sleeps up to
``scheduler_idle_sleep_time`` (1 s) whenever a loop found nothing to do, so each step of a run
(queued -> running, each task scheduled after its upstream, the run marked done) waits for the
next loop: about 0.5 s on average per step, three to four steps per task. Task start itself is
quick (LocalExecutor forks from warm workers).
"""

from __future__ import annotations

LOCAL_AIRFLOW_SETTINGS: dict[str, str] = {
    # Loop again after 0.1 s instead of 1 s when idle: each scheduling step costs ~0.05 s on average
    # instead of ~0.5 s. The price is the idle scheduler's CPU (measured with nothing running, the
    # embedded PostgreSQL's own share not counted): 5 % of a core at 1 s, 19 % at 0.1 s, 33 % at
    # 0.05 s, which would save at most ~0.025 s per step more; 0.1 s is where it stops paying.
    "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.1",
    # LocalExecutor forks `parallelism` workers when it starts (default 32). Eight run more tasks
    # at once than two cores can use, and start (and stop) in a fraction of the time and memory.
    "AIRFLOW__CORE__PARALLELISM": "8",
    # A scheduler that crashes (and is started again by taxiflow.local.warm_start within seconds) can
    # leave a task queued that no executor holds any more. The new scheduler resets such tasks at its
    # orphan check, once the dead one has missed heartbeats for 30 s: every 30 s instead of every
    # 300 s, so a lost task (and report_requests behind it, max_active_runs=1) waits under a minute.
    "AIRFLOW__SCHEDULER__ORPHANED_TASKS_CHECK_INTERVAL": "30",
}
