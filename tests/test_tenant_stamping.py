"""A tenant-bound token decides the tenant of everything it sends: `tenant.id` claimed anywhere in
the data (resource, scope, span attributes, span events, links; duplicated keys too) is
overwritten with the token's tenant, through a real collector process, from the OpenTelemetry SDK
over gRPC and from raw OTLP over HTTP. Every stored column is read back and searched."""

from __future__ import annotations

import json

import httpx
import pytest

from collector.extensions.bearertokenauth import stamp_tenant
from collector.pdata import Traces, get_attribute
from support.harness import CONFIG_TEMPLATE, CollectorProcess
from support.otlp_load import make_request

pytestmark = pytest.mark.timeout(180)

ACME, SHARED = "acme-7c1e5b9d", "shared-2f8a6e"
CLAIMED = "globex"  # what a client holding acme's token pretends to be


@pytest.fixture(scope="module")
def collector(tmp_path_factory):
    work = tmp_path_factory.mktemp("tenants")
    auth = "        auth: {{authenticator: bearertokenauth}}\n"
    config = (CONFIG_TEMPLATE
              .replace("extensions:\n  health_check:",
                       "extensions:\n  bearertokenauth:\n    token: ${{env:GT_SHARED_TOKEN}}\n"
                       "    tenants:\n      acme: {{token: \"${{env:GT_ACME_TOKEN}}\"}}\n  health_check:")
              .replace("        endpoint: 127.0.0.1:{grpc_port}\n", "        endpoint: 127.0.0.1:{grpc_port}\n" + auth)
              .replace("        endpoint: 127.0.0.1:{http_port}\n", "        endpoint: 127.0.0.1:{http_port}\n" + auth))
    process = CollectorProcess(work, config_text=config, extensions="bearertokenauth, health_check, file_storage, sqlquery",
                               env={"GT_SHARED_TOKEN": SHARED, "GT_ACME_TOKEN": ACME}).start()
    yield process
    process.stop()


def _claiming_request(name: str):
    """Raw OTLP with `tenant.id = globex` in every place a client can put an attribute, twice."""
    request, _ = make_request(2, tenant=CLAIMED)
    rs = request.resource_spans[0]
    rs.resource.attributes.add(key="tenant.id").value.string_value = "initech"  # a duplicate key
    rs.scope_spans[0].scope.attributes.add(key="tenant.id").value.string_value = CLAIMED
    for span in rs.scope_spans[0].spans:
        span.name = name
        span.attributes.add(key="tenant.id").value.string_value = CLAIMED
        span.attributes.add(key="tenant.id").value.string_value = "initech"
        event = span.events.add(name="claim", time_unix_nano=span.start_time_unix_nano)
        event.attributes.add(key="tenant.id").value.string_value = CLAIMED
        event.attributes.add(key="note").value.string_value = "kept"
        link = span.links.add(trace_id=bytes(range(16)), span_id=bytes(range(8)))
        link.attributes.add(key="tenant.id").value.string_value = CLAIMED
    return request


def _stored(collector, name: str, count: int) -> list[dict]:
    """Every column of the rows, MATERIALIZED and ALIAS ones too (SELECT * leaves those out)."""
    collector.wait_for_rows(f"SELECT count() AS n FROM otel.otel_traces WHERE SpanName = '{name}'",
                            lambda rows: rows[0]["n"] >= count, timeout=30)
    columns = [r["name"] for r in collector.query("SELECT name FROM system.columns WHERE database = 'otel' AND table = 'otel_traces'")]
    return collector.query(f"SELECT {', '.join(f'`{c}`' for c in columns)} FROM otel.otel_traces WHERE SpanName = '{name}'")


def _assert_only_acme(rows: list[dict]) -> None:
    for row in rows:
        assert row["ResourceAttributes"]["tenant.id"] == "acme"
        assert row["SpanAttributes"]["tenant.id"] == "acme"
        for attributes in row["Events.Attributes"] + row["Links.Attributes"]:
            assert attributes.get("tenant.id") == "acme", attributes
    dump = json.dumps(rows, default=str)
    assert CLAIMED not in dump and "initech" not in dump  # in no column at all


