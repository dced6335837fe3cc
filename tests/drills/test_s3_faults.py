"""The S3 server killed mid-ingest and mid-publish: readers never see a partial partition, nor a
report whose PNG and CSV disagree; the failed task's retry gives the right numbers.

Each case runs the pipeline's task bodies (``tests/drills/s3_task.py``: the calls the DAG tasks
make) in processes of their own against a real SeaweedFS. One task is armed to pause at a named
point of its storage writes (``taxiflow.data.faults``: no sleeping and hoping); there the server is
SIGKILLed, the task resumes into a dead endpoint and fails, the server is started again on the
same folder and ports, and the task is run again, as Airflow retries it. All the while a reader
thread looks at the data the way every reader does (``warehouse.connect``, ``read_report``) and
records anything that is not a complete, agreeing state. Real TLC months (green 2023-12 and
2024-01) and one synthetic month big enough (600,000 trips) that its partition goes up in several
parts, so the kill lands between two parts of one upload.

Markers ``drills`` and ``s3``; run under the heavy lock:
``flock /tmp/taxiflow-heavy.lock .venv/bin/python -m pytest tests/drills/test_s3_faults.py``.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from taxiflow.config import DATA_DIR_ENV, SUCCESS_MARKER, DataPaths, Partition
from taxiflow.data import faults, storage, warehouse

pytestmark = [pytest.mark.drills, pytest.mark.s3]

PROJECT_DIR = Path(__file__).resolve().parents[2]
TLC_GREEN = PROJECT_DIR / "tests" / "data" / "tlc" / "green"
DEC, JAN = Partition("green", "2023-12"), Partition("green", "2024-01")
BIG = Partition("yellow", "2024-02")
BIG_TRIPS = 600_000  # a ~13 MB partition: three 5 MiB parts when a drill arms its upload
PICKUP = {"green": "lpep_pickup_datetime", "yellow": "tpep_pickup_datetime"}
REPORT_CONF = {"borough": "Manhattan", "start_date": "2023-12-01", "end_date": "2024-02-01", "sources": ["green"]}
INGEST_STEPS = ("copy_to_raw", "process_partition", "build_metrics")


# --- the server, across kills and restarts ----------------------------------------------------------


class Store:
    """The SeaweedFS of the module; ``state`` tells a reader whether it was up all through a look."""

    def __init__(self, server) -> None:
        self.server = server
        self.generation = 0
        self.up = True
        self._lock = threading.Lock()

    def state(self) -> tuple[int, bool]:
        with self._lock:
            return self.generation, self.up

    def kill(self) -> None:
        with self._lock:
            self.up, self.generation = False, self.generation + 1
        self.server.kill()

    def restart(self) -> None:
        self.server = self.server.restart()
        with self._lock:
            self.up, self.generation = True, self.generation + 1


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    from taxiflow.local.object_store import start_seaweedfs

    server = Store(start_seaweedfs(tmp_path_factory.mktemp("weed"), bucket="drill"))
    saved = dict(os.environ)
    os.environ.update(server.server.env(prefix="unused"))
    try:
        yield server
    finally:
        server.server.stop()
        os.environ.clear()
        os.environ.update(saved)


def use_prefix(prefix: str) -> DataPaths:
    """Point this process (and the tasks it starts) at ``s3://drill/<prefix>``."""
    os.environ[DATA_DIR_ENV] = f"s3://drill/{prefix}"
    return storage.data_paths()


def copy_prefix(source: DataPaths, target: DataPaths, folder: str = "warehouse") -> None:
    """Server-side copy of every object below ``<source>/<folder>`` to ``<target>/<folder>``."""
    for name in storage.files_below(source.root / folder):
        storage.copy_file(source.root / folder / name, target.root / folder / name)


def drop(paths: DataPaths, partition: Partition, file: Path) -> None:
    folder = paths.landing_dir(partition)
    storage.upload(file, folder / file.name)
    storage.write_bytes(folder / SUCCESS_MARKER, b"")


# --- tasks: run, armed, retried ---------------------------------------------------------------------


