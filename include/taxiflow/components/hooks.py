"""``TlcHook``: download NYC TLC's files safely (``TlcPublishedSensor`` asks whether a month is out).

The base URL comes from the Airflow connection ``nyc_tlc`` (``AIRFLOW_CONN_NYC_TLC=http://host:port``,
TLC's public host in production); a missing connection is an error naming it. A download streams into a local file
(``files.replacing``: a hidden ``.<name>.<random>.part`` beside its destination on disk, a temporary
folder's file for a bucket), is checked against ``Content-Length``, and only when complete is it
renamed to its final name on disk or uploaded as one object to the bucket: readers never see half a file.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import attrs
import requests
import tenacity
from airflow.providers.http.hooks.http import HttpHook
from airflow.sdk import Connection
from airflow.sdk.exceptions import AirflowNotFoundException

from taxiflow.data import files, storage
from taxiflow.data.storage import DataPath
from taxiflow.data.tlc import (
    PART_SUFFIX,
    TLC_CONN_ID,
    ZONE_TABLE_ENDPOINT,
    is_stale,
    missing_connection_message,
    trip_endpoint,
    trip_file_name,
)

# Errors that a new attempt may cure: the network, a cut-off body, a busy server.
_TRANSIENT_ERRORS = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
)


@dataclass(frozen=True)
class Fetched:
    """One complete download: where it is, its size and its sha256 (computed while it streamed)."""

    path: DataPath
    size: int
    sha256: str

    def facts(self) -> dict[str, Any]:
        """The file's facts as ``lineage.tagged_facts`` gives them, taken while it streamed in.

        ``etag`` is None: the upload inside ``files.replacing`` does not hand its ETag back, so
        ``storage.copy_file`` given these facts still hashes what it copies.
        """
        return {"name": self.path.name, "bytes": self.size, "sha256": self.sha256, "etag": None}


class TlcError(Exception):
    """TLC answered in a way the hook cannot use."""


class TlcNotPublishedError(TlcError):
    """The requested file is not (yet) published: TLC answered 403 or 404."""


class TlcTransientError(TlcError):
    """A failure worth another attempt: a 5xx answer or a body shorter than announced."""


class TlcHook(HttpHook):
    """HTTP access to TLC's trip-record files, with one reused session and retried downloads.

    :param tlc_conn_id: Airflow connection holding the base URL (default ``nyc_tlc``).
    :param max_attempts: attempts per request before giving up (each download restarts from byte 0).
    :param retry_wait_seconds: first wait between attempts; doubles each time, capped at 60 s.
    :param timeout: ``(connect, read)`` timeouts in seconds for every request.
    :param chunk_size: bytes read and written per step while streaming a download.
    """

    conn_name_attr = "tlc_conn_id"
    default_conn_name = TLC_CONN_ID
    conn_type = "http"
    hook_name = "NYC TLC trip records"

    def __init__(
        self,
        tlc_conn_id: str = TLC_CONN_ID,
        *,
        max_attempts: int = 3,
        retry_wait_seconds: float = 2.0,
        timeout: tuple[float, float] = (10.0, 60.0),
        chunk_size: int = 1 << 20,
        **kwargs: Any,
    ) -> None:
        super().__init__(method="GET", http_conn_id=tlc_conn_id, **kwargs)
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {max_attempts!r}")
        self.tlc_conn_id = tlc_conn_id
        self.max_attempts = max_attempts
        self.retry_wait_seconds = retry_wait_seconds
        self.timeout = timeout
        self.chunk_size = chunk_size
        self._session: requests.Session | None = None

    # --- connection ------------------------------------------------------------------------------

    @classmethod
    def get_connection(cls, conn_id: str) -> Connection:
        """The configured connection; AirflowNotFoundException naming ``conn_id`` and how to define it.

        A URI like ``https://host`` parses as conn type "https" with no schema, which HttpHook would
        turn into a plain http base URL: the connection handed on names the scheme the user wrote.
        """
        try:
            connection = super().get_connection(conn_id)
        except AirflowNotFoundException as err:
            raise AirflowNotFoundException(missing_connection_message(conn_id)) from err
        if (connection.conn_type or "").lower() == "https" and not connection.schema:
            connection = attrs.evolve(connection, schema="https")
        return connection

    @property
    def session(self) -> requests.Session:
        """One session per hook, so keep-alive connections are reused across requests."""
        if self._session is None:
            # identity: Content-Length must be the size of the bytes we store, not of a gzip body.
            self._session = self.get_conn(headers={"Accept-Encoding": "identity"})
        return self._session

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None

    def __enter__(self) -> TlcHook:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def url_for(self, endpoint: str) -> str:
        """The full URL of ``endpoint`` below the connection's base URL."""
        _ = self.session  # opening the session reads the connection and sets base_url
        return self.url_from_endpoint(endpoint)

    def _retrying(self) -> tenacity.Retrying:
        return tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.max_attempts),
            wait=tenacity.wait_exponential(multiplier=self.retry_wait_seconds, max=60),
            retry=tenacity.retry_if_exception_type((*_TRANSIENT_ERRORS, TlcTransientError)),
            before_sleep=self._log_retry,
            reraise=True,
        )

    def _log_retry(self, state: tenacity.RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        self.log.warning(
            "Attempt %d/%d failed (%s); retrying in %.1f s",
            state.attempt_number,
            self.max_attempts,
            error,
            state.next_action.sleep if state.next_action else 0.0,
        )

    # --- downloads -------------------------------------------------------------------------------

    def download(self, source: str, month: str, dest_dir: DataPath) -> DataPath:
        """Download one month's trip file into ``dest_dir`` (a local folder or a bucket prefix); its path."""
        return self.download_month(source, month, dest_dir).path

    def download_month(self, source: str, month: str, dest_dir: DataPath) -> Fetched:
        """Download one month's trip file into ``dest_dir``; its path, size and sha256."""
        return self.fetch_file(trip_endpoint(source, month), dest_dir / trip_file_name(source, month))

    def download_zone_table(self, dest: DataPath, max_age_days: float = 30) -> DataPath:
        """Refresh the zone table at ``dest`` when it is missing or older than ``max_age_days``."""
        if not is_stale(dest, max_age_days):
            self.log.info("Zone table %s is younger than %s days; keeping it", dest, max_age_days)
            return dest
        # Every source's download task may refresh it at the same moment: each gets its own temp file.
        return self.fetch(ZONE_TABLE_ENDPOINT, dest)

    def fetch(self, endpoint: str, dest: DataPath) -> DataPath:
        """GET ``endpoint`` into ``dest`` atomically (see ``fetch_file``); returns ``dest``."""
        return self.fetch_file(endpoint, dest).path

    def fetch_file(self, endpoint: str, dest: DataPath) -> Fetched:
        """GET ``endpoint`` into ``dest`` atomically, retrying transient failures from scratch.

        The body goes to a hidden ``.<name>.<random>.part`` file (``files.replacing``): beside
        ``dest`` and renamed when complete on disk; a local temporary file uploaded as one object
        when complete in a bucket. Raises ``TlcNotPublishedError`` on 403/404. On any failure the
        partial file is removed and an existing ``dest`` is left untouched.
        """
        url = self.url_for(endpoint)
        with files.replacing(dest, suffix=PART_SUFFIX) as part:
            for attempt in self._retrying():
                with attempt:
                    size, sha256 = self._stream(url, part)
        self.log.info("Downloaded %s -> %s (%d bytes, sha256 %s)", url, storage.url(dest), size, sha256)
        return Fetched(dest, size, sha256)

    def _stream(self, url: str, part: Path) -> tuple[int, str]:
        """One attempt: write the whole body to ``part`` (truncating it) and check its size."""
        digest = hashlib.sha256()
        written = 0
        with self.session.get(url, stream=True, timeout=self.timeout) as response:
            status = response.status_code
            if status in (403, 404):
                raise TlcNotPublishedError(f"GET {url} answered {status}: not published")
            if status >= 500:
                raise TlcTransientError(f"GET {url} answered {status} {response.reason}")
            if status != 200:
                raise TlcError(f"GET {url} answered {status} {response.reason}; expected 200")
            announced = response.headers.get("Content-Length")
            expected = int(announced) if announced is not None else None
            with open(part, "wb") as out:
                for chunk in response.iter_content(chunk_size=self.chunk_size):
                    out.write(chunk)
                    digest.update(chunk)
                    written += len(chunk)
                out.flush()
                os.fsync(out.fileno())
        if expected is not None and written != expected:
            raise TlcTransientError(f"GET {url} delivered {written} of {expected} bytes")
        if expected is None:
            self.log.warning("GET %s sent no Content-Length; size %d not verified", url, written)
        return written, digest.hexdigest()
