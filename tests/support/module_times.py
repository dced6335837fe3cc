"""Where a test run's time goes, by module, and the order that keeps one live deployment up at a time.

A pytest plugin (tests/conftest.py loads it):

* **Module order.** A package-scoped deployment (``airflow_stack`` in tests/e2e/, ``drill_deployment``
  in tests/drills/) is built by the first test that asks for it and stopped only when pytest leaves
  the package. A module that builds a deployment of its own (other settings, another executor, S3)
  and runs after that first test would have two deployments up at once on a 2-core machine. So,
  within each package, the modules whose tests never ask for the package's shared deployment run
  first, in their usual order, then the rest, in theirs. No test depends on another module having
  run first (each module uses months of its own).
* **Module times.** At the end, the wall time of each slow module: from its first test's setup
  (a package deployment started there counts in that module) to its last test's teardown.
  ``--durations`` shows single phases; this shows the modules (``make test`` prints both).
"""

from __future__ import annotations

import pytest

SHARED_DEPLOYMENTS = ("airflow_stack", "drill_deployment")  # package-scoped, in tests/<package>/conftest.py
SHOWN = 25  # modules listed at the end
_spans: dict[str, list[float]] = {}


def _module(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


def _package(nodeid: str) -> str:
    return _module(nodeid).rpartition("/")[0]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    uses_shared: set[str] = set()
    for item in items:
        if set(SHARED_DEPLOYMENTS) & set(getattr(item, "fixturenames", ())):
            uses_shared.add(_module(item.nodeid))
    package_rank: dict[str, int] = {}
    for item in items:
        package_rank.setdefault(_package(item.nodeid), len(package_rank))
    position = {id(item): index for index, item in enumerate(items)}
    items.sort(key=lambda item: (package_rank[_package(item.nodeid)], _module(item.nodeid) in uses_shared,
                                 position[id(item)]))


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    span = _spans.setdefault(_module(report.nodeid), [report.start, report.stop])
    span[0], span[1] = min(span[0], report.start), max(span[1], report.stop)


def pytest_terminal_summary(terminalreporter) -> None:
    if not _spans:
        return
    walls = sorted(((stop - start, module) for module, (start, stop) in _spans.items()), reverse=True)[:SHOWN]
    total = max(stop for _, stop in _spans.values()) - min(start for start, _ in _spans.values())
    terminalreporter.write_sep("=", f"slowest {len(walls)} modules (wall time, first setup to last teardown)")
    for wall, module in walls:
        terminalreporter.write_line(f"{wall:8.1f}s {module}")
    terminalreporter.write_line(f"{total:8.1f}s from the first test's setup to the last test's teardown")
