"""The test run's module order (tests/support/module_times.py): one live deployment up at a time."""

from __future__ import annotations

from dataclasses import dataclass

from tests.support.module_times import pytest_collection_modifyitems


@dataclass
class Item:
    nodeid: str
    fixturenames: tuple[str, ...] = ()


def test_modules_with_a_deployment_of_their_own_run_before_the_packages_shared_one_and_stay_whole():
    items = [
        Item("tests/dags/test_a.py::t"),
        Item("tests/drills/test_bad_inputs.py::t1"), Item("tests/drills/test_bad_inputs.py::t2"),
        Item("tests/drills/test_burst.py::t", ("drill_deployment",)),
        Item("tests/drills/test_isolated_worker.py::t1"), Item("tests/drills/test_isolated_worker.py::t2"),
        Item("tests/drills/test_sigkill.py::t", ("drill_deployment",)),
        Item("tests/e2e/test_api_v1.py::t1", ("airflow_stack",)), Item("tests/e2e/test_api_v1.py::t2"),
        Item("tests/e2e/test_late_drop_alert.py::t"),
        Item("tests/unit/test_b.py::t"),
    ]
    pytest_collection_modifyitems(items)  # type: ignore[arg-type]
    assert [item.nodeid for item in items] == [
        "tests/dags/test_a.py::t",
        "tests/drills/test_bad_inputs.py::t1", "tests/drills/test_bad_inputs.py::t2",
        "tests/drills/test_isolated_worker.py::t1", "tests/drills/test_isolated_worker.py::t2",
        "tests/drills/test_burst.py::t", "tests/drills/test_sigkill.py::t",
        # a module is moved whole: its second test asks for no deployment but stays with the first
        "tests/e2e/test_late_drop_alert.py::t",
        "tests/e2e/test_api_v1.py::t1", "tests/e2e/test_api_v1.py::t2",
        "tests/unit/test_b.py::t",
    ]
