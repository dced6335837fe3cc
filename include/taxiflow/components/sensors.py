"""``TlcPublishedSensor``: wait until NYC TLC publishes a month's trip file (the http provider's HttpSensor)."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.http.sensors.http import HttpSensor
from airflow.sdk.exceptions import AirflowFailException, AirflowNotFoundException

from taxiflow.data.tlc import TLC_CONN_ID, missing_connection_message, trip_endpoint

if TYPE_CHECKING:
    from airflow.sdk import Context
    from requests import Response

# TLC answers 403 (CloudFront) or 404 for a month it has not published yet: keep waiting.
NOT_PUBLISHED_YET = ["403", "404"]


def is_published(response: Response) -> bool:
    """``response_check`` of the HEAD request: the file is there and complete (200)."""
    return response.status_code == 200


class TlcPublishedSensor(HttpSensor):
    """``HttpSensor`` that succeeds once ``<base>/trip-data/<source>_tripdata_<month>.parquet`` answers HEAD 200.

    TLC publishes a month roughly two months after it ends, so the default is ``reschedule``
    mode (no worker slot held between pokes). 403/404 means "not yet": the sensor keeps waiting;
    any other error fails the poke (and the task retries). A bad source or month fails at once.

    :param source: ``yellow`` or ``green`` (templated).
    :param month: ``YYYY-MM`` (templated).
    :param tlc_conn_id: the HTTP connection holding TLC's base URL (``nyc_tlc``); it must exist.

    The HEAD goes through the provider's ``HttpHook``, which reads a URI such as
    ``https://d37ci6vzurychx.cloudfront.net`` (conn type ``https``, no schema) as plain http
    (redirects are followed); ``TlcHook``, which downloads, keeps https. For https on both, define
    the connection as JSON:
    ``{"conn_type": "http", "host": "https://d37ci6vzurychx.cloudfront.net"}``.
    """

    template_fields = (*HttpSensor.template_fields, "source", "month")
    ui_color = "#f7e99c"

    def __init__(
        self,
        *,
        source: str,
        month: str,
        tlc_conn_id: str = TLC_CONN_ID,
        mode: str = "reschedule",
        poke_interval: timedelta | float = timedelta(hours=6),
        **kwargs: Any,
    ) -> None:
        super().__init__(
            endpoint="",  # set from source and month once they are rendered, in poke()
            http_conn_id=tlc_conn_id,
            method="HEAD",
            response_error_codes_allowlist=NOT_PUBLISHED_YET,
            response_check=is_published,
            mode=mode,
            poke_interval=poke_interval,
            **kwargs,
        )
        self.source = source
        self.month = month

    def poke(self, context: Context) -> bool:
        try:
            self.endpoint = trip_endpoint(self.source, self.month)
        except ValueError as err:  # a bad source or month will never be published: no retries
            raise AirflowFailException(str(err)) from err
        try:
            return bool(super().poke(context))
        except AirflowNotFoundException as err:
            raise AirflowNotFoundException(missing_connection_message(self.http_conn_id)) from err
