"""DAG parse time per file, against an empty one-task DAG file (goal: each <= 1.5x).

Parsed the way a running dag-processor does it: the parent has Airflow loaded, has pre-imported the
``airflow.*`` modules the DAG files name (``[dag_processor] parsing_pre_import_modules``; after its
first pass over the folder a dag-processor holds those of every file) and has frozen
its heap (``gc.freeze()``, as ``DagFileProcessorManager.before_run`` does, so a child's garbage
collection does not walk the parent's objects), then a forked child builds a ``DagBag`` for that
one file and serializes its DAGs. The child's CPU time counts (``time.process_time``: what parsing
costs, and steady on a busy machine, where wall time mostly measures the neighbours).
Each file is parsed in a fresh fork several times; the median counts.
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
from bench_live import EMPTY_DAG  # ruff: ignore[module-import-not-at-top-of-file]  (the same empty DAG the live floor uses)


def _pre_import(path: Path) -> None:
    """What the dag-processor does before it forks for a file (``parsing_pre_import_modules``)."""
    import importlib

    from airflow.utils.file import iter_airflow_imports

    for module in iter_airflow_imports(str(path)):
        importlib.import_module(module)


def _parse_in_fork(path: Path) -> float:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: parse, report seconds, exit without cleanup
        os.close(read)
        try:
            from airflow.dag_processing.dagbag import DagBag
            from airflow.serialization.serialized_objects import DagSerialization

            started = time.process_time()
            bag = DagBag(dag_folder=str(path))
            if bag.import_errors:
                raise RuntimeError(bag.import_errors)
            for dag in bag.dags.values():
                DagSerialization.to_dict(dag)
            os.write(write, f"{time.process_time() - started}".encode())
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


def run(work_dir: Path, quick: bool = False) -> list[dict]:
    os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="bench-parse-home-"))
    os.environ.setdefault("TAXIFLOW_DATA_DIR", str(work_dir / "data"))
    from airflow.dag_processing.dagbag import DagBag

    work_dir.mkdir(parents=True, exist_ok=True)
    empty = work_dir / "bench_empty.py"
    empty.write_text(EMPTY_DAG)
    DagBag(dag_folder=str(empty))  # the parent holds a warm Airflow, as the dag-processor does
    repeats = 3 if quick else 7
    files = [empty, *sorted((PROJECT_DIR / "dags").glob("*.py"))]
    for path in files:
        _pre_import(path)
    gc.freeze()
    medians = {path.name: statistics.median(_parse_in_fork(path) for _ in range(repeats)) for path in files}
    floor = medians[empty.name]
    rows = [{"benchmark": "parse", "metric": f"empty DAG file, CPU s, median of {repeats}", "value": round(floor, 3),
             "unit": "s", "target": None, "ok": None}]
    for path in files[1:]:
        ratio = medians[path.name] / floor
        rows.append({"benchmark": "parse", "metric": f"{path.name} ({medians[path.name]:.3f} s) / empty",
                     "value": round(ratio, 2), "unit": "x", "target": "<= 1.5", "ok": ratio <= 1.5})
    return rows


if __name__ == "__main__":
    for row in run(Path(tempfile.mkdtemp()), quick="--quick" in sys.argv):
        print(row)
