"""The burst drill: 40 /api/v2 + 20 /api/v1 triggers from 12 threads and 10 request files at once.

Every call is answered 200, or 503/429 with Retry-After that the retrying client gets through (never
a 500); no Airflow process exits; every run succeeds, every chart lands, and every chart's numbers
equal those of the same report run alone.
"""

from __future__ import annotations

import pytest

from tests.drills.tooling import burst, chart_numbers, report_alone, run_states, wait_for_charts

pytestmark = [pytest.mark.e2e, pytest.mark.drills]


def test_the_burst_is_answered_and_every_report_lands_with_the_numbers_of_a_run_alone(drill_deployment):
    stack = drill_deployment
    report_alone(stack, "alone")
    alone = chart_numbers(stack.data_dir, "alone")
    before = stack.recorded_pids()

    result = burst(stack)

    statuses = [s for answer in result.answers for s in answer.statuses]
    failed = [(a.door, a.name, a.statuses, a.last_body) for a in result.answers
              if any(s >= 500 and s != 503 for s in a.statuses)]
    assert 500 not in statuses and not failed, failed
    refused = [(a.door, a.name, a.statuses, a.last_body) for a in result.answers if a.final != 200]
    assert not refused, refused
    retried = [a for a in result.answers if len(a.statuses) > 1]
    assert all(len(a.retry_after) == len(a.statuses) - 1 for a in retried), "a retry without Retry-After"

    states = run_states(stack, result.run_ids)
    assert set(states.values()) == {"success"}, {r: s for r, s in states.items() if s != "success"}
    names = result.run_ids + result.file_stems
    wait_for_charts(stack, names, since=result.started)
    different = [name for name in names if chart_numbers(stack.data_dir, name) != alone]
    assert not different, f"numbers differ from the run alone: {different}"

    status = stack.status()
    assert all(info["running"] for info in status.values()), status
    assert stack.recorded_pids() == before, "a process of the deployment exited (supervisord restarted it)"
