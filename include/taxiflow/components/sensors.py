"""``TlcPublishedSensor``: wait until NYC TLC publishes a month's trip file."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator
from airflow.sdk.exceptions import AirflowFailException

from taxiflow.data.tlc import TLC_CONN_ID, trip_file_name

if TYPE_CHECKING:
    from airflow.sdk import Context


class TlcPublishedSensor(BaseSensorOperator):
    """Succeeds once ``<base>/trip-data/<source>_tripdata_<month>.parquet`` answers HEAD 200.

    TLC publishes a month roughly two months after it ends, so the default is ``reschedule``
    mode (no worker slot held between pokes). 403/404 means "not yet": the sensor keeps waiting;
    any other answer fails the poke.

    :param source: ``yellow`` or ``green`` (templated).
    :param month: ``YYYY-MM`` (templated).
    :param tlc_conn_id: connection with the TLC base URL; TLC's public host if undefined.
    """

    template_fields = ("source", "month")
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
        super().__init__(mode=mode, poke_interval=poke_interval, **kwargs)
        self.source = source
        self.month = month
        self.tlc_conn_id = tlc_conn_id

    def poke(self, context: Context) -> bool:
        try:
            trip_file_name(self.source, self.month)
        except ValueError as err:  # a bad source or month will never be published: no retries
            raise AirflowFailException(str(err)) from err

        from taxiflow.components.hooks import TlcHook  # the HTTP stack loads at run time, not at DAG parse time

        with TlcHook(self.tlc_conn_id) as hook:
            return hook.is_published(self.source, self.month)
