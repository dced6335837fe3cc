"""The embedded PostgreSQL (pgserver's wheel, driven by taxiflow.local.metadata_db) and its known traps."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
import psycopg2
import pytest

from taxiflow.local.leftovers import cluster_processes
from taxiflow.local.metadata_db import EmbeddedPostgres
from taxiflow.local.ports import free_port


def start(db: EmbeddedPostgres, log: Path) -> subprocess.Popen:
    """What supervisord does with the database program: run its command as the server's account."""
    with open(log, "ab") as out:
        return subprocess.Popen(db.serve_command(), stdout=out, stderr=subprocess.STDOUT, cwd=db.root,
                                start_new_session=True)


def end(db: EmbeddedPostgres, proc: subprocess.Popen | None = None, timeout: float = 30) -> None:
    """PostgreSQL's fast shutdown (SIGINT), then SIGKILL what is left of the cluster."""
    if proc is not None and proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=timeout)
    deadline = time.monotonic() + timeout
    while cluster_processes(db.data_dir) and time.monotonic() < deadline:
        time.sleep(0.2)
    for pid in cluster_processes(db.data_dir):
        with contextlib.suppress(ProcessLookupError):  # it may leave between the listing and the kill
            os.kill(pid, signal.SIGKILL)


@pytest.fixture
def db_root():
    """A folder the server's account can enter (pytest's tmp folders are 0700 root-only)."""
    root = Path(tempfile.mkdtemp(prefix="taxiflow-pg-"))
    root.chmod(0o711)
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def server(db_root):
    db = EmbeddedPostgres(db_root / "postgres", port=free_port(), start_timeout=120)
    db.init()
    procs = []

    def start_and_wait():
        proc = start(db, db_root / "postgres.log")
        procs.append(proc)
        db.wait_ready(lambda: (proc.poll() is not None and f"exited {proc.returncode}") or None)
        return proc

    db.start_and_wait = start_and_wait  # type: ignore[attr-defined]
    yield db
    # The live server first (the last one started): ending an earlier, killed one first would wait
    # out its timeout for the live server's processes, then SIGKILL them.
    for proc in reversed(procs):
        end(db, proc, timeout=10)


def query(db: EmbeddedPostgres, sql: str, *params):
    conn = psycopg2.connect(host="127.0.0.1", port=db.port, user="airflow", password=db.password(), dbname="airflow")
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall() if cur.description else None
    finally:
        conn.close()


def test_server_listens_on_loopback_with_a_password_kept_0600(server):
    server.start_and_wait()
    assert query(server, "select 1") == [[1]] or query(server, "select 1") == [(1,)]
    assert oct(server.password_file.stat().st_mode & 0o777) == "0o600"
    assert query(server, "show listen_addresses") == [("127.0.0.1",)]
    with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
        psycopg2.connect(host="127.0.0.1", port=server.port, user="airflow", password="wrong", dbname="airflow")


@pytest.mark.skipif(os.geteuid() != 0, reason="only as root does the server need another account")
def test_as_root_the_server_runs_as_nobody_and_no_user_is_created(server):
    users_before = Path("/etc/passwd").read_text()
    postmaster = server.start_and_wait()
    nobody = pwd.getpwnam("nobody")
    uids = set()
    for pid in cluster_processes(server.data_dir):
        with contextlib.suppress(psutil.NoSuchProcess):  # a backend may exit between the listing and this
            uids.add(psutil.Process(pid).uids().effective)
    assert psutil.Process(postmaster.pid).uids().effective == nobody.pw_uid  # serve exec'd the postmaster
    assert uids == {nobody.pw_uid}
    assert server.data_dir.stat().st_uid == nobody.pw_uid
    assert server.password_file.stat().st_uid == 0  # the password stays root's
    assert Path("/etc/passwd").read_text() == users_before


