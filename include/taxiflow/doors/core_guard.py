"""An ASGI middleware on Airflow's own app (``/api/v2``), registered through a plugin's public
``fastapi_root_middlewares``: two answers Airflow's routes do not give.

* ``POST /api/v2/dags/{dag_id}/dagRuns`` with a ``dag_run_id`` longer than
  :data:`taxiflow.reports.run_ids.MAX_RUN_ID_LENGTH` is refused with 400 naming the limit, before a
  run whose task logs could not be written exists.
* Airflow answers any SQLAlchemy error with 500 ``{"detail": {"reason": "Database error", ...}}``
  (already without the statement or exception text). A busy metadata database (SQLite's "database
  is locked", an exhausted connection pool) is a reason to come back, not a server bug: that answer
  becomes 503 with ``Retry-After``, the same body kept (its lookup id points at the api-server log).

Pure ASGI, no Airflow import; other routes and answers stream through untouched.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from taxiflow.reports.run_ids import run_id_problem

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

TRIGGER_PATH = re.compile(r"/api/v2/dags/[^/]+/dagRuns/?")
RETRY_AFTER_SECONDS = 2
MAX_BODY_BYTES = 1 << 20  # a trigger body larger than this is left to Airflow


def _is_database_error(body: bytes) -> bool:
    try:
        detail = json.loads(body).get("detail")
    except (ValueError, AttributeError):
        return False
    return isinstance(detail, dict) and detail.get("reason") == "Database error"


class CoreApiGuard:
    """The middleware; ``app`` is the rest of Airflow's ASGI stack."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/api/v2/"):
            await self.app(scope, receive, send)
            return
        if scope["method"] == "POST" and TRIGGER_PATH.fullmatch(scope["path"]):
            body, receive = await self._buffer_body(receive)
            problem = self._run_id_problem(body)
            if problem:
                await self._answer(send, 400, {"detail": problem})
                return
        await self.app(scope, receive, self._database_errors_as_503(send))

    @staticmethod
    async def _buffer_body(receive: Receive) -> tuple[bytes, Receive]:
        chunks, more = [], True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return body, replay

    @staticmethod
    def _run_id_problem(body: bytes) -> str | None:
        if len(body) > MAX_BODY_BYTES:
            return None
        try:
            run_id = json.loads(body).get("dag_run_id")
        except (ValueError, AttributeError):
            return None  # Airflow answers a body it cannot read itself
        return run_id_problem(run_id) if isinstance(run_id, str) else None

    @staticmethod
    async def _answer(send: Send, status: int, payload: dict, headers: list | None = None) -> None:
        body = json.dumps(payload).encode()
        await send({"type": "http.response.start", "status": status, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *(headers or [])]})
        await send({"type": "http.response.body", "body": body})

    @staticmethod
    def _database_errors_as_503(send: Send) -> Send:
        held: Message | None = None
        chunks: list[bytes] = []

        async def guarded(message: Message) -> None:
            nonlocal held
            if message["type"] == "http.response.start" and message["status"] == 500:
                held = message
                return
            if held is None or message["type"] != "http.response.body":
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            body = b"".join(chunks)
            start = held
            if _is_database_error(body):
                headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
                headers += [(b"content-length", str(len(body)).encode()),
                            (b"retry-after", str(RETRY_AFTER_SECONDS).encode())]
                start = {**start, "status": 503, "headers": headers}
            await send(start)
            await send({"type": "http.response.body", "body": body})

        return guarded
