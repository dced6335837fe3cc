"""Where a data root points: a local folder, or an S3 prefix reached through an Airflow connection.

``location`` turns what ``TAXIFLOW_DATA_DIR`` (or a trigger's folder) says into a path: a
``pathlib.Path``, or an Airflow ``ObjectStoragePath`` for ``s3://<bucket>/<prefix>``, whose endpoint
and keys come from the connection named by ``TAXIFLOW_STORAGE_CONN_ID`` (default
``taxiflow_storage``; conn type ``aws``, ``endpoint_url`` in its extra for S3-compatible servers).
Its filesystem follows that connection when it changes, and is made without the Amazon provider's
hooks, and DuckDB reads through it (``register``). Airflow, fsspec and s3fs are imported only for an
S3 location: DAG files import ``storage``.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from taxiflow.config import DATA_DIR_ENV, STORAGE_CONN_ENV, STORAGE_CONN_ID_DEFAULT

if TYPE_CHECKING:
    import duckdb
    from airflow.sdk import ObjectStoragePath


def conn_id() -> str:
    return os.environ.get(STORAGE_CONN_ENV) or STORAGE_CONN_ID_DEFAULT


def location(configured: str) -> Path | ObjectStoragePath:
    """A local folder, or ``s3://<bucket>/<prefix>`` reached through the storage connection, as a path."""
    if "://" not in configured:
        return Path(configured).expanduser().resolve()
    from airflow.sdk import ObjectStoragePath  # only for an S3 root: DAG files import this module

    bucket_and_prefix = url_path(configured)
    _follow_connection(conn_id())  # before the path is made: it takes its filesystem from the store
    return ObjectStoragePath(f"s3://{conn_id()}@{bucket_and_prefix}")


def url_path(configured: str) -> str:
    """``bucket/prefix`` of an ``s3://<bucket>/<prefix>`` data root (no connection id in it)."""
    parts = urlsplit(configured)
    if parts.scheme != "s3" or not parts.netloc or "@" in parts.netloc:
        raise ValueError(
            f"{DATA_DIR_ENV} must be a local folder or s3://<bucket>/<prefix>, got {configured!r} "
            f"(the S3 endpoint and keys go in the Airflow connection {conn_id()!r}, not in the URL)"
        )
    return f"{parts.netloc}/{parts.path.strip('/')}".rstrip("/")


# What each connection id's filesystem in this process was made from (a digest of the connection).
_attached: dict[str, str] = {}


def _follow_connection(conn: str) -> None:
    """Make Airflow's filesystem for ``conn`` the one its connection describes now.

    Airflow's ``attach`` keeps one filesystem per connection id for the life of the process, made
    from the connection as it was at first use. A process that outlives a change of the connection
    (a rotated key, a moved endpoint; a test session that starts a second server) would go on
    talking to the old endpoint with the old keys. So the connection is read with every root, and a
    changed one gets a new filesystem (``filesystem``); an unchanged one keeps its filesystem and
    listing cache.
    """
    from airflow.sdk import BaseHook
    from airflow.sdk.io import attach

    try:
        connection = BaseHook.get_connection(conn)
    except Exception:  # not defined: the first use fails, and check_root says why
        return
    digest = hashlib.sha256(connection.get_uri().encode()).hexdigest()
    if _attached.get(conn) == digest:
        return
    attach("s3", conn).fs = filesystem(conn, connection)  # what ObjectStoragePath(s3://<conn>@...) uses
    _attached[conn] = digest


def filesystem(conn: str, connection: Any) -> Any:
    """The s3fs filesystem for an Airflow ``aws`` connection, as the Amazon provider's ``get_fs`` makes it.

    The provider builds it through its ``S3Hook``, which imports boto3 and the provider's hooks
    (7 MB of every task process that touches data, docs/benchmarks.md) for a session that is
    aiobotocore's all the same. This makes the same filesystem from the same parsed connection
    (the provider's ``AwsConnectionWrapper``: keys, session token, region, profile, ``endpoint_url``,
    ``config_kwargs``), and leaves to the provider what only its hook does: assuming a role
    (``role_arn``), a request signer, a proxy.
    """
    from airflow.providers.amazon.aws.utils.connection_wrapper import AwsConnectionWrapper
    from fsspec.asyn import get_loop, sync  # type: ignore[import-untyped]

    wrapper = AwsConnectionWrapper(conn=connection)
    service = wrapper.get_service_config("s3")
    if wrapper.role_arn or service.get("signer") or service.get("proxy-uri"):
        from airflow.sdk.io import get_fs

        return get_fs("s3", conn)
    from aiobotocore.session import get_session  # type: ignore[import-untyped]
    from s3fs import S3FileSystem  # type: ignore[import-untyped]

    from taxiflow.data import botocore_data

    session = get_session()
    session.register_component("data_loader", botocore_data.loader(session.get_config_variable("data_path")))
    options = wrapper.session_kwargs  # as the provider's SessionFactory applies them to its session
    if options.get("profile_name"):
        session.set_config_variable("profile", options["profile_name"])
    if any(options.get(key) for key in ("aws_access_key_id", "aws_secret_access_key", "aws_session_token")):
        session.set_credentials(access_key=options.get("aws_access_key_id"),
                                secret_key=options.get("aws_secret_access_key"), token=options.get("aws_session_token"))
    if options.get("region_name"):
        session.set_config_variable("region", options["region_name"])
    # no keys anywhere botocore looks: anonymous, as get_fs. Asked on fsspec's own I/O loop (as s3fs
    # does), so this works also in a thread that runs an event loop (the triggerer, the api-server).
    anonymous = sync(get_loop(), session.get_credentials) is None
    return S3FileSystem(session=session, config_kwargs=dict(wrapper.extra_config.get("config_kwargs", {})),
                        endpoint_url=wrapper.get_service_endpoint_url("s3"), anon=anonymous)


def register(con: duckdb.DuckDBPyConnection, path: Path | ObjectStoragePath) -> None:
    """Let DuckDB read ``s3://`` through the same filesystem (keys, endpoint) as ``path``; no-op locally."""
    if not isinstance(path, Path):  # an S3 path
        fs = path.fs
        protocols = fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)
        if not set(protocols) & set(con.list_filesystems()):  # a cached connection may have it already
            con.register_filesystem(_exact_reads(fs))


def _exact_reads(fs: Any) -> Any:
    """``fs`` (same endpoint, keys and options) whose files fetch exactly the bytes DuckDB asks for.

    s3fs's default file cache reads 50 MiB ahead of every read. DuckDB reads a parquet file by
    column chunks, in a few MB at scattered offsets, so each of its reads became a GET of up to
    50 MiB: a 58 MB trips file came down as 1.4 GB in 40 GETs, and every open file held a 50 MiB
    buffer (``benchmarks/bench_storage.py``, docs/benchmarks.md). DuckDB plans its own reads, so
    it gets no cache. The copy shares ``fs``'s listing cache: what ``refresh`` forgets, it
    forgets too, and a file a listing already found needs no HEAD to be opened.
    """
    exact = type(fs)(**{**fs.storage_options, "default_cache_type": "none"})
    exact.dircache = fs.dircache
    return exact