def test_crash_recovery_after_sigkill_keeps_committed_data(server):
    proc = server.start_and_wait()
    query(server, "create table kept (n int)")
    query(server, "insert into kept select generate_series(1, 50000)")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    end(server)  # children leave on their own once the postmaster is gone
    assert server.pid_file.exists(), "a SIGKILLed postmaster leaves its postmaster.pid"
    server.start_and_wait()
    assert query(server, "select count(*) from kept") == [(50000,)]
    assert "database system was interrupted" in (server.root.parent / "postgres.log").read_text()


def test_a_stale_postmaster_pid_naming_a_live_process_is_removed(server):
    proc = server.start_and_wait()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    end(server)
    # the dead postmaster's PID, reused by another process of the server's account
    squatter = subprocess.Popen(["sleep", "60"], preexec_fn=server.demote)
    try:
        lines = server.pid_file.read_text().splitlines()
        server.pid_file.write_text("\n".join([str(squatter.pid), *lines[1:]]) + "\n")
        with open(server.root.parent / "refused.log", "wb") as log:
            refused = subprocess.Popen(server.command(), stdout=log, stderr=subprocess.STDOUT,
                                       preexec_fn=server.demote, cwd=server.root)
        assert refused.wait(timeout=60) != 0  # the trap is real: PostgreSQL alone refuses to start
        assert "lock file" in (server.root.parent / "refused.log").read_text()
        server.start_and_wait()  # serve removes the stale file first
        assert not server.remove_stale_pid_file()  # and keeps the live server's
        assert query(server, "select 1") == [(1,)]
    finally:
        squatter.kill()
        squatter.wait()


def test_readiness_is_waited_for_longer_than_pgservers_10_seconds(db_root):
    db = EmbeddedPostgres(db_root / "postgres", port=free_port(), start_timeout=120)
    db.init()
    started: list = []

    def start_late():
        time.sleep(12)  # as long as a slow crash recovery: pgserver would have given up
        started.append(start(db, db_root / "late.log"))

    thread = threading.Thread(target=start_late)
    thread.start()
    try:
        db.wait_ready()
        assert query(db, "select 1") == [(1,)]
    finally:
        thread.join()
        end(db, started[0] if started else None, timeout=10)


SHM_SCRIPT = """
import sys
from pathlib import Path
import psycopg2
from taxiflow.local.metadata_db import EmbeddedPostgres
import signal, subprocess
from taxiflow.local.ports import free_port
db = EmbeddedPostgres(Path(sys.argv[1]), port=free_port(), start_timeout=60)
db.init()
proc = subprocess.Popen(db.serve_command(), cwd=db.root)
try:
    db.wait_ready(lambda: proc.poll() is not None and "exited" or None)
    conn = psycopg2.connect(host="127.0.0.1", port=db.port, user="airflow", password=db.password(), dbname="airflow")
    cur = conn.cursor()
    for sql in ("set debug_parallel_query = on", "set parallel_setup_cost = 0", "set parallel_tuple_cost = 0",
                "set min_parallel_table_scan_size = 0",
                "create table t as select g, md5(g::text) m from generate_series(1, 100000) g", "analyze t"):
        cur.execute(sql)
    cur.execute("explain analyze select count(*) from t")
    plan = " ".join(row[0] for row in cur.fetchall())
    cur.execute("select count(*) from t")
    launched = "Workers Launched: 2" in plan or "Workers Launched: 1" in plan
    print("workers launched" if launched else plan, cur.fetchone()[0])
finally:
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=30)
"""


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"),
                    reason="needs root and unshare for a tiny /dev/shm")
def test_a_64k_dev_shm_does_not_stop_initdb_the_server_or_parallel_queries(db_root):
    script = db_root / "shm.py"
    script.write_text(SHM_SCRIPT)
    result = subprocess.run(
        ["unshare", "-m", "sh", "-c",
         f"mount -t tmpfs -o size=64k tmpfs /dev/shm && exec {sys.executable} {script} {db_root / 'postgres'}"],
        capture_output=True, text=True, timeout=180,
    )
    if result.returncode != 0 and "mount" in result.stderr and "permission" in result.stderr.lower():
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr}")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "workers launched 100000" in result.stdout
