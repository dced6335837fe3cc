"""The one way the test servers run: a ``socketserver`` server on a free port, served from a daemon thread.

``with Server(...) as server:`` starts serving; leaving the block shuts it down and closes its socket.
"""

from __future__ import annotations

import socketserver
import threading
from typing import Self


class LoopbackServer:
    """A threaded server bound to ``(host, 0)``; subclasses hand it their request handler class."""

    def __init__(self, server: socketserver.BaseServer) -> None:
        self.server = server
        self.server.daemon_threads = True  # type: ignore[attr-defined]  # a request never holds up the exit
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=type(self).__name__, daemon=True)

    @property
    def host(self) -> str:
        return str(self.server.server_address[0])

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