def run_task(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.drills.s3_task", *args], cwd=PROJECT_DIR, env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


def finish(*args: str) -> None:
    process = run_task(*args)
    output, _ = process.communicate(timeout=600)
    assert process.returncode == 0, f"{args} failed:\n{output[-3000:]}"


def kill_at(store: Store, point: str, signals: Path, *args: str, while_down=None) -> dict | None:
    """Run one task armed at ``point``; if it gets there, kill the server, let the task go on into
    the dead endpoint, start the server again. None if the task ended without reaching ``point``."""
    signals.mkdir(parents=True, exist_ok=True)
    for name in (faults.REACHED_FILE, faults.RESUME_FILE):
        (signals / name).unlink(missing_ok=True)
    process = run_task(*args, env={faults.PAUSE_AT_ENV: point, faults.SIGNAL_DIR_ENV: str(signals)})
    reached = signals / faults.REACHED_FILE
    deadline = time.monotonic() + 600
    while not reached.exists() and process.poll() is None:
        assert time.monotonic() < deadline, f"{args} neither reached {point} nor ended"
        time.sleep(0.05)
    if not reached.exists():
        output, _ = process.communicate()
        assert process.returncode == 0, f"{args} failed before {point}:\n{output[-3000:]}"
        return None
    store.kill()
    (signals / faults.RESUME_FILE).touch()
    output, _ = process.communicate(timeout=600)
    if while_down:
        while_down()
    store.restart()
    return {"point": reached.read_text(), "task": args, "failed": process.returncode != 0, "output": output}


def drill(store: Store, point: str, signals: Path, tasks: list[tuple[str, ...]], while_down=None) -> dict:
    """Run ``tasks`` in order, the first to reach ``point`` killed there and retried; the rest after it."""
    killed = None
    for task in tasks:
        if killed is None:
            killed = kill_at(store, point, signals, *task, while_down=while_down)
            if killed and killed["failed"]:
                finish(*task)  # the retry
        else:
            finish(*task)
    assert killed, f"no task reached {point}"
    return killed


# --- what readers see -------------------------------------------------------------------------------


class Reader(threading.Thread):
    """Looks again and again; every look the server was up for must show complete, agreeing data."""

    def __init__(self, store: Store, paths: DataPaths, months: dict[str, int] | None, report: str | None = None,
                 totals: frozenset[int] = frozenset()) -> None:
        super().__init__(daemon=True)
        self.store, self.paths, self.months, self.report, self.totals = store, paths, months, report, totals
        self.problems: list[str] = []
        self.seen: Counter[str] = Counter()
        self.unavailable = 0
        self._outage_seen = threading.Event()
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.is_set():
            before = self.store.state()
            try:
                self.look()
            except Exception as err:
                if before == self.store.state() and before[1]:
                    self.problems.append(f"a read failed while the server was up: {type(err).__name__}: {err}")
                else:
                    self.unavailable += 1
                    self._outage_seen.set()
            self._done.wait(0.05)

    def saw_outage(self) -> None:
        """Return once a look failed because the server was down (so readers did try it then)."""
        assert self._outage_seen.wait(300), "the reader never looked while the server was down"

    def stop(self) -> None:
        self._done.set()
        self.join(timeout=120)

    def look(self) -> None:
        if self.months is not None:
            self.look_at_warehouse(self.months)
        if self.report:
            self.look_at_report(self.report)

    def look_at_warehouse(self, months: dict[str, int]) -> None:
        con = warehouse.connect(self.paths)
        try:
            tables = {name for (name,) in con.execute("SHOW TABLES").fetchall()}
            trips = dict(con.execute("SELECT source || ' ' || month, count(*) FROM trips GROUP BY ALL").fetchall()
                         ) if "trips" in tables else {}
            hourly = dict(con.execute(
                "SELECT source || ' ' || month, sum(trips)::BIGINT FROM hourly_borough GROUP BY ALL"
            ).fetchall()) if "hourly_borough" in tables else {}
        finally:
            con.close()
        for table, found in (("trips", trips), ("hourly_borough", hourly)):
            for month, count in found.items():
                self.seen[f"{table} {month} {count}"] += 1
                if count != months.get(month):
                    self.problems.append(f"{table}: {month} shows {count} trips; complete is {months.get(month)}")

    def look_at_report(self, name: str) -> None:
        from taxiflow.reports.outputs import read_manifest, read_report

        report = read_report(name, self.paths)
        if report is None:
            if read_manifest(name, self.paths) is not None:
                self.problems.append(f"{name}: a manifest is there but read_report found no report")
            return
        files = report.manifest["files"]
        total = int(pd.read_csv(io.BytesIO(report.csv))["num_trips"].sum())
        self.seen[f"report {total}"] += 1
        if hashlib.sha256(report.png).hexdigest() != files["png"]["sha256"]:
            self.problems.append(f"{name}: the PNG read is not the manifest's ({report.manifest['version']})")
        if hashlib.sha256(report.csv).hexdigest() != files["csv"]["sha256"]:
            self.problems.append(f"{name}: the CSV read is not the manifest's ({report.manifest['version']})")
        if total != report.manifest["total_trips"] or total not in self.totals:
            self.problems.append(f"{name}: CSV total {total}, manifest {report.manifest['total_trips']}, "
                                 f"published totals {sorted(self.totals)}")


# --- independent counts (pandas over the dropped files) -----------------------------------------------


def month_trips(file: Path, partition: Partition) -> int:
    pickups = pd.read_parquet(file, columns=[PICKUP[partition.source]])[PICKUP[partition.source]]
    start = pd.Timestamp(f"{partition.month}-01")
    return int(((pickups >= start) & (pickups < start + pd.offsets.MonthBegin(1))).sum())


def manhattan_trips(partitions: list[Partition]) -> int:
    zones = pd.read_csv(warehouse.PACKAGED_ZONE_TABLE)
    manhattan = set(zones.loc[zones["Borough"] == "Manhattan", "LocationID"])
    total = 0
    for partition in partitions:
        frame = pd.read_parquet(TLC_GREEN / f"green_tripdata_{partition.month}.parquet",
                                columns=["lpep_pickup_datetime", "PULocationID"])
        start = pd.Timestamp(f"{partition.month}-01")
        pickups = frame["lpep_pickup_datetime"]
        in_month = (pickups >= start) & (pickups < start + pd.offsets.MonthBegin(1))
        total += int((in_month & frame["PULocationID"].isin(manhattan)).sum())
    return total


def key(partition: Partition) -> str:
    return f"{partition.source} {partition.month}"


@pytest.fixture(scope="module")
def templates(store):
    """Two prefixes to copy cases from: green 2023-12 ingested, and 2023-12 + 2024-01 ingested."""
    dec = use_prefix("template-dec")
    drop(dec, DEC, TLC_GREEN / "green_tripdata_2023-12.parquet")
    for step in INGEST_STEPS:
        finish(step, DEC.source, DEC.month)
    both = use_prefix("template-dec-jan")
    copy_prefix(dec, both)
    drop(both, JAN, TLC_GREEN / "green_tripdata_2024-01.parquet")
    for step in INGEST_STEPS:
        finish(step, JAN.source, JAN.month)
    return {"dec": dec, "both": both}


# --- the drills ---------------------------------------------------------------------------------------


INGEST_POINTS = [
    pytest.param(BIG, "during-upload:*/warehouse/trips/*", id="partition-upload-cut-between-parts"),
    pytest.param(JAN, "after-write:*/raw/green/2024-01/*", id="raw-promoted-partition-not-written"),
    pytest.param(JAN, "before-write:*/warehouse/trips/*/_summary.json", id="partition-written-summary-not"),
    pytest.param(JAN, "before-write:*/warehouse/metrics/hourly_borough/*", id="metrics-partition-upload"),
]


@pytest.mark.parametrize(("partition", "point"), INGEST_POINTS)
def test_server_killed_mid_ingest(store, templates, tmp_path, partition, point):
    paths = use_prefix(f"case-{uuid.uuid4().hex[:8]}")
    copy_prefix(templates["dec"], paths)
    if partition == BIG:
        from taxiflow.local import demo

        file = demo.generate_month(BIG.source, BIG.month, BIG_TRIPS, out_dir=tmp_path / "landing", paths=paths)
    else:
        file = TLC_GREEN / f"green_tripdata_{partition.month}.parquet"
    expected = {key(DEC): month_trips(TLC_GREEN / "green_tripdata_2023-12.parquet", DEC),
                key(partition): month_trips(file, partition)}
    drop(paths, partition, file)

    reader = Reader(store, paths, expected)
    reader.start()
    try:
        killed = drill(store, point, tmp_path / "signals",
                       [(step, partition.source, partition.month) for step in INGEST_STEPS],
                       while_down=reader.saw_outage)
    finally:
        reader.stop()

    assert killed["failed"], f"the kill at {killed['point']} did not fail the task:\n{killed['output'][-2000:]}"
    assert not reader.problems, "\n".join(reader.problems[:20])
    reader.look()  # after the retry: everything there, complete
    assert not reader.problems, "\n".join(reader.problems)
    for table in ("trips", "hourly_borough"):
        for month, count in expected.items():
            assert reader.seen[f"{table} {month} {count}"] > 0, (
                table, month, reader.seen, storage.files_below(paths.root / "warehouse"))


PUBLISH_POINTS = [
    pytest.param("after-write:*/outputs/*.png", id="png-written-csv-not"),
    pytest.param("before-write:*/outputs/*/manifest.json", id="png-and-csv-written-manifest-not"),
    pytest.param("after-write:*/outputs/*/manifest.json", id="manifest-written-old-version-not-deleted"),
]


@pytest.mark.parametrize("point", PUBLISH_POINTS)
def test_server_killed_mid_publish(store, templates, tmp_path, point):
    paths = use_prefix(f"case-{uuid.uuid4().hex[:8]}")
    name = f"manhattan-{uuid.uuid4().hex[:6]}"
    conf = json.dumps({**REPORT_CONF, "name": name})
    copy_prefix(templates["dec"], paths)
    finish("render_report", conf)  # version 1: December only
    before = manhattan_trips([DEC])
    copy_prefix(templates["both"], paths)  # January ingested since
    after = manhattan_trips([DEC, JAN])
    assert before != after

    reader = Reader(store, paths, None, report=name, totals=frozenset({before, after}))
    reader.look()
    assert reader.seen[f"report {before}"] == 1  # version 1, as published
    reader.start()
    try:
        killed = drill(store, point, tmp_path / "signals", [("render_report", conf)], while_down=reader.saw_outage)
    finally:
        reader.stop()

    assert killed["failed"], f"the kill at {killed['point']} did not fail the task:\n{killed['output'][-2000:]}"
    assert not reader.problems, "\n".join(reader.problems[:20])
    from taxiflow.reports.outputs import read_report

    report = read_report(name, paths)
    assert report is not None and int(pd.read_csv(io.BytesIO(report.csv))["num_trips"].sum()) == after
    reader.look_at_report(name)
    assert not reader.problems, "\n".join(reader.problems)
