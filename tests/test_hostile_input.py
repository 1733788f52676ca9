"""Hostile and broken input: each gets a clear error or a documented repair (see
collector/receivers/validation.py), and the collector keeps serving everyone else."""

from __future__ import annotations

import gzip
import json
import time
import zlib

import grpc
import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from support.harness import CONFIG_TEMPLATE, CollectorProcess
from support.otlp_load import grpc_send, make_request

pytestmark = pytest.mark.timeout(120)
PB = {"content-type": "application/x-protobuf"}
LIMIT = 4096


@pytest.fixture(scope="module")
def collector(tmp_path_factory):
    config = CONFIG_TEMPLATE.replace(
        "        max_request_body_size_mib: {max_body_mib}\n",
        "        max_request_body_size_mib: {max_body_mib}\n"
        f"    validation: {{{{max_attribute_value_bytes: {LIMIT}, max_attribute_depth: 4, max_span_name_bytes: 256}}}}\n",
    )
    process = CollectorProcess(tmp_path_factory.mktemp("hostile"), max_body_mib=1, config_text=config).start()
    yield process
    process.stop()


def _still_serving(collector) -> None:
    request, ids = make_request(3)
    ok, code, _ = grpc_send(collector.grpc_endpoint, request)
    assert ok, code
    response = httpx.post(collector.http_url, content=make_request(2)[0].SerializeToString(), headers=PB, timeout=10)
    assert response.status_code == 200


def _post(collector, body: bytes, headers: dict) -> httpx.Response:
    return httpx.post(collector.http_url, content=body, headers=headers, timeout=10)


