"""``python -m taxiflow.data.check_storage``: can this host use taxiflow's data root? One line, exit 0 or 2.

What ``make run`` runs before it starts anything, and what a deployment's init step (docker compose's
``airflow-init``, a Helm hook) runs with the same environment as its Airflow services. With
``TAXIFLOW_DATA_DIR=s3://...`` it reads the connection named by ``TAXIFLOW_STORAGE_CONN_ID``, asks the
bucket for itself, then writes and deletes a probe object at the root. Wrong keys, a missing bucket,
an unreachable endpoint, a missing connection or a malformed URL give one line on stderr naming the
URL, the connection and the endpoint, and exit status 2; never a stack trace.

    $ python -m taxiflow.data.check_storage
    taxiflow: data in s3://taxiflow/data (Airflow connection 'taxiflow_storage', endpoint http://127.0.0.1:8333)
"""

from __future__ import annotations

import os
import sys

from taxiflow.data.storage import DataPath, StorageError, is_remote, root, url

EXIT_UNUSABLE = 2
LOG_LEVEL_ENV = "AIRFLOW__LOGGING__LOGGING_LEVEL"


def check_root(path: DataPath | None = None) -> str:
    """Read and write a probe at the data root; a ``StorageError`` naming URL and connection otherwise."""
    path = root() if path is None else path
    if not is_remote(path):
        path.mkdir(parents=True, exist_ok=True)
        if not os.access(path, os.W_OK):
            raise StorageError(f"the data root {path} is not writable")
        return f"local folder {path}"
    where = f"{url(path)} (Airflow connection {path.conn_id!r}"
    try:
        endpoint = _endpoint(path)
    except StorageError as err:
        raise StorageError(f"cannot use {where}): {err}") from None
    except Exception as err:  # e.g. a malformed connection
        raise StorageError(f"cannot use {where}): {type(err).__name__}: {err}") from None
    where += f", endpoint {endpoint})"
    bucket = path.path.split("/", 1)[0]
    denied = "access denied: check the key and secret (login/password) of the connection"
    try:
        status, code = _bucket_status(path, bucket)
    except Exception as err:
        raise StorageError(f"cannot use {where}: {_describe(err)}") from None
    if code == "NoSuchBucket":
        raise StorageError(f"cannot use {where}: the bucket {bucket!r} does not exist; create it first")
    if status in (401, 403):
        raise StorageError(f"cannot use {where}: {denied}")
    if status != 200:
        raise StorageError(
            f"cannot use {where}: the endpoint answered HTTP {status} "
            f"({code if code and not code.isdigit() else 'no S3 error code'}) to a request "
            f"for the bucket {bucket!r}; is endpoint_url an S3 server?"
        )
    probe = path / ".taxiflow-probe"
    try:
        probe.write_bytes(b"ok")
        probe.fs.rm_file(probe.path)
    except PermissionError:
        raise StorageError(f"cannot use {where}: {denied} (they may not write below {url(path)})") from None
    except Exception as err:
        raise StorageError(f"cannot use {where}: {_describe(err)}") from None
    return where


# How long the start-time check waits for an endpoint that does not answer, unless the connection's
# extra sets its own ``config_kwargs``: a few seconds, not botocore's 60 s per attempt.
CHECK_CLIENT_CONFIG = {"connect_timeout": 5, "read_timeout": 20, "retries": {"max_attempts": 2, "mode": "standard"}}


def _bucket_status(path: DataPath, bucket: str) -> tuple[int, str]:
    """(HTTP status, S3 error code) of listing one key of the bucket: (200, "") when the keys may read it.

    A GET, not a HEAD: its error body carries S3's code, so a missing bucket (``NoSuchBucket``) is
    told apart from a 404 of something that is no S3 server.
    """
    import botocore.exceptions  # type: ignore[import-untyped]
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    hook = S3Hook(aws_conn_id=path.conn_id)
    if hook.conn_config.botocore_config is None:
        hook = S3Hook(aws_conn_id=path.conn_id, config=CHECK_CLIENT_CONFIG)
    client = hook.get_conn()
    try:
        client.list_objects_v2(Bucket=bucket, MaxKeys=1)
    except botocore.exceptions.ClientError as err:
        status = int(err.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 500)
        return status, str(err.response.get("Error", {}).get("Code") or "")
    return 200, ""


def _endpoint(path: DataPath) -> str:
    """The connection's S3 endpoint; raises when the connection is not defined anywhere Airflow looks."""
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    try:
        S3Hook.get_connection(path.conn_id)
    except Exception:  # AirflowNotFoundException: S3Hook would fall back to anonymous access
        raise StorageError(
            f"the connection is not defined: set AIRFLOW_CONN_{path.conn_id.upper()} (conn type aws, "
            f"endpoint_url in its extra for an S3-compatible server) or create it in Airflow"
        ) from None
    hook = S3Hook(aws_conn_id=path.conn_id)
    return hook.conn_config.get_service_endpoint_url(service_name="s3") or "AWS S3 (no endpoint_url)"


def _describe(err: Exception) -> str:
    text = str(err) or type(err).__name__
    lowered = text.lower()
    if "could not connect" in lowered or ("connect" in lowered and "refused" in lowered) or "endpoint" in lowered:
        return f"the endpoint is unreachable ({text})"
    return text


def check() -> str:
    """``check_root`` without Airflow's INFO lines (each connection look-up logs one on stdout).

    Airflow reads its log level once, when it is first imported (here, by an S3 root): if that
    happens in this call, it happens at ERROR; the environment is left as it was.
    """
    quiet = "airflow" not in sys.modules and LOG_LEVEL_ENV not in os.environ
    if quiet:
        os.environ[LOG_LEVEL_ENV] = "ERROR"
    try:
        return check_root()
    finally:
        if quiet:
            del os.environ[LOG_LEVEL_ENV]


def main() -> int:
    """Print where the data lives (exit 0), or why it cannot be used there (stderr, exit 2)."""
    try:
        where = check()
    except (StorageError, ValueError) as err:
        print(f"taxiflow: {err}", file=sys.stderr)
        return EXIT_UNUSABLE
    print(f"taxiflow: data in {where}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
