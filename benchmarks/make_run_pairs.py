"""`make run` start time of two trees, cold and warm, in alternating pairs (issue 20's "cold start got slower").

    flock /tmp/taxiflow-heavy.lock .venv/bin/python benchmarks/make_run_pairs.py OLD_TREE NEW_TREE \
        --pairs 4 --out benchmarks/.work/pairs.jsonl

Each tree needs its own ``make venv``. Per tree and pair: ``make stop`` and what ``make clean`` removes
(a fresh ``.airflow``, no demo data), then ``make run PORT=...`` (cold), ``make stop``, ``make run``
again (warm), ``make stop``. Per run it records, from the command's start: the printed ``UI:`` line,
supervisord spawning the api-server and the api-server's "Application startup complete" (both seen
in the logs, polled every 0.1 s); the CPU seconds of the whole machine, of ``make run`` itself (the
CLI, ``db migrate``, the demo drop) and of the stack (supervisord's session) and its api-server; the
load average; and what of the stack is left after ``make stop`` (by supervisord's session id and
the tree's paths). CPU seconds barely move with the machine's load; wall times do. Not part of
``make bench`` (it needs two trees); figures in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import threading
import time
from pathlib import Path

import psutil

MARKERS = {"api_spawned": ("supervisord.log", "spawned: 'api-server'"),
           "api_startup_complete": ("api-server.log", "Application startup complete")}


def clean(tree: Path) -> None:
    """``make stop``, then what ``make clean`` removes (but not benchmarks/.work)."""
    subprocess.run(["make", "-s", "stop"], cwd=tree, capture_output=True)
    shutil.rmtree(tree / ".airflow", ignore_errors=True)
    data = tree / "data"
    for folder in [data / "raw", data / "warehouse", *(p for p in (data / "landing").glob("*/") if p.is_dir())]:
        shutil.rmtree(folder, ignore_errors=True)
    for pattern in ("*.png", "*.csv"):
        for file in (data / "outputs").glob(pattern):
            file.unlink()


def machine_busy_s() -> float:
    """CPU seconds the whole machine spent busy since boot (``/proc/stat``)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def session_cpu_s(sid: int) -> tuple[float, float]:
    """CPU seconds of every process in supervisord's session (children included), and of its api-server."""
    total = api = 0.0
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if os.getsid(proc.pid) != sid:
                continue
            times = proc.cpu_times()
            total += times.user + times.system + times.children_user + times.children_system
            if "api_server" in " ".join(proc.info["cmdline"] or []).replace("-", "_") and not api:  # its title
                api = sum(sum(p.cpu_times()[:2]) for p in [proc, *proc.children(recursive=True)])
        except (psutil.Error, OSError):
            pass
    return round(total, 1), round(api, 1)


def leftovers(tree: Path, sid: int | None) -> list[str]:
    """Processes of the stack still there: in supervisord's session, or naming the tree's home or venv."""
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        try:
            cmd = " ".join(proc.info["cmdline"] or [])
            if (sid and os.getsid(proc.pid) == sid) or str(tree / ".airflow") in cmd or f"{tree}/.venv/bin" in cmd:
                found.append(f"{proc.pid} {proc.info['status']} {cmd[:100]}")
        except (psutil.Error, OSError):
            pass
    return found


def one_run(tree: Path, port: int, label: str, kind: str) -> dict:
    logs, seen, done = tree / ".airflow" / "process-logs", {}, threading.Event()
    start, busy, ru = time.monotonic(), machine_busy_s(), resource.getrusage(resource.RUSAGE_CHILDREN)

    offsets = {log: (logs / log).stat().st_size if (logs / log).exists() else 0 for log, _ in MARKERS.values()}

    def watch() -> None:  # a warm run appends to the cold run's logs: only what this run wrote counts
        while not done.is_set():
            for key, (log, needle) in MARKERS.items():
                path = logs / log
                if key not in seen and path.exists() and needle in path.read_bytes()[offsets[log]:].decode(
                        errors="replace"):
                    seen[key] = round(time.monotonic() - start, 1)
            time.sleep(0.1)

    threading.Thread(target=watch, daemon=True).start()
    load = Path("/proc/loadavg").read_text().split()[:3]
    proc = subprocess.Popen(["make", "run", f"PORT={port}"], cwd=tree, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    output = []
    for line in proc.stdout:
        output.append(line)
        if "UI:" in line:
            seen["ui"] = round(time.monotonic() - start, 1)
    rc = proc.wait()
    ru_end = resource.getrusage(resource.RUSAGE_CHILDREN)
    time.sleep(0.3)
    done.set()
    pid_file = tree / ".airflow" / "supervisord.pid"
    sid = int(pid_file.read_text().split()[0]) if pid_file.exists() else None
    stack_cpu, api_cpu = session_cpu_s(sid) if sid else (0.0, 0.0)
    result = {"tree": label, "kind": kind, "rc": rc, "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "load_before": load, **seen, "machine_cpu_s": round(machine_busy_s() - busy, 1),
              "make_run_cpu_s": round(ru_end.ru_utime + ru_end.ru_stime - ru.ru_utime - ru.ru_stime, 1),
              "stack_cpu_s": stack_cpu, "api_cpu_s": api_cpu}
    subprocess.run(["make", "-s", "stop"], cwd=tree, capture_output=True)
    result["left_when_stop_returned"] = leftovers(tree, sid)
    time.sleep(2)
    result["left_2s_after_stop"] = leftovers(tree, sid)
    if rc:
        result["output_tail"] = "".join(output[-5:])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old", type=Path)
    parser.add_argument("new", type=Path)
    parser.add_argument("--pairs", type=int, default=4)
    parser.add_argument("--port", type=int, default=18390, help="old tree's; the new tree's is one more")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/.work/make_run_pairs.jsonl"))
    args = parser.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    trees = {"old": (args.old.resolve(), args.port), "new": (args.new.resolve(), args.port + 1)}
    for pair in range(args.pairs):
        for label in ("old", "new") if pair % 2 == 0 else ("new", "old"):  # alternate who goes first
            tree, port = trees[label]
            clean(tree)
            for kind in ("cold", "warm"):
                row = {"pair": pair + 1, **one_run(tree, port, label, kind)}
                print(json.dumps(row), flush=True)
                with args.out.open("a") as out:
                    out.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