def test_raw_otlp_http_claims_are_overwritten_everywhere(collector):
    response = httpx.post(collector.http_url, content=_claiming_request("stamp-http").SerializeToString(), timeout=10,
                          headers={"content-type": "application/x-protobuf", "authorization": f"Bearer {ACME}"})
    assert response.status_code == 200, response.text
    rows = _stored(collector, "stamp-http", 2)
    _assert_only_acme(rows)
    assert all(row["Events.Attributes"][0]["note"] == "kept" for row in rows)


def test_raw_otlp_json_claims_are_overwritten_everywhere(collector):
    from collector.pdata import encode_otlp_json

    body = encode_otlp_json(_claiming_request("stamp-json"))
    response = httpx.post(collector.http_url, content=body, timeout=10,
                          headers={"content-type": "application/json", "authorization": f"Bearer {ACME}"})
    assert response.status_code == 200, response.text
    _assert_only_acme(_stored(collector, "stamp-json", 2))


def test_opentelemetry_sdk_over_grpc_claims_are_overwritten_everywhere(collector):
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": "sdk-claims", "tenant.id": CLAIMED}))
    exporter = OTLPSpanExporter(endpoint=collector.grpc_endpoint, insecure=True, headers={"authorization": f"Bearer {ACME}"})
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("claims", "1.0", attributes={"tenant.id": CLAIMED})
    with tracer.start_as_current_span("stamp-sdk-parent") as parent:
        parent_context = parent.get_span_context()
    link = trace.Link(parent_context, {"tenant.id": CLAIMED})
    with tracer.start_as_current_span("stamp-sdk", links=[link], attributes={"tenant.id": CLAIMED}) as span:
        span.add_event("claim", {"tenant.id": CLAIMED})
        span.record_exception(ValueError("boom"), attributes={"tenant.id": CLAIMED})
    provider.shutdown()
    rows = _stored(collector, "stamp-sdk", 1)
    _assert_only_acme(rows)
    assert rows[0]["Events.Name"] == ["claim", "exception"]


def test_shared_token_keeps_what_the_data_claims(collector):
    """The unbound (gateway) token is trusted to carry tenants: nothing is rewritten."""
    response = httpx.post(collector.http_url, content=_claiming_request("stamp-shared").SerializeToString(), timeout=10,
                          headers={"content-type": "application/x-protobuf", "authorization": f"Bearer {SHARED}"})
    assert response.status_code == 200
    row = _stored(collector, "stamp-shared", 2)[0]
    assert row["Events.Attributes"][0]["tenant.id"] == CLAIMED and row["Links.Attributes"][0]["tenant.id"] == CLAIMED


def test_scope_attributes_are_stamped_too():
    """The scope's attributes are not a column of otel_traces, but the otlp exporters forward them."""
    request = _claiming_request("scope")
    stamp_tenant(Traces(request), "acme")
    scope = request.resource_spans[0].scope_spans[0].scope
    assert get_attribute(scope.attributes, "tenant.id") == "acme"
    span = request.resource_spans[0].scope_spans[0].spans[0]
    assert [kv.value.string_value for kv in span.attributes if kv.key == "tenant.id"] == ["acme", "acme"]
    assert get_attribute(span.events[0].attributes, "tenant.id") == "acme"
    assert get_attribute(span.links[0].attributes, "tenant.id") == "acme"
    # nothing is added where the client claimed nothing: events and links without tenant.id stay so
    bare, _ = make_request(1)
    bare_span = bare.resource_spans[0].scope_spans[0].spans[0]
    bare_span.events.add(name="e").attributes.add(key="k").value.string_value = "v"
    stamp_tenant(Traces(bare), "acme")
    assert [kv.key for kv in bare_span.events[0].attributes] == ["k"]
