"""botocore's bundled data, read for one S3 filesystem: a client that holds less of it.

Every botocore client parses JSON files that ship with botocore when it is made: the endpoint
table of every AWS service (``endpoints.json``, 1.2 MB on disk), the S3 API model and its endpoint
rules. botocore parses them into ``OrderedDict`` objects and keeps them for the life of the
session: 11.3 MB of every task process that touches an S3 data root, 6.7 MB of it the endpoint
table (``benchmarks/profile_task_memory.py``, docs/object-storage.md, "Task memory").

``loader`` is botocore's own ``Loader`` (same search paths, same files, same extras) with a file
reader that builds plain dicts (ordered too, and about half the size) and keeps, of the endpoint
table, the entries of the services an S3 filesystem's session can make a client for. Both go
through botocore's public extension points: a ``JSONFileLoader`` given to ``Loader``, registered
as the session's ``data_loader`` component.
"""

from __future__ import annotations

import gzip
import json
import os
from typing import Any

from botocore.loaders import JSONFileLoader, Loader  # type: ignore[import-untyped]

# S3 for the data; STS, SSO and SSO-OIDC for credentials from a profile that assumes a role or
# signs in with SSO. A client for any other service from this session would find no endpoint
# entry of its own, and use its partition's default hostname.
SESSION_SERVICES = ("s3", "sts", "sso", "sso-oidc")


class LeanFiles(JSONFileLoader):
    """botocore's data files as plain dicts; its endpoint table cut to ``SESSION_SERVICES``."""

    def load_file(self, file_path: str) -> Any:
        for suffix, opener in ((".json", open), (".json.gz", gzip.open)):  # botocore's own order
            if os.path.isfile(file_path + suffix):
                with opener(file_path + suffix, "rb") as file:
                    data = json.loads(file.read())
                return _cut_endpoints(data) if os.path.basename(file_path) == "endpoints" else data
        return None


def _cut_endpoints(table: dict[str, Any]) -> dict[str, Any]:
    for partition in table.get("partitions", []):
        services = partition.get("services", {})
        partition["services"] = {name: services[name] for name in SESSION_SERVICES if name in services}
    return table


def loader(data_path: str | None) -> Loader:
    """botocore's loader for the session's ``data_path`` (``AWS_DATA_PATH``), reading with ``LeanFiles``."""
    extra = None
    if data_path is not None:  # as botocore.loaders.create_loader reads it
        extra = [os.path.expanduser(os.path.expandvars(path)) for path in data_path.split(os.pathsep)]
    return Loader(extra_search_paths=extra, file_loader=LeanFiles())
