"""A webhook receiver on loopback for tests: records every JSON body POSTed to it.

``with WebhookReceiver() as hook:`` listens on a free port of 127.0.0.1; ``hook.url`` is its
address, ``hook.bodies`` the decoded bodies in arrival order, and ``hook.wait_for(match, timeout)``
blocks until a body for which ``match(body)`` is true has arrived and returns it (a TimeoutError
otherwise).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.support.loopback import LoopbackServer


class WebhookReceiver(LoopbackServer):
    def __init__(self, path: str = "/hooks/taxiflow") -> None:
        self.path = path
        self.bodies: list[Any] = []
        self.headers: list[dict[str, str]] = []
        self._arrived = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                status = 204 if self.path == receiver.path else 404
                self.send_response(status)
                self.end_headers()
                if status == 204:
                    with receiver._arrived:
                        receiver.bodies.append(json.loads(raw))
                        receiver.headers.append(dict(self.headers))
                        receiver._arrived.notify_all()

            def log_message(self, *args: object) -> None:
                pass

        super().__init__(ThreadingHTTPServer(("127.0.0.1", 0), Handler))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path}"

    def wait_for(self, match: Callable[[Any], bool], timeout: float) -> Any:
        end = time.monotonic() + timeout
        with self._arrived:
            while True:
                found = [body for body in self.bodies if match(body)]
                if found:
                    return found[0]
                left = end - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no matching webhook call within {timeout:g} s; got {self.bodies}")
                self._arrived.wait(left)
