"""A client made with ``botocore_data.loader`` sends S3 requests exactly where, and signed exactly as,
a client made with botocore's own loader: same URL, same signing scope, in every partition, with or
without an ``endpoint_url``; and it holds less. Presigned URLs are made locally: no server needed.
"""

from __future__ import annotations

import tracemalloc
from urllib.parse import parse_qsl, urlsplit

import pytest
from botocore.config import Config
from botocore.session import Session

from taxiflow.data import botocore_data

CASES = [
    {"region_name": "us-east-1"},
    {"region_name": "eu-west-1", "config": Config(s3={"addressing_style": "virtual"})},
    {"region_name": "eu-west-1", "config": Config(signature_version="s3v4")},
    {"region_name": "cn-north-1"},
    {"region_name": "us-gov-west-1", "config": Config(s3={"use_dualstack_endpoint": True})},
    {"region_name": "us-east-1", "endpoint_url": "http://127.0.0.1:8333"},
    {"region_name": "us-east-1", "endpoint_url": "https://minio.example:9000",
     "config": Config(s3={"addressing_style": "path"})},
]


def _session(lean: bool) -> Session:
    session = Session()
    session.set_credentials("AKIDEXAMPLE", "secret")
    if lean:
        session.register_component("data_loader", botocore_data.loader(session.get_config_variable("data_path")))
    return session


def _where_and_scope(session: Session, service: str, **client_args) -> tuple[str, str, str]:
    client = session.create_client(service, **client_args)
    if service == "s3":
        url = urlsplit(client.generate_presigned_url("get_object", Params={"Bucket": "bucket", "Key": "k/v.json"}))
        query = dict(parse_qsl(url.query))  # SigV4 names its scope (region, service); SigV2 has none
        scope = query["X-Amz-Credential"].split("/", 2)[2] if "X-Amz-Credential" in query else sorted(query)
        return f"{url.scheme}://{url.netloc}{url.path}", str(scope), client.meta.region_name
    return client.meta.endpoint_url, client.meta.service_model.signing_name, client.meta.region_name


@pytest.mark.parametrize("client_args", CASES, ids=lambda case: case["region_name"])
def test_s3_requests_go_where_botocore_sends_them(client_args):
    assert _where_and_scope(_session(lean=True), "s3", **client_args) == \
        _where_and_scope(_session(lean=False), "s3", **client_args)


@pytest.mark.parametrize("region", ["us-east-1", "eu-central-1", "cn-north-1", "us-gov-west-1"])
def test_credential_services_resolve_as_with_botocore(region):
    for service in ("sts", "sso"):
        assert _where_and_scope(_session(lean=True), service, region_name=region) == \
            _where_and_scope(_session(lean=False), service, region_name=region)


def test_an_s3_client_holds_less():
    def held(lean: bool) -> int:
        tracemalloc.start()
        try:
            client = _session(lean).create_client("s3", region_name="us-east-1")
            size, _ = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert client.meta.service_model.service_name == "s3"
        return size

    assert held(lean=True) < held(lean=False) - 4 * 2**20
