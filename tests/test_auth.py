"""Bearer-token authentication and tenant stamping on the OTLP receivers, over TLS.

One collector, TLS on gRPC and HTTP, `bearertokenauth` with a shared token (env), a tenant token
from an env var (acme) and one from a file (globex).
"""

from __future__ import annotations

import ssl
import subprocess
import time

import grpc
import httpx
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

from collector.component import UnauthenticatedError
from collector.extensions.bearertokenauth import BearerTokenAuth, BearerTokenAuthConfig, stamp_tenant
from collector.pdata import Traces, get_attribute
from support.harness import CONFIG_TEMPLATE, CollectorProcess
from support.otlp_load import make_request

pytestmark = pytest.mark.timeout(120)

SHARED, ACME, GLOBEX, GLOBEX_ROTATED = "shared-6f1d2c", "acme-9b7e41aa", "globex-33c0ffee", "globex-rotated-77"


def _certs(directory):
    key, cert = directory / "server.key", directory / "server.crt"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "2", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    return key, cert


@pytest.fixture(scope="module")
def secured(tmp_path_factory):
    work = tmp_path_factory.mktemp("auth")
    key, cert = _certs(work)
    token_file = work / "globex.token"
    token_file.write_text(GLOBEX + "\n")
    tls = f"        tls: {{{{cert_file: {cert}, key_file: {key}}}}}\n        auth: {{{{authenticator: bearertokenauth}}}}\n"
    config = (CONFIG_TEMPLATE
              .replace("extensions:\n  health_check:",
                       "extensions:\n  bearertokenauth:\n    token: ${{env:GT_SHARED_TOKEN}}\n    tenants:\n"
                       "      acme: {{token: \"${{env:GT_ACME_TOKEN}}\"}}\n"
                       f"      globex: {{{{filename: {token_file}}}}}\n  health_check:")
              .replace("        endpoint: 127.0.0.1:{grpc_port}\n", "        endpoint: 127.0.0.1:{grpc_port}\n" + tls)
              .replace("        endpoint: 127.0.0.1:{http_port}\n", "        endpoint: 127.0.0.1:{http_port}\n" + tls))
    process = CollectorProcess(work, config_text=config, extensions="bearertokenauth, health_check, file_storage, sqlquery",
                               env={"GT_SHARED_TOKEN": SHARED, "GT_ACME_TOKEN": ACME})
    process.http_url = process.http_url.replace("http://", "https://")
    process.start()
    process.cert, process.token_file = cert, token_file
    yield process
    process.stop()


def _grpc(collector, request, token: str | None):
    credentials = grpc.ssl_channel_credentials(root_certificates=collector.cert.read_bytes())
    with grpc.secure_channel(collector.grpc_endpoint, credentials) as channel:
        stub = trace_service_pb2_grpc.TraceServiceStub(channel)
        metadata = [("authorization", f"Bearer {token}")] if token else []
        try:
            stub.Export(request, timeout=10, metadata=metadata)
            return "OK"
        except grpc.RpcError as exc:
            return exc.code().name


def _http(collector, request, authorization: str | None):
    headers = {"content-type": "application/x-protobuf"}
    if authorization:
        headers["authorization"] = authorization
    return httpx.post(collector.http_url, content=request.SerializeToString(), headers=headers, timeout=10,
                      verify=ssl.create_default_context(cafile=str(collector.cert)))


def _named(name: str, spans: int = 1, tenant: str | None = None, span_tenant: str | None = None):
    request, _ = make_request(spans, tenant=tenant, attrs={"tenant.id": span_tenant} if span_tenant else None)
    for span in request.resource_spans[0].scope_spans[0].spans:
        span.name = name
    return request


def _tenants(collector, name: str, count: int = 1) -> list[tuple[str, str]]:
    rows = collector.wait_for_rows(
        f"SELECT ResourceAttributes['tenant.id'] AS r, SpanAttributes['tenant.id'] AS s FROM otel.otel_traces WHERE SpanName = '{name}'",
        lambda r: len(r) >= count, timeout=20)
    return sorted((row["r"], row["s"]) for row in rows)


@pytest.mark.parametrize("token", [None, "wrong-token", SHARED + "x", SHARED[:-1]])
def test_grpc_refuses_missing_or_wrong_tokens(secured, token):
    assert _grpc(secured, _named("refused-grpc"), token) == "UNAUTHENTICATED"


@pytest.mark.parametrize("authorization", [None, "Bearer nope", f"Basic {SHARED}", SHARED, "Bearer", f"Bearer {ACME} extra"])
def test_http_refuses_missing_or_wrong_tokens(secured, authorization):
    response = _http(secured, _named("refused-http"), authorization)
    assert response.status_code == 401
    assert SHARED not in response.text and ACME not in response.text


