"""What the profilers share (``profile_ingest``, ``profile_report``): the two backends on a work
folder (``backends``: SeaweedFS on the ports it had there before), the helpers their child
processes put before their own code (``memory()``, step timers ``marked`` and a count of every s3fs
request by the phase it ran in, ``count_s3_calls``, in ``times`` and ``calls``), the run of one child
pinned like ``bench_storage``'s, and the printing of what it measured."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Generator
from contextlib import contextmanager
from pathlib import Path

import bench_storage

from taxiflow.config import DATA_DIR_ENV

CHILD_HELPERS = r"""
import threading, time

def memory():
    fields = dict(line.split(":", 1) for line in open("/proc/self/status"))
    return {key: int(fields[key].split()[0]) / 1024 for key in ("VmRSS", "VmHWM")}

phase = ["other"]
times = {}
calls = {}

def marked(module, name, label):
    function = getattr(module, name)
    def wrapper(*args, **kwargs):
        outer = phase[0]
        phase[0] = label
        started = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            times[label] = times.get(label, 0.0) + time.perf_counter() - started
            phase[0] = outer
    setattr(module, name, wrapper)

def count_s3_calls(fs):
    if fs is None:
        return
    import s3fs.core
    original = s3fs.core.S3FileSystem._call_s3
    lock = threading.Lock()
    async def counted(self, method, *args, **kwargs):
        started = time.perf_counter()
        try:
            return await original(self, method, *args, **kwargs)
        finally:
            with lock:
                entry = calls.setdefault(phase[0], {}).setdefault(method, [0, 0.0])
                entry[0] += 1
                entry[1] += time.perf_counter() - started
    s3fs.core.S3FileSystem._call_s3 = counted
"""


@contextmanager
def backends(work: Path) -> Generator[dict[str, dict[str, str]], None, None]:
    """Each backend's environment, ``{"local": ..., "s3": ...}``, with its data below ``work``.

    SeaweedFS runs on ``work/seaweedfs`` for the block, on the ports it had last time (kept in
    ``work/ports.json``): the bucket's data prepared by an earlier run is found again.
    """
    from tests.support.seaweedfs import start_seaweedfs

    work.mkdir(parents=True, exist_ok=True)
    ports_file = work / "ports.json"
    ports = json.loads(ports_file.read_text()) if ports_file.exists() else None
    server = start_seaweedfs(work / "seaweedfs", bucket="bench", ports=ports)
    try:
        ports_file.write_text(json.dumps(server.ports))
        yield {"local": {DATA_DIR_ENV: str(work / "data")}, "s3": server.env(prefix="data")}
    finally:
        server.stop()


def run_child(child: str, args: list[str], env: dict[str, str]) -> dict:
    """Run one profiler child (``CHILD_HELPERS`` + its code) on the data root of ``env``; its JSON."""
    result = subprocess.run(
        [sys.executable, "-c", child, *args],
        env={**os.environ, **env, "TAXIFLOW_DUCKDB_THREADS": str(bench_storage.CORES)},
        preexec_fn=bench_storage._pin_to_cores, capture_output=True, text=True, check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"profile on {env[DATA_DIR_ENV]} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def show_phases(run: dict, width: int) -> None:
    """Print a child's time per phase, its s3fs calls per phase, and its RSS and peak per step."""
    for label, seconds in sorted(run["phases"].items()):
        print(f"    {label:{width}} {seconds:.3f} s")
    for label, operations in sorted(run["calls"].items()):
        listed = ", ".join(f"{op} {n} ({s:.3f} s)" for op, (n, s) in sorted(operations.items()))
        print(f"    s3 calls in {label}: {listed}")
    print("    RSS / peak MB: " + "; ".join(f"{step} {m['VmRSS']:.0f} / {m['VmHWM']:.0f}" for step, m in run["steps"]))