def _span_json(**overrides) -> dict:
    span = {"traceId": "0af7651916cd43dd8448eb211c80319c", "spanId": "b7ad6b7169203331", "name": "s",
            "startTimeUnixNano": str(time.time_ns()), "endTimeUnixNano": str(time.time_ns() + 1000)}
    span.update(overrides)
    return {"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}


def _nested_json_value(depth: int) -> dict:
    value: dict = {"stringValue": "bottom"}
    for _ in range(depth):
        value = {"arrayValue": {"values": [value]}}
    return value


_BAD_PAYLOADS = [
    ("malformed protobuf", b"\x0a\xff\xff\xff\xff\x0f garbage", PB, 400),
    ("truncated gzip", gzip.compress(make_request(5)[0].SerializeToString())[:30], {**PB, "content-encoding": "gzip"}, 400),
    ("not gzip at all", b"plain bytes", {**PB, "content-encoding": "gzip"}, 400),
    ("gzip bomb", gzip.compress(b"\0" * (8 * 1024 * 1024)), {**PB, "content-encoding": "gzip"}, 413),
    ("wrong content type", b"{}", {"content-type": "text/plain"}, 415),
    ("no content type", b"{}", {}, 415),
    ("oversized body", b"\0" * (1024 * 1024 + 10), PB, 413),
    ("json not json", b"{resourceSpans", {"content-type": "application/json"}, 400),
    ("json top level array", b"[]", {"content-type": "application/json"}, 400),
    ("json bad trace id", json.dumps(_span_json(traceId="xyz")).encode(), {"content-type": "application/json"}, 400),
    ("json short span id", json.dumps(_span_json(spanId="b7ad")).encode(), {"content-type": "application/json"}, 400),
    ("json wrong type", json.dumps(_span_json(startTimeUnixNano={"a": 1})).encode(), {"content-type": "application/json"}, 400),
    ("json name is a number", json.dumps(_span_json(name=[1, 2])).encode(), {"content-type": "application/json"}, 400),
    ("json invalid utf-8", json.dumps(_span_json(name="AAAA")).encode().replace(b"AAAA", b"A\xff\xfeA"), {"content-type": "application/json"}, 400),
    ("json lone surrogate", json.dumps(_span_json(name="\ud800")).encode(), {"content-type": "application/json"}, 400),
    ("json nested 5000 deep", b'{"resourceSpans":' + b"[" * 5000 + b"]" * 5000 + b"}", {"content-type": "application/json"}, 400),
    ("json nested 100000 deep", b"[" * 100_000, {"content-type": "application/json"}, 400),
    ("json attribute nested 200 deep", json.dumps(_span_json(attributes=[{"key": "k", "value": _nested_json_value(200)}])).encode(),
     {"content-type": "application/json"}, 400),
    ("gzip json nested 5000 deep", gzip.compress(b'{"resourceSpans":' + b"[" * 5000 + b"]" * 5000 + b"}"),
     {"content-type": "application/json", "content-encoding": "gzip"}, 400),
    ("protobuf invalid utf-8", make_request(1)[0].SerializeToString().replace(b"reliability-test", b"reliability-te\xff\xfe"), PB, 400),
]


@pytest.mark.parametrize("name, body, headers, status", _BAD_PAYLOADS, ids=[case[0] for case in _BAD_PAYLOADS])  # bodies hold random ids
def test_bad_payloads_get_clear_errors(collector, name, body, headers, status):
    response = _post(collector, body, headers)
    assert response.status_code == status, (name, response.status_code, response.content[:200])
    assert b"Traceback" not in response.content and b'File "' not in response.content
    if status >= 400 and response.headers.get("content-type") == "application/json":
        assert json.loads(response.content)["message"]
    _still_serving(collector)


def test_json_nesting_within_the_limit_is_stored(collector):
    """An attribute nested 12 levels (JSON depth 46) passes the depth check; validation then cuts
    it at max_attribute_depth, as for protobuf."""
    document = _span_json(name="json-nested-12", attributes=[{"key": "k", "value": _nested_json_value(12)}])
    response = _post(collector, json.dumps(document).encode(), {"content-type": "application/json"})
    assert response.status_code == 200, response.content[:300]
    assert _query_span(collector, "json-nested-12")["a"]["k"].endswith("...[truncated depth]")


def test_deeply_nested_protobuf_is_refused(collector):
    # 300 nested AnyValue arrays: past the protobuf decoder's recursion limit.
    inner = b""
    for _ in range(300):
        inner = b"\x2a" + _varint(len(b"\x0a" + _varint(len(inner)) + inner)) + b"\x0a" + _varint(len(inner)) + inner
    response = _post(collector, _nest_in_request(inner), PB)
    assert response.status_code == 400
    _still_serving(collector)


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _nest_in_request(any_value: bytes) -> bytes:
    kv = b"\x0a\x01k" + b"\x12" + _varint(len(any_value)) + any_value  # KeyValue{key, value}
    span = b"\x0a\x10" + b"\x01" * 16 + b"\x12\x08" + b"\x02" * 8 + b"\x4a" + _varint(len(kv)) + kv
    scope = b"\x12" + _varint(len(span)) + span
    resource = b"\x12" + _varint(len(scope)) + scope
    return b"\x0a" + _varint(len(resource)) + resource


def test_empty_batches_are_fine(collector):
    for body, ctype in ((b"", "application/x-protobuf"), (b"{}", "application/json"), (b'{"resourceSpans": []}', "application/json")):
        response = _post(collector, body, {"content-type": ctype})
        assert response.status_code == 200, (body, response.content)
    ok, code, _ = grpc_send(collector.grpc_endpoint, make_request(0)[0])
    assert ok


def test_malformed_grpc_message_does_not_hurt_others(collector):
    with grpc.insecure_channel(collector.grpc_endpoint) as channel:
        raw = channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export",
                                  request_serializer=lambda b: b, response_deserializer=lambda b: b)
        with pytest.raises(grpc.RpcError) as info:
            raw(b"\x0a\xff\xff\xff\xff\x0f garbage", timeout=5)
        # The receiver takes the request as bytes and parses it itself: the answer is OTLP's
        # "do not retry" code with the decoder's words, not grpcio's bare INTERNAL.
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "malformed OTLP protobuf payload" in info.value.details()
    _still_serving(collector)


