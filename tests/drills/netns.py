"""A second host on this machine for the isolation drill: a network namespace and a private mount.

``isolated_host(root, relayed)`` makes a network namespace with nothing but its own loopback, and
relays into it exactly the host's TCP ports in ``relayed`` (label -> port on the host's 127.0.0.1):
inside, ``127.0.0.1:<port>`` reaches the host's service through two relays joined by a Unix socket
(``relay.py``). There is no link and no route, so nothing else of the host or the network can be
reached, whatever it listens on. (A veth pair would expose every port the host binds to all
interfaces, and this machine has no firewall tool to close them.)

``IsolatedHost.start`` runs a command there in a private mount namespace and its own hostname: a
tmpfs over ``/tmp`` and over each hidden folder (the host's deployment, data and relay sockets live
under ``/tmp``; the project stays visible, wherever it is), and ``/etc/hosts`` naming the host.
At the end every process started is stopped by its process group, and the namespace is deleted
(its mounts go with their last process).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Generator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

RELAY = Path(__file__).with_name("relay.py")


def unavailable_reason() -> str | None:
    """Why this machine cannot run the drill (None if it can): it needs root and iproute2's netns."""
    if os.geteuid() != 0:
        return "needs root (creates a network namespace and mounts)"
    missing = [tool for tool in ("ip", "unshare", "nsenter", "mount") if shutil.which(tool) is None]
    if missing:
        return f"needs {', '.join(missing)} (iproute2, util-linux)"
    if subprocess.run(["ip", "netns", "list"], capture_output=True).returncode != 0:
        return "`ip netns` is not available here"
    return None


