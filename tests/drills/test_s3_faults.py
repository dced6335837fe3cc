"""The S3 server killed mid-ingest and mid-publish: nothing partial is ever seen, a retry mends all.

A real SeaweedFS (``weed mini`` on loopback) holds the data root; the real green TLC months
2023-12 and 2024-01 are ingested, their metrics built and a report published across the month
boundary, each by the task code itself in a process of its own (``tests.drills.s3_fault_tasks``),
as a worker runs it. Then, for each point below, the task is run again armed with
``TAXIFLOW_FAULT_PAUSE_AT`` (``taxiflow.data.faults``): it stops exactly there and says so; the
server is killed with SIGKILL; the task goes on against the dead server and fails (a failed try).
The server is started again on the same folder and ports, and a reader must find every partition
whole (the version its ``_summary.json`` names, every row of it) and the report's manifest naming a
PNG and a CSV that are both there, are the pair it recorded, and hold the exact numbers. Then the
task is run again, as Airflow's retry does, with what the DAG runs after it: it succeeds, the
partition holds one version again, and the report's numbers are still exact.

Raw is killed too: mid-copy of a re-drop into its new raw version (nothing changes for readers;
the retry copies again and publishes), and after the summary naming a new raw version was written,
before the superseded raw copy is deleted (the retry deletes it): either way one raw version is
left, the one the partition's ``_summary.json`` names.

Expected numbers are an independent pandas count of the same TLC rows (``expected_counts``): a
month counts its own rows plus the strays its neighbour keeps for it (issue 22 item 7).

2024-01 is dropped as ``PARTS`` copies of the TLC file, so its ``trips.parquet`` is over 10 MiB: an
armed upload goes in 5 MiB parts (the smallest S3 and SeaweedFS accept), and the kill falls between
two parts of one object. Run under the heavy lock.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from PIL import Image

from taxiflow.config import STORAGE_CONN_ID_DEFAULT, SUCCESS_MARKER, DataPaths, Partition
from taxiflow.data import faults
from tests.conftest import REPO_ROOT
from tests.e2e.test_pipeline import expected_counts

pytestmark = [pytest.mark.e2e, pytest.mark.drills, pytest.mark.s3]  # e2e: `make test-fast` skips it

SOURCE = "green"
MONTHS = ("2023-12", "2024-01")
PARTS = 16  # copies of green 2024-01 in its drop: a trips.parquet over two armed upload parts (~14 MB)
REPORT = {"borough": "Manhattan", "start_date": "2023-12-18", "end_date": "2024-01-15",
          "name": "drill_s3_kill", "sources": [SOURCE]}
KILLED_MONTH = Partition(SOURCE, "2024-01")
TRIPS_KEY = f"trips {KILLED_MONTH.month}"  # its entry in published_state
# Guards against a hang, never a pass condition: each wait ends on an event long before.
PATIENCE = 300
PROBE_NAME, PROBE = "drill-probe", b"served"  # an object outside every partition and report


def step(kind: str, partition: Partition = KILLED_MONTH) -> str:
    return f"{kind}:{partition.source}:{partition.month}"


REPORT_STEP = f"report:{json.dumps(REPORT)}"
INGEST_AFTER = (step("metrics"), REPORT_STEP)  # what the DAGs run after process: metrics, then the report


@dataclass(frozen=True)
class Point:
    """Where the server dies: the pause pattern, the task killed there, and what a reader must see after."""

    id: str
    pattern: str
    task: str
    then: tuple[str, ...]  # run after the retried task, as the DAGs would
    shows_new: bool  # the crash came after the new version was published (its marker or manifest written)
    before: tuple[str, ...] = ()  # run (unarmed) first: a re-drop copied into raw, for process to publish


REPORT_FOLDER = f"*/outputs/{REPORT['name']}"
POINTS = [
    Point("trips-upload", "during-upload:*/month=2024-01/v-*/trips.parquet", step("process"), INGEST_AFTER, False),
    Point("summary-write", "before-write:*/month=2024-01/_summary.json", step("process"), INGEST_AFTER, False),
    Point("superseded-trips-delete", "before-delete:*/month=2024-01/v-*", step("process"), INGEST_AFTER, True),
    # raw: a drop is copied once, into a version of its own that the partition's _summary.json names
    Point("raw-copy", "after-write:*/raw/green/2024-01/v-*/*part03.parquet", step("copy"),
          (step("process"), *INGEST_AFTER), False),
    Point("superseded-raw-delete", "before-delete:*/raw/green/2024-01/v-*", step("process"), INGEST_AFTER, True,
          before=(step("copy"),)),
    Point("metrics-write", "before-write:*/hourly_borough/*/month=2024-01/part.parquet", step("metrics"),
          (REPORT_STEP,), False),
    Point("report-csv-write", f"before-write:{REPORT_FOLDER}/v-*/{REPORT['name']}.csv", REPORT_STEP, (), False),
    Point("manifest-write", f"before-write:{REPORT_FOLDER}/manifest.json", REPORT_STEP, (), False),
    Point("superseded-report-delete", f"before-delete:{REPORT_FOLDER}/v-*", REPORT_STEP, (), True),
]


class Drill:
    """The server (replaced on each restart), the environment every process gets, and the expected numbers."""

    def __init__(self, server, env: dict[str, str], work: Path) -> None:
        self.server = server
        self.env = env
        self.work = work
        self.expected = pd.DataFrame()  # the report's numbers, counted by pandas once the drops are made
        self.runs = 0

    def tasks(self, *steps: str, pause_at: str | None = None) -> tuple[subprocess.Popen, Path, Path]:
        """Start the task code in a process of its own (armed to pause at ``pause_at``); its log and signal folder."""
        self.runs += 1
        signals = self.work / f"run-{self.runs}"
        signals.mkdir()
        env = {**os.environ, **self.env, faults.SIGNAL_DIR_ENV: str(signals)}
        env.pop(faults.PAUSE_AT_ENV, None)
        if pause_at:
            env[faults.PAUSE_AT_ENV] = pause_at
        log = signals / "task.log"
        with open(log, "wb") as out:
            process = subprocess.Popen([sys.executable, "-m", "tests.drills.s3_fault_tasks", *steps], cwd=REPO_ROOT,
                                       env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        return process, log, signals

    def run_ok(self, *steps: str) -> None:
        process, log, _ = self.tasks(*steps)
        assert process.wait(PATIENCE) == 0, f"{' '.join(steps)} failed:\n{log.read_text()}"

    def restart(self) -> None:
        """Start the server again on its folder and ports; return once it serves an object again.

        Its S3 port answers, and lists the bucket, a moment before its volume server has registered
        with the master again: a GET in between gets ``InternalError`` (seen on a loaded machine). So
        the restart ends on an event, a GET of the probe object the fixture wrote, not on a delay.
        """
        from taxiflow.data import documents, storage

        self.server = self.server.restart()
        deadline = time.monotonic() + PATIENCE
        while True:
            try:
                if documents.read_bytes(storage.root() / PROBE_NAME) == PROBE:
                    return
            except OSError as err:
                if time.monotonic() > deadline:
                    raise AssertionError(f"the restarted server serves no object: {err}") from err
            time.sleep(0.1)


@pytest.fixture(scope="module")
def drill(tmp_path_factory, tlc_dir):
    from taxiflow.data import storage, warehouse
    from tests.support.seaweedfs import start_seaweedfs

    work = tmp_path_factory.mktemp("s3-faults")
    server = start_seaweedfs(work / "seaweedfs", bucket="taxiflow-drill")
    env = server.env(prefix="drill")
    # A call to a dead server fails in seconds (no botocore retries on top of s3fs's own five).
    connection = server.connection()
    connection["extra"]["config_kwargs"] = {"retries": {"max_attempts": 1}, "connect_timeout": 3}
    env[f"AIRFLOW_CONN_{STORAGE_CONN_ID_DEFAULT.upper()}"] = json.dumps(connection)
    drill = Drill(server, env, work)
    try:
        with pytest.MonkeyPatch.context() as patch:
            for name, value in env.items():
                patch.setenv(name, value)
            paths = DataPaths(storage.root())
            storage.write_bytes(storage.root() / PROBE_NAME, PROBE)  # what a restart waits to read back
            files = {"2023-12": [tlc_dir / "green" / "green_tripdata_2023-12.parquet"],
                     "2024-01": [tlc_dir / "green" / "green_tripdata_2024-01.parquet"] * PARTS}
            for month, sources in files.items():  # data first, _SUCCESS last, as an upstream system uploads
                folder = paths.landing_dir(Partition(SOURCE, month))
                for number, file in enumerate(sources, start=1):
                    storage.upload(file, folder / f"{file.stem}-part{number:02d}{file.suffix}")
                storage.write_bytes(folder / SUCCESS_MARKER, b"")
            ingested = [(SOURCE, month, file) for month, sources in files.items() for file in sources]
            drill.expected = expected_counts(ingested, warehouse.PACKAGED_ZONE_TABLE, REPORT["borough"],
                                             REPORT["start_date"], REPORT["end_date"])
            months = [Partition(SOURCE, month) for month in MONTHS]
            drill.run_ok(*(step(kind, month) for month in months for kind in ("copy", "process")),
                         *(step("metrics", month) for month in months), REPORT_STEP)
            yield drill
    finally:
        drill.server.stop()  # the one running now: each restart replaced it


def test_the_killed_upload_is_one_over_two_parts(drill):
    """The during-upload point cuts one object between parts only if it is larger than two of them."""
    from taxiflow.data import storage, warehouse

    trips = warehouse.published_trips(KILLED_MONTH).trips_file
    assert storage.info(trips)["size"] > 2 * faults.ARMED_PART_SIZE


@pytest.mark.parametrize("point", POINTS, ids=[point.id for point in POINTS])
def test_the_server_killed_there_leaves_nothing_partial_and_the_retry_mends_it(drill, point):
    if point.before:
        drill.run_ok(*point.before)
    before = published_state(drill)
    process, log, signals = drill.tasks(point.task, pause_at=point.pattern)
    wait_for_pause(process, log, signals)
    drill.server.kill()  # SIGKILL: no flush, no goodbye
    (signals / faults.RESUME_FILE).touch()
    assert process.wait(PATIENCE) != 0, f"the task went on as if the server were there:\n{log.read_text()}"
    drill.restart()

    after_crash = published_state(drill)  # what every reader sees now: whole partitions, one agreeing report
    changed = {key for key in before if after_crash[key] != before[key]}
    if point.task.startswith("process"):
        assert changed == ({TRIPS_KEY} if point.shows_new else set())
    elif point.task.startswith("report"):
        assert changed == ({"report"} if point.shows_new else set())
    else:
        assert changed == set()
    if point.id == "trips-upload":  # the parts sent before the kill stay on the server, until swept
        from taxiflow.data import multipart, storage

        left = [upload["Key"] for upload in multipart.unfinished(storage.root())]
        assert len(left) == 1 and left[0].endswith("/trips.parquet"), left
        assert multipart.sweep(storage.root()) == []  # too young for the daily sweep's age
        assert multipart.sweep(storage.root(), older_than=timedelta(0)) == left
        assert multipart.unfinished(storage.root()) == []

    drill.run_ok(point.task, *point.then)  # Airflow's retry, then what the DAGs run next
    retried = published_state(drill)
    if point.task.startswith("process"):  # a new version, the only one left: the crash's leftovers are gone
        version = retried[TRIPS_KEY]
        assert version != after_crash[TRIPS_KEY]
        assert partition_files(KILLED_MONTH) == ["_summary.json", f"{version}/trips.parquet"]
    if point.task.startswith("report") or point.then:
        assert retried["report"] != after_crash["report"]
    if point.task.startswith(("copy", "process")):  # one raw copy left, the one the summary names, whole
        from taxiflow.data import ingest

        raw_version = ingest.read_summary(KILLED_MONTH)["raw_version"]
        copies = [f"{raw_version}/{SOURCE}_tripdata_2024-01-part{n:02d}.parquet" for n in range(1, PARTS + 1)]
        assert raw_files_below(KILLED_MONTH) == sorted(["_staged.json", *copies])


# --- what a reader sees ----------------------------------------------------------------------------


def wait_for_pause(process: subprocess.Popen, log: Path, signals: Path) -> None:
    """Return once the armed task signals ``reached`` (it now waits for ``resume``); fail if it ends first."""
    reached = signals / faults.REACHED_FILE
    deadline = time.monotonic() + PATIENCE
    while not reached.exists():
        if process.poll() is not None:
            pytest.fail(f"the task ended (status {process.returncode}) without reaching its point:\n{log.read_text()}")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"the task did not reach its point in {PATIENCE} s:\n{log.read_text()}")
        time.sleep(0.05)


def published_state(drill: Drill) -> dict[str, str]:
    """The version of each published partition and of the report, after checking each is whole and exact."""
    state = {f"trips {month}": whole_partition(Partition(SOURCE, month)) for month in MONTHS}
    state["metrics"] = whole_metrics(KILLED_MONTH)
    state["report"] = agreeing_report(drill.expected)
    return state


def whole_partition(partition: Partition) -> str:
    """The version the partition's ``_summary.json`` names, after reading every row it promises."""
    from taxiflow.data import documents, warehouse

    published = warehouse.published_trips(partition)
    assert published is not None, f"{partition} lost its published version"
    summary = published.summary
    table = pq.read_table(io.BytesIO(documents.read_bytes(published.trips_file)))
    assert table.num_rows == summary["rows_written"] + summary["rows_strays_kept"], partition
    return published.version


