"""DAG parse time per file, against an empty one-task DAG file (goal: each <= 1.5x).

Parsed the way ``make run``'s dag-processor parses: the parent holds what a running
``airflow dag-processor`` has loaded (``airflow.dag_processing.manager``), has pre-imported the
``airflow.*`` modules each DAG file names (``[dag_processor] parsing_pre_import_modules``; after its
first pass over the folder a dag-processor holds those of every file) and has frozen its heap
(``gc.freeze()``, as ``DagFileProcessorManager.before_run`` does), with the sources byte-compiled
(``taxiflow.local.stack.compile_sources``, as the stack does before it starts); then a forked
child runs the dag-processor's own ``_parse_file`` on that one file (build the DagBag, serialize its
DAGs). The child's CPU time counts (``time.process_time``: what parsing costs, and steady on a busy
machine, where wall time mostly measures the neighbours). Files are parsed round-robin, each in a
fresh fork several times; the median counts.

Then the same ratio as a live dag-processor records it: ``make run``'s deployment with
``[dag_processor] min_file_process_interval`` at 3 s, nothing running, each DAG's
``last_parse_duration`` (wall seconds from the child's start to its result, as the UI shows it)
sampled every second for a minute; the median of the distinct parses seen, against the empty DAG's.
"""

from __future__ import annotations

import gc
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_live import (  # ruff: ignore[module-import-not-at-top-of-file]  (the same empty DAG the live floor uses)
    EMPTY_DAG,
    EMPTY_DAG_ID,
    _project_copy,
)


def _pre_import(path: Path) -> None:
    """What the dag-processor does before it forks for a file (``parsing_pre_import_modules``)."""
    import importlib

    from airflow.utils.file import iter_airflow_imports

    for module in iter_airflow_imports(str(path)):
        importlib.import_module(module)


def _parse_in_fork(path: Path) -> float:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: parse as the dag-processor's child does, report seconds, exit without cleanup
        os.close(read)
        try:
            # _parse_file is private on purpose: no public API parses one file as the dag-processor does
            # (stability check, BundleDagBag, serialization); those steps copied from public parts would drift.
            import structlog
            from airflow.dag_processing.processor import DagFileParseRequest, _parse_file

            request = DagFileParseRequest(file=str(path), bundle_path=path.parent, bundle_name="dags-folder",
                                          callback_requests=[])
            started = time.process_time()
            result = _parse_file(request, structlog.get_logger())
            seconds = time.process_time() - started
            if result is None or result.import_errors or not result.serialized_dags:
                raise RuntimeError(result and result.import_errors)
            os.write(write, f"{seconds}".encode())
        except BaseException as err:
            os.write(write, f"error {err!r}".encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        answer = pipe.read()
    os.waitpid(pid, 0)
    if answer.startswith("error"):
        raise RuntimeError(f"{path.name}: {answer}")
    return float(answer)


def sample_parse_durations(stack, samples: dict[str, set[float]]) -> None:
    """Add each DAG's latest ``last_parse_duration`` (what the dag-processor recorded) to ``samples``."""
    _, body = stack.api("GET", "/api/v2/dags?limit=100")
    for dag in body.get("dags", []):
        if dag.get("last_parse_duration") is not None:
            samples.setdefault(dag["dag_id"], set()).add(dag["last_parse_duration"])


def parse_rows(samples: dict[str, set[float]]) -> list[dict]:
    """One row per DAG: the median of its live parses over the empty DAG's (goal <= 1.5x)."""
    if EMPTY_DAG_ID not in samples:
        return []
    empty = samples[EMPTY_DAG_ID]
    floor = statistics.median(empty)
    rows = [{"benchmark": "parse", "metric": f"live parse, empty DAG file, median of {len(empty)}",
             "value": round(floor, 3), "unit": "s", "target": None, "ok": None}]
    for dag_id, seen in sorted(samples.items()):
        if dag_id != EMPTY_DAG_ID:
            median = statistics.median(seen)
            rows.append({"benchmark": "parse",
                         "metric": f"live parse, {dag_id} ({median:.3f} s, {len(seen)} parses) / empty",
                         "value": round(median / floor, 2), "unit": "x", "target": "<= 1.5",
                         "ok": median / floor <= 1.5})
    return rows


def live_rows(work_dir: Path, seconds: float) -> list[dict]:
    """Parse durations as a live dag-processor records them (see the module docstring)."""
    from tests.support.live import enterable_root, new_stack

    stack = new_stack(enterable_root(work_dir), project_dir=_project_copy(work_dir),
                      extra_env={"AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "3"})
    stack.migrate()
    stack.start()
    try:
        stack.wait_until_healthy([EMPTY_DAG_ID])
        samples: dict[str, set[float]] = {}
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            sample_parse_durations(stack, samples)
            time.sleep(1)
    finally:
        stack.stop()
    return parse_rows(samples)


def run(work_dir: Path, quick: bool = False, live: bool = True) -> list[dict]:
    os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="bench-parse-home-"))
    os.environ.setdefault("TAXIFLOW_DATA_DIR", str(work_dir / "data"))
    import compileall

    import airflow.dag_processing.manager  # ruff: ignore[unused-import]  (what the dag-processor runs)

    from taxiflow.local.stack import compile_sources

    work_dir.mkdir(parents=True, exist_ok=True)
    empty = work_dir / "bench_empty.py"
    empty.write_text(EMPTY_DAG)
    compile_sources(PROJECT_DIR)
    compileall.compile_file(str(empty), quiet=2)
    repeats = 5 if quick else 15
    files = [empty, *sorted((PROJECT_DIR / "dags").glob("*.py"))]
    for path in files:
        _pre_import(path)
    gc.freeze()
    seconds: dict[str, list[float]] = {path.name: [] for path in files}
    for _ in range(repeats):  # round-robin, so a busy moment of the machine costs every file alike
        for path in files:
            seconds[path.name].append(_parse_in_fork(path))
    medians = {name: statistics.median(values) for name, values in seconds.items()}
    floor = medians[empty.name]
    rows = [{"benchmark": "parse", "metric": f"empty DAG file, CPU s, median of {repeats}", "value": round(floor, 3),
             "unit": "s", "target": None, "ok": None}]
    for path in files[1:]:
        ratio = medians[path.name] / floor
        rows.append({"benchmark": "parse", "metric": f"{path.name} ({medians[path.name]:.3f} s) / empty",
                     "value": round(ratio, 2), "unit": "x", "target": "<= 1.5", "ok": ratio <= 1.5})
    if live:
        rows += live_rows(work_dir / "live", seconds=30 if quick else 60)
    return rows


if __name__ == "__main__":
    for row in run(Path(tempfile.mkdtemp()), quick="--quick" in sys.argv, live="--no-live" not in sys.argv):
        print(row)