def _query_span(collector, name: str) -> dict:
    rows = collector.wait_for_rows(
        f"SELECT SpanAttributes AS a, Timestamp AS ts, Duration AS d, ParentSpanId AS p, SpanName AS n "
        f"FROM otel.otel_traces WHERE startsWith(SpanName, '{name}')", lambda r: len(r) >= 1, timeout=20)
    return rows[0]


def test_repairs_are_applied_and_marked(collector):
    now = time.time_ns()
    request, _ = make_request(1)
    span = request.resource_spans[0].scope_spans[0].spans[0]
    span.name = "repair-end-before-start"
    span.start_time_unix_nano, span.end_time_unix_nano = now, now - 5_000_000
    span.parent_span_id = b"\x01\x02\x03"
    more, _ = make_request(2)
    absurd = more.resource_spans[0].scope_spans[0].spans
    absurd[0].name = "repair-zero-start"
    absurd[0].start_time_unix_nano, absurd[0].end_time_unix_nano = 0, now
    absurd[1].name = "repair-far-future"
    absurd[1].start_time_unix_nano, absurd[1].end_time_unix_nano = now, 2**64 - 1  # year 2554, past DateTime64(9)
    request.resource_spans.extend(more.resource_spans)
    response = _post(collector, request.SerializeToString(), PB)
    assert response.status_code == 200
    row = _query_span(collector, "repair-end-before-start")
    assert row["a"]["otel.collector.repaired"] == "end_before_start,invalid_parent_span_id"
    assert row["d"] == 0 and row["p"] == ""
    zero = _query_span(collector, "repair-zero-start")
    assert zero["a"]["otel.collector.repaired"] == "absurd_start_time" and zero["d"] == 0
    future = _query_span(collector, "repair-far-future")
    assert future["a"]["otel.collector.repaired"] == "absurd_end_time" and future["d"] == 0


def test_invalid_ids_are_partial_success(collector):
    request, _ = make_request(3)
    spans = request.resource_spans[0].scope_spans[0].spans
    spans[0].trace_id = bytes(16)
    spans[1].span_id = b"\x01\x02"
    response = _post(collector, request.SerializeToString(), PB)
    assert response.status_code == 200
    parsed = ExportTraceServiceResponse.FromString(response.content)
    assert parsed.partial_success.rejected_spans == 2
    assert "invalid trace_id" in parsed.partial_success.error_message


def test_huge_and_deep_attributes_are_truncated_with_a_marker(collector):
    request, _ = make_request(1)
    span = request.resource_spans[0].scope_spans[0].spans[0]
    span.name = "truncate-me-" + "n" * 1000
    big = span.attributes.add(key="gen_ai.input.messages")
    big.value.string_value = "é" * 100_000  # 200 000 UTF-8 bytes
    deep = span.attributes.add(key="deep")
    value = deep.value
    for _ in range(10):
        value = value.array_value.values.add()
    value.string_value = "bottom"
    event = span.events.add(name="gen_ai.user.message")
    event.attributes.add(key="content").value.string_value = "z" * 10_000
    response = _post(collector, request.SerializeToString(), PB)
    assert response.status_code == 200
    row = _query_span(collector, "truncate-me-")
    text = row["a"]["gen_ai.input.messages"]
    assert text.endswith(" bytes]") and "...[truncated " in text
    kept = text[: text.index("...[truncated")]
    assert set(kept) == {"é"} and len(kept.encode()) <= LIMIT
    assert row["a"]["deep"].endswith("...[truncated depth]")
    assert "truncated_attribute" in row["a"]["otel.collector.repaired"]
    assert "truncated_name" in row["a"]["otel.collector.repaired"] and len(row["n"].encode()) < 300
    events = collector.query("SELECT Events.Attributes AS e FROM otel.otel_traces WHERE startsWith(SpanName, 'truncate-me-')")
    assert events[0]["e"][0]["content"].startswith("z" * 100) and "...[truncated" in events[0]["e"][0]["content"]


