"""Helpers shared by the end-to-end tests that drive `rudder server` with the official Python
`kubernetes` client.

The tests read the admin kubeconfig from `KUBECONFIG` (the Rust wrapper in
crates/rudder/tests/it/python.rs starts a server and sets it). Everything here goes through
the client's own machinery (configuration, TLS pool, authentication), so a request that works
here works for any user of the client.
"""

import json
import os
import uuid
from urllib.parse import urlencode

from kubernetes import client, config
from kubernetes.client.rest import ApiException

# Media types for content negotiation, as kubectl and client-go send them.
AGGREGATED_V2 = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
TABLE_V1 = "application/json;as=Table;v=v1;g=meta.k8s.io"
METADATA_LIST_V1 = "application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io"
METADATA_V1 = "application/json;as=PartialObjectMetadata;v=v1;g=meta.k8s.io"

# Patch media types.
JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"


def load_configuration():
    """The client configuration for the kubeconfig named by `KUBECONFIG`."""
    path = os.environ.get("KUBECONFIG")
    if not path:
        raise RuntimeError("set KUBECONFIG to the admin kubeconfig of a running rudder server")
    cfg = client.Configuration()
    config.load_kube_config(config_file=path, client_configuration=cfg)
    return cfg


def unique_name(prefix):
    """A DNS-1123 name that no other test run uses."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def patch_client(configuration, content_type):
    """An ApiClient whose every request carries `Content-Type: content_type`.

    The generated patch methods of kubernetes 32.x take no `_content_type` argument (no
    release of the client has one): they always ask for `application/json-patch+json`, which
    the REST layer turns into `application/strategic-merge-patch+json` when the body is not a
    list. The client's documented way to choose the patch type is a default header, which
    overrides the generated one (`ApiClient.__call_api` applies default headers last).
    """
    api_client = client.ApiClient(configuration)
    api_client.set_default_header("Content-Type", content_type)
    return api_client


class Response:
    """One raw HTTP answer."""

    def __init__(self, status, headers, data):
        self.status = status
        self.headers = headers
        self.data = data if isinstance(data, bytes) else (data or "").encode()

    @property
    def content_type(self):
        return self.headers.get("Content-Type", "")

    def json(self):
        try:
            return json.loads(self.data)
        except ValueError as e:
            raise AssertionError(f"HTTP {self.status} body is not JSON ({e}): {self.data[:500]!r}")

    def __repr__(self):
        return f"HTTP {self.status} [{self.content_type}] {self.data[:800]!r}"


def call_raw(api_client, path, accept, query=None):
    """GET `path` through `ApiClient.call_api` with an explicit Accept header, without
    deserializing, and return the raw answer (error answers too)."""
    try:
        resp = api_client.call_api(
            path,
            "GET",
            query_params=list(query or []),
            header_params={"Accept": accept},
            auth_settings=["BearerToken"],
            response_type=None,
            _preload_content=False,
            _return_http_data_only=True,
            _request_timeout=30,
        )
        return Response(resp.status, resp.headers, resp.data)
    except ApiException as e:
        return Response(e.status, e.headers or {}, e.body)


def send_raw(api_client, method, path, body=None, content_type=None, accept="application/json", query=None):
    """Sends one request with `body` as exact bytes (no JSON encoding by the client), through
    the client's own TLS pool and authentication, and returns the raw answer."""
    headers = {}
    if accept:
        headers["Accept"] = accept
    if content_type:
        headers["Content-Type"] = content_type
    querys = list(query or [])
    api_client.update_params_for_auth(headers, querys, ["BearerToken"])
    url = api_client.configuration.host + path
    if querys:
        url += "?" + urlencode(querys)
    if isinstance(body, str):
        body = body.encode()
    resp = api_client.rest_client.pool_manager.request(
        method, url, body=body, headers=headers, preload_content=True, timeout=30
    )
    return Response(resp.status, resp.headers, resp.data)


def status_of(exc):
    """The metav1.Status body of an ApiException, checked to be one."""
    assert isinstance(exc, ApiException), exc
    try:
        body = json.loads(exc.body)
    except (TypeError, ValueError) as e:
        raise AssertionError(f"HTTP {exc.status} error body is not JSON ({e}): {exc.body!r}")
    assert body.get("kind") == "Status", body
    assert body.get("apiVersion") == "v1", body
    assert body.get("status") == "Failure", body
    assert body.get("code") == exc.status, (exc.status, body)
    return body


def expect_status(call, code, reason):
    """Runs `call`, requires an ApiException with HTTP `code` and a Status body with `reason`,
    and returns that body."""
    try:
        result = call()
    except ApiException as e:
        assert e.status == code, f"expected HTTP {code} {reason}, got {e.status}: {e.body}"
        body = status_of(e)
        assert body.get("reason") == reason, body
        return body
    raise AssertionError(f"expected HTTP {code} {reason}, the call succeeded with {result!r}"[:2000])


def expect_raw_status(resp, code, reason):
    """Requires a raw answer to be a Status with `code` and `reason` and returns its body."""
    assert resp.status == code, resp
    assert resp.content_type.split(";")[0].strip() == "application/json", resp
    body = resp.json()
    assert body.get("kind") == "Status", body
    assert body.get("apiVersion") == "v1", body
    assert body.get("status") == "Failure", body
    assert body.get("code") == code, body
    assert body.get("reason") == reason, body
    return body


def media_params(content_type):
    """(`type/subtype`, {param: value}) of a Content-Type header; parameter order does not
    matter, as in client-go's discovery."""
    parts = [p.strip() for p in content_type.split(";") if p.strip()]
    params = {}
    for p in parts[1:]:
        k, _, v = p.partition("=")
        params[k.strip().lower()] = v.strip()
    return (parts[0].lower() if parts else ""), params