def _stop_group(process: subprocess.Popen, timeout: float = 30) -> None:
    """TERM the process group, KILL it if it is still there after ``timeout``; reap the leader."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        try:
            process.wait(timeout)
            deadline = time.monotonic() + 5  # children of the leader leave after it
            while _group_alive(process.pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if not _group_alive(process.pid):
                break
        except subprocess.TimeoutExpired:
            continue


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


@dataclass
class IsolatedHost:
    """The namespace, its relayed ports, and every process started for it (to stop by group)."""

    name: str
    sockets: Path
    relayed: Mapping[str, int]
    processes: list[subprocess.Popen] = field(default_factory=list)

    def _spawn(self, argv: Sequence[str], env: Mapping[str, str] | None = None,
               log: Path | None = None) -> subprocess.Popen:
        """Start ``argv`` in a new process group: with ``log``, its output goes there; without, it
        is a relay, and this returns once it printed ``ready``."""
        with open(log or os.devnull, "ab") as out:
            process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out if log else subprocess.PIPE,
                                       stderr=subprocess.STDOUT, env=dict(env) if env is not None else None,
                                       start_new_session=True)
        self.processes.append(process)
        if log is None and (line := process.stdout.readline()).strip() != b"ready":  # type: ignore[union-attr]
            raise RuntimeError(f"relay {' '.join(argv)} did not start: {line!r}")
        return process

    def start(self, command: Sequence[str], env: Mapping[str, str], hide: Sequence[Path], keep: Path,
              log: Path) -> subprocess.Popen:
        """Run ``command`` inside: this namespace, a private mount, tmpfs over /tmp and ``hide``, the
        hostname ``name``. ``env`` is its whole environment (nothing of the test's is passed on).

        ``keep`` (the project: its interpreter, DAG files and plugins) stays visible even when it is
        below /tmp, as a fresh clone in CI may be: it is opened before the tmpfs covers /tmp and
        bind-mounted back from that descriptor (``--no-canonicalize``: resolved, the path would name the
        empty folder below the tmpfs). ``hide`` is covered after that, so a folder of the
        project can still be hidden."""
        keep = Path(keep)
        below_tmp = keep.is_relative_to("/tmp")
        hidden = "\n".join(f"mount -t tmpfs -o size=1m,mode=0755 tmpfs {shlex.quote(str(path))}"
                           for path in hide if not Path(path).is_relative_to("/tmp") or
                           (below_tmp and Path(path).is_relative_to(keep)))
        kept = shlex.quote(str(keep))
        script = f"""set -e
{f"exec 3<{kept}" if below_tmp else ""}
mount -t tmpfs -o mode=1777,size=2g tmpfs /tmp
{f"mkdir -p {kept} && mount --no-canonicalize --bind /proc/self/fd/3 {kept} && exec 3<&-" if below_tmp else ""}
{hidden}
hostname {shlex.quote(self.name)}
mkdir -p "$HOME"
printf '127.0.0.1 localhost\\n127.0.1.1 %s\\n' {shlex.quote(self.name)} > /tmp/.hosts
mount --bind /tmp/.hosts /etc/hosts
exec "$@"
"""
        return self._spawn(["ip", "netns", "exec", self.name, "unshare", "--mount", "--uts", "--propagation",
                            "private", "--", "sh", "-c", script, self.name, *command], env=env, log=log)

    def probe(self, process: subprocess.Popen, ports: Mapping[str, int], urls: Mapping[str, str],
              paths: Sequence[Path]) -> dict:
        """What ``process`` sees from inside its namespaces (entered with ``nsenter``): per port,
        whether a TCP connection to it opens or the error; per URL, the HTTP status it answers; per
        path, whether it exists; its hostname and network interfaces."""
        argv = ["nsenter", "--target", str(process.pid), "--net", "--mount", "--uts", "--",
                sys.executable, "-c", _PROBE,
                json.dumps({"ports": dict(ports), "urls": dict(urls), "paths": [str(p) for p in paths]})]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=True)
        return json.loads(result.stdout.strip().splitlines()[-1])


# Runs inside the namespace with the project's interpreter: standard library only.
_PROBE = """
import json, socket, sys, urllib.error, urllib.request
asked = json.loads(sys.argv[1])

def connect(address):
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
        return "open"
    except OSError as err:
        return err.strerror or type(err).__name__

def status(url):
    try:
        with urllib.request.urlopen(url, timeout=20) as answer:
            return answer.status
    except urllib.error.HTTPError as err:
        return err.code
    except OSError as err:
        return str(err)

print(json.dumps({
    "ports": {label: connect(address) for label, address in asked["ports"].items()},
    "urls": {label: status(url) for label, url in asked["urls"].items()},
    "paths": {path: __import__("os").path.exists(path) for path in asked["paths"]},
    "hostname": socket.gethostname(),
    "interfaces": [name for _, name in socket.if_nameindex()],
}))
"""


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


@contextmanager
def isolated_host(root: Path, relayed: Mapping[str, int]) -> Generator[IsolatedHost]:
    """A fresh namespace ``tfiso-<hex>`` where ``127.0.0.1:<port>`` reaches the host's own
    ``127.0.0.1:<port>`` for each port in ``relayed`` and nothing else; removed at the end."""
    host = IsolatedHost(name=f"tfiso-{uuid.uuid4().hex[:8]}", sockets=root / "relay-sockets", relayed=relayed)
    host.sockets.mkdir(parents=True, exist_ok=True)
    host.sockets.chmod(0o700)
    _ip("netns", "add", host.name)
    try:
        _ip("-n", host.name, "link", "set", "lo", "up")
        sockets = {label: host.sockets / f"{label}.sock" for label in relayed}
        host._spawn([sys.executable, str(RELAY), *(f"unix:{sockets[label]}=tcp:127.0.0.1:{port}"
                                                   for label, port in relayed.items())])
        host._spawn(["ip", "netns", "exec", host.name, sys.executable, str(RELAY),
                     *(f"tcp:127.0.0.1:{port}=unix:{sockets[label]}" for label, port in relayed.items())])
        yield host
    finally:
        for process in reversed(host.processes):  # the worker first, then the relays
            _stop_group(process)
        subprocess.run(["ip", "netns", "delete", host.name], capture_output=True)
        shutil.rmtree(host.sockets, ignore_errors=True)
    left = [p.pid for p in host.processes if _group_alive(p.pid)]
    assert not left, f"process groups of the isolated host left after stop: {left}"
    assert host.name not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