def whole_metrics(partition: Partition) -> str:
    """Both metrics files of the month are whole, and count the same trips (they come from the same inputs)."""
    from taxiflow.data import documents, metrics, warehouse

    totals = {}
    for table in (metrics.HOURLY_ZONE, metrics.HOURLY_BOROUGH):
        data = pq.read_table(io.BytesIO(documents.read_bytes(warehouse.metrics_file(table, partition))))
        totals[table] = sum(data.column("trips").to_pylist())
    assert len(set(totals.values())) == 1, totals
    return str(totals[metrics.HOURLY_ZONE])


def agreeing_report(expected: pd.DataFrame) -> str:
    """The report's version, after checking its manifest names a PNG and CSV of that version, as recorded, exact."""
    from taxiflow.reports.outputs import read_report

    report = read_report(REPORT["name"])
    assert report is not None, "the report is gone"
    manifest = report.manifest
    for kind, content in (("png", report.png), ("csv", report.csv)):
        entry = manifest["files"][kind]
        assert entry["key"].startswith(f"{manifest['version']}/")
        assert hashlib.sha256(content).hexdigest() == entry["sha256"], f"{kind} is not the file the manifest recorded"
    with Image.open(io.BytesIO(report.png)) as image:
        image.verify()
    numbers = pd.read_csv(io.BytesIO(report.csv))
    merged = expected.merge(numbers, on=["hour_of_day", "day_of_week"], suffixes=("_expected", "_report"))
    assert len(merged) == 168 and manifest["total_trips"] == numbers["num_trips"].sum() > 1000
    assert (merged["num_trips_expected"] == merged["num_trips_report"]).all()
    return str(manifest["version"])


def partition_files(partition: Partition) -> list[str]:
    from taxiflow.data import storage

    return storage.files_below(storage.data_paths().trips_dir(partition))


def raw_files_below(partition: Partition) -> list[str]:
    from taxiflow.data import storage

    return storage.files_below(storage.data_paths().raw_dir(partition))