def test_a_client_cannot_forge_the_repair_marker(collector):
    request, _ = make_request(1)
    span = request.resource_spans[0].scope_spans[0].spans[0]
    span.name = "forged-marker"
    span.attributes.add(key="otel.collector.repaired").value.string_value = "nothing"
    span.start_time_unix_nano, span.end_time_unix_nano = span.end_time_unix_nano, span.start_time_unix_nano
    assert _post(collector, request.SerializeToString(), PB).status_code == 200
    assert _query_span(collector, "forged-marker")["a"]["otel.collector.repaired"] == "end_before_start"


def test_many_bad_clients_do_not_stop_good_ones(collector):
    """Bounded: 30 bad requests interleaved with 10 good ones, all answered, all good ones stored."""
    bad_bodies = [b"\xff" * 50, gzip.compress(b"x")[:5], zlib.compress(b"\0" * 100)]
    for i in range(10):
        for body in bad_bodies:
            assert _post(collector, body, {**PB, "content-encoding": "gzip"}).status_code in (400, 413)
        request, ids = make_request(5)
        for span in request.resource_spans[0].scope_spans[0].spans:
            span.name = f"goodclient-{i}"
        assert _post(collector, request.SerializeToString(), PB).status_code == 200
    collector.wait_for_rows("SELECT count() AS n FROM otel.otel_traces WHERE startsWith(SpanName, 'goodclient-')",
                            lambda r: r[0]["n"] == 50, timeout=20)


# --- the read-only SQL endpoint (what the CLI's `sql`/`trace` commands use) -------------------

def _sql(collector, sql: str, parameters: dict | None = None) -> httpx.Response:
    return httpx.post(collector.query_url, json={"sql": sql, "parameters": parameters}, timeout=30)


@pytest.mark.parametrize("sql", [
    "SELECT count() FROM otel.otel_traces",
    "SELECT SpanName FROM otel.otel_traces WHERE TraceId = {t:String} LIMIT 1",
    "WITH x AS (SELECT 1 AS a) SELECT a FROM x",
    "SELECT number FROM numbers(3)",
    "SELECT mutation_id FROM system.mutations WHERE database = 'otel'",
    "SELECT 1",
])
def test_sqlquery_allows_reads_of_its_database(collector, sql):
    response = _sql(collector, sql, {"t": "00"})
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("sql, status", [
    ("INSERT INTO otel.otel_traces (SpanName) VALUES ('x')", 403),
    ("ALTER TABLE otel.otel_traces DELETE WHERE 1", 403),
    ("DROP TABLE otel.otel_traces", 403),
    ("SELECT 1; DROP TABLE otel.otel_traces", 400),
    ("SELECT 1 SETTINGS readonly = 0", 400),
    ("SELECT * FROM system.users", 403),
    ("SELECT name FROM system.databases", 403),
    ("SELECT * FROM default.anything", 403),
    ("SELECT * FROM merge('system', '.*')", 403),
    ("SELECT * FROM view(SELECT * FROM system.processes)", 403),
    ("SELECT file('/etc/passwd')", 403),
    ("SELECT * FROM file('/etc/passwd', 'LineAsString')", 403),
    ("SELECT * FROM url('http://127.0.0.1:1/', 'LineAsString')", 403),
    ("SELECT count() FROM otel.otel_traces INTO OUTFILE '/tmp/genaitrace-pwn.txt'", 403),
    ("SELECT * FROM otel.otel_traces WHERE SpanId IN (SELECT name FROM system.users)", 403),
    ("SHOW DATABASES", 403),
])
def test_sqlquery_refuses_writes_and_escapes(collector, sql, status):
    response = _sql(collector, sql)
    assert response.status_code in (status, 400, 403), (sql, response.status_code, response.text)
    assert response.status_code != 200
    assert collector.query("SELECT count() AS n FROM system.tables WHERE database = 'otel' AND name = 'otel_traces'")[0]["n"] == 1


def test_sqlquery_wrote_no_file():
    import os

    assert not os.path.exists("/tmp/genaitrace-pwn.txt")