def test_refused_requests_store_nothing(secured):
    _grpc(secured, _named("refused-check"), "bad")
    _http(secured, _named("refused-check"), "Bearer bad")
    assert _grpc(secured, _named("refused-check-marker"), SHARED) == "OK"
    _tenants(secured, "refused-check-marker")
    assert secured.query("SELECT count() AS n FROM otel.otel_traces WHERE SpanName LIKE 'refused%' AND SpanName != 'refused-check-marker'")[0]["n"] == 0


def test_shared_token_keeps_claimed_tenant(secured):
    assert _grpc(secured, _named("shared-claims", tenant="initech"), SHARED) == "OK"
    assert _tenants(secured, "shared-claims") == [("initech", "")]


def test_tenant_token_stamps_and_overrides_claims(secured):
    # acme's token, data claiming to be globex (on the resource and on the span)
    assert _grpc(secured, _named("acme-grpc", 3, tenant="globex", span_tenant="globex"), ACME) == "OK"
    assert _tenants(secured, "acme-grpc", 3) == [("acme", "acme")] * 3
    response = _http(secured, _named("acme-http", 2, tenant="globex", span_tenant="globex"), f"bearer {ACME}")
    assert response.status_code == 200
    assert _tenants(secured, "acme-http", 2) == [("acme", "acme")] * 2
    assert _grpc(secured, _named("globex-file"), GLOBEX) == "OK"
    assert _tenants(secured, "globex-file") == [("globex", "globex")]


def test_token_file_is_reread_on_rotation(secured):
    secured.token_file.write_text(GLOBEX_ROTATED)
    deadline = time.monotonic() + 10
    while _grpc(secured, _named("rotated"), GLOBEX_ROTATED) != "OK":
        assert time.monotonic() < deadline, "rotated token never accepted"
        time.sleep(0.3)
    assert _grpc(secured, _named("old-after-rotation"), GLOBEX) == "UNAUTHENTICATED"
    assert _tenants(secured, "rotated") == [("globex", "globex")]


def test_plaintext_to_tls_port_fails(secured):
    with grpc.insecure_channel(secured.grpc_endpoint) as channel:
        stub = trace_service_pb2_grpc.TraceServiceStub(channel)
        with pytest.raises(grpc.RpcError):
            stub.Export(_named("plain"), timeout=3, metadata=[("authorization", f"Bearer {SHARED}")])
    with pytest.raises(httpx.HTTPError):
        httpx.post(secured.http_url.replace("https://", "http://"), content=b"", timeout=3,
                   headers={"content-type": "application/x-protobuf", "authorization": f"Bearer {SHARED}"})


def test_tokens_never_logged(secured):
    _grpc(secured, _named("log-probe"), "Bearer-typo-" + ACME)
    log = secured.log() + secured.config_path.read_text()
    for secret in (SHARED, ACME, GLOBEX, GLOBEX_ROTATED):
        assert secret not in log


# --- the extension in-process ---------------------------------------------------------------

def _ext(**config) -> BearerTokenAuth:
    ext = BearerTokenAuth(None, BearerTokenAuthConfig.model_validate(config))
    ext.start(None)
    return ext


def test_config_requires_a_token_and_hides_it():
    with pytest.raises(ValueError):
        BearerTokenAuthConfig.model_validate({})
    with pytest.raises(ValueError):
        BearerTokenAuthConfig.model_validate({"tenants": {"acme": {"token": "a", "filename": "/x"}}})
    config = BearerTokenAuthConfig.model_validate({"token": "s3cret", "tenants": {"acme": {"token": "t0ken"}}})
    assert "s3cret" not in repr(config) and "t0ken" not in repr(config)


def test_empty_env_token_refuses_to_start():
    with pytest.raises(ValueError):
        _ext(tenants={"acme": {"token": " "}})


def test_duplicate_tenant_keys_are_all_overwritten():
    request, _ = make_request(1, tenant="globex")
    span = request.resource_spans[0].scope_spans[0].spans[0]
    span.attributes.add(key="tenant.id").value.string_value = "globex"
    span.attributes.add(key="tenant.id").value.string_value = "initech"
    traces = Traces(request)
    stamp_tenant(traces, "acme")
    assert [kv.value.string_value for kv in span.attributes if kv.key == "tenant.id"] == ["acme", "acme"]
    assert get_attribute(request.resource_spans[0].resource.attributes, "tenant.id") == "acme"


def test_check_returns_bound_tenant():
    ext = _ext(token="shared", tenants={"acme": {"token": "acme-tok"}})
    assert ext.check({"authorization": "Bearer acme-tok"}) == "acme"
    assert ext.check({"authorization": "bearer shared"}) is None
    with pytest.raises(UnauthenticatedError):
        ext.check({"authorization": "Bearer acme-tok2"})
    custom = _ext(header="x-api-key", scheme="Token", token="k")
    assert custom.check({"x-api-key": "Token k"}) is None
