"""A real HTTP server on loopback that serves files under NYC TLC's URL layout, for tests.

``/trip-data/<source>_tripdata_<YYYY-MM>.parquet`` (yellow, green, fhv, fhvhv) and
``/misc/taxi_zone_lookup.csv`` map to real
files on disk; anything else answers 404, as TLC's host does for unpublished months. HEAD and GET
send ``Content-Length``; connections are kept alive (HTTP/1.1). Failures can be injected:

- ``drop_first[path] = n``: the first ``n`` GETs of ``path`` send the headers and half the body,
  then close the connection (a transfer broken mid-body);
- ``status_for[path] = code``: answer ``code`` with an empty body for every request of ``path``.

Every request is recorded in ``requests`` as ``(method, path, status, client_port)``.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tests.support.loopback import LoopbackServer


class TlcServer(LoopbackServer):
    def __init__(self, files: dict[str, Path], host: str = "127.0.0.1") -> None:
        """Serve ``files`` on ``host`` (loopback; the compose tier uses Docker's host-side bridge)."""
        self.files = dict(files)
        self.drop_first: dict[str, int] = {}
        self.status_for: dict[str, int] = {}
        self.requests: list[tuple[str, str, int, int]] = []
        self._lock = threading.Lock()
        super().__init__(ThreadingHTTPServer((host, 0), _handler_for(self)))

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def count(self, method: str, path: str) -> int:
        with self._lock:
            return sum(1 for m, p, _, _ in self.requests if m == method and p == path)

    def _record(self, method: str, path: str, status: int, port: int) -> None:
        with self._lock:
            self.requests.append((method, path, status, port))

    def _take_drop(self, path: str) -> bool:
        with self._lock:
            left = self.drop_first.get(path, 0)
            if left > 0:
                self.drop_first[path] = left - 1
                return True
            return False


def _handler_for(server: TlcServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_HEAD(self) -> None:
            self._answer(send_body=False)

        def do_GET(self) -> None:
            self._answer(send_body=True)

        def _answer(self, send_body: bool) -> None:
            path = self.path.split("?", 1)[0]
            port = self.client_address[1]
            forced = server.status_for.get(path)
            source = server.files.get(path)
            if forced is not None or source is None:
                status = forced if forced is not None else 404
                server._record(self.command, path, status, port)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return

            body = source.read_bytes()
            server._record(self.command, path, 200, port)
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if not send_body:
                return
            if server._take_drop(path):
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.connection.shutdown(socket.SHUT_RDWR)
                return
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # keep test output quiet
            pass

    return Handler


def tlc_layout(samples: Path) -> dict[str, Path]:
    """URL path -> file for the TLC samples in ``tests/data/tlc``: the zone table and every
    ``<source>_tripdata_<YYYY-MM>.parquet`` (any source) in its sub-folders, under TLC's names."""
    files = {"/misc/taxi_zone_lookup.csv": samples / "taxi_zone_lookup.csv"}
    for parquet in sorted(samples.glob("*/*_tripdata_*.parquet")):
        files[f"/trip-data/{parquet.name}"] = parquet
    return files
