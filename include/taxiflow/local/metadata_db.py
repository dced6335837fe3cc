"""The embedded metadata database: the ``initdb`` and ``postgres`` of the pinned ``pgserver`` wheel, not
its Python API (its traps: docs/operations.md). A supervisord program on 127.0.0.1 with a generated
password, as ``nobody`` when we are root."""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from taxiflow.local.leftovers import cluster_processes

DB_NAME = "airflow"
DB_USER = "airflow"
UNPRIVILEGED_USER = "nobody"
SERVER_SETTINGS = {"listen_addresses": "127.0.0.1", "unix_socket_directories": "", "dynamic_shared_memory_type": "mmap",
                   "max_connections": "200", "shared_buffers": "64MB", "fsync": "on", "logging_collector": "off"}


def pg_bin_dir() -> Path:
    """The folder holding the wheel's ``initdb``, ``postgres`` and ``pg_ctl``."""
    import importlib.util

    spec = importlib.util.find_spec("pgserver")  # not imported: its __init__ sets up things we do not use
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the pgserver wheel is not installed: run `make venv` (it is in requirements.txt)")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def server_account() -> pwd.struct_passwd | None:  # as root, the server runs as nobody
    return pwd.getpwnam(UNPRIVILEGED_USER) if os.geteuid() == 0 else None


@dataclass
class EmbeddedPostgres:
    """One PostgreSQL cluster in ``<root>/data``, served on 127.0.0.1:``port``."""

    root: Path
    port: int
    start_timeout: float = 300

    def __post_init__(self) -> None:
        self.data_dir, self.password_file = self.root / "data", self.root / "password"
        self.pid_file = self.data_dir / "postmaster.pid"

    def password(self) -> str:
        return self.password_file.read_text().strip()

    def url(self) -> str:  # the SQLAlchemy URL Airflow connects with
        return f"postgresql+psycopg2://{DB_USER}:{self.password()}@127.0.0.1:{self.port}/{DB_NAME}"

    def demote(self) -> None:  # preexec_fn: become the server's account
        if account := server_account():
            os.setgroups([])
            os.setgid(account.pw_gid)
            os.setuid(account.pw_uid)

    def _give_to_server(self, path: Path) -> None:
        if account := server_account():
            os.chown(path, account.pw_uid, account.pw_gid)

    def init(self) -> None:
        """``initdb`` once: superuser ``airflow`` with a generated password, database ``airflow``."""
        if (self.data_dir / "PG_VERSION").exists():
            return
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o711)  # the server's account may enter, not list
        if not self.password_file.exists():
            self.password_file.touch(mode=0o600)
            self.password_file.write_text(secrets.token_urlsafe(24))
        shutil.rmtree(self.data_dir, ignore_errors=True)
        self.data_dir.mkdir(mode=0o700)
        self._give_to_server(self.data_dir)
        pwfile = self.root / ".initdb-password"  # 0600, owned by the server's account
        pwfile.touch(mode=0o600)
        pwfile.write_text(self.password())
        self._give_to_server(pwfile)
        try:
            subprocess.run(
                [str(pg_bin_dir() / "initdb"), "-D", str(self.data_dir), "-U", DB_USER, f"--pwfile={pwfile}",
                 "--auth=scram-sha-256", "--encoding=UTF8", "--locale=C",
                 "-c", "dynamic_shared_memory_type=mmap"],
                check=True, capture_output=True, text=True, preexec_fn=self.demote, cwd=self.root,
            )
        except subprocess.CalledProcessError as err:
            raise RuntimeError(f"initdb failed in {self.data_dir}:\n{err.stdout}\n{err.stderr}") from None
        finally:
            pwfile.unlink(missing_ok=True)

    def command(self) -> list[str]:  # the foreground ``postgres`` command line
        settings = {**SERVER_SETTINGS, "port": str(self.port)}
        return [str(pg_bin_dir() / "postgres"), "-D", str(self.data_dir),
                *(arg for key, value in settings.items() for arg in ("-c", f"{key}={value}"))]

    def remove_stale_pid_file(self) -> bool:
        """Delete ``postmaster.pid`` unless it names a live server of this data folder; True if removed.
        After a SIGKILL it names a PID that may by now be any process's, and PostgreSQL would refuse
        to start ("lock file already exists")."""
        try:
            pid = int(self.pid_file.read_text().split()[0])
        except FileNotFoundError:
            return False
        except (OSError, ValueError, IndexError):
            pid = 0
        if pid and pid in cluster_processes(self.data_dir):
            return False
        self.pid_file.unlink(missing_ok=True)
        return True

    def serve(self) -> None:
        """Remove a stale ``postmaster.pid``, then become the server (``exec postgres``) as its
        account (``nobody`` when we are root: it may not run this interpreter, under /root)."""
        self.remove_stale_pid_file()
        command = self.command()
        self.demote()
        os.execv(command[0], command)

    def serve_command(self) -> list[str]:  # what supervisord runs: serve() in a fresh interpreter
        return [sys.executable, "-m", "taxiflow.local.metadata_db", "serve", str(self.root), str(self.port)]

    def wait_ready(self, failed: Callable[[], str | None] = lambda: None) -> None:
        """Wait until the server accepts a login (crash recovery included), up to ``start_timeout``,
        then create the database ``airflow`` if it is not there yet (a fresh cluster)."""
        import psycopg2  # type: ignore[import-untyped]  # no stubs pinned; only connect() is used

        deadline = time.monotonic() + self.start_timeout
        while (why := failed()) is None:
            try:
                conn = psycopg2.connect(host="127.0.0.1", port=self.port, user=DB_USER, password=self.password(),
                                        dbname="postgres", connect_timeout=3)
            except psycopg2.OperationalError as err:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"postgres on 127.0.0.1:{self.port} not ready after {self.start_timeout}s: "
                                       f"{str(err).strip()}") from None
                time.sleep(0.5)
                continue
            conn.autocommit = True
            with contextlib.closing(conn), conn.cursor() as cur:
                cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DB_NAME,))
                if cur.fetchone() is None:
                    cur.execute(f'CREATE DATABASE "{DB_NAME}"')  # fixed identifier, not user input
            return
        raise RuntimeError(f"postgres on 127.0.0.1:{self.port} did not start: {why}")


if __name__ == "__main__" and sys.argv[1:2] == ["serve"]:
    EmbeddedPostgres(Path(sys.argv[2]), port=int(sys.argv[3])).serve()
