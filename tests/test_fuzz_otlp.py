"""Property-based fuzzing of the OTLP receivers' decode -> validate -> columns path (Hypothesis).

Properties, for any input bytes / JSON document:
  - decoding either succeeds or raises PermanentError (a 400), never anything else (a 500);
  - after `sanitize`, every span has valid ids and in-range, ordered timestamps;
  - the ClickHouse column conversion of what sanitize let through never fails;
  - the HTTP endpoint answers every request with 200/400/413/415 (never 5xx) and keeps serving.

Inputs that once broke a property are kept in tests/corpus/ and replayed on every run
(`test_corpus_regressions`). Example counts are bounded for CI; set FUZZ_EXAMPLES=5000 for a
longer local run. Hypothesis' own database (.hypothesis/) adds inputs it shrank to.
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collector.component import PermanentError
from collector.pdata import Traces
from collector.receivers.decoding import decompress
from collector.receivers.validation import MIN_TIME_NS, ValidationConfig, sanitize
from collector.storage.columns import traces_to_arrow
from support.otlp_load import make_request
from support.sinks import Sink

CORPUS = Path(__file__).parent / "corpus"
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "150"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=not os.environ.get("FUZZ_RANDOM"),
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
CFG = ValidationConfig(max_attribute_value_bytes=2048, max_attribute_depth=4, max_span_name_bytes=128)


def _pipeline(traces: Traces) -> None:
    """What a receiver does with a decoded request, then what the ClickHouse exporter does. The
    receiver's validation scan is where a payload neither the native reader nor upb reads is refused."""
    try:
        sanitize(traces, CFG)
    except PermanentError:
        return
    max_ns = time.time_ns() + int(CFG.max_future_skew * 1e9)
    for _rs, _ss, span in traces.spans():
        assert len(span.trace_id) == 16 and any(span.trace_id)
        assert len(span.span_id) == 8 and any(span.span_id)
        assert span.parent_span_id == b"" or len(span.parent_span_id) == 8
        assert MIN_TIME_NS <= span.start_time_unix_nano <= span.end_time_unix_nano <= max_ns
        for kv in span.attributes:
            assert kv.value.ByteSize() <= CFG.max_attribute_value_bytes + 64
    traces_to_arrow(traces)


def decode_protobuf(data: bytes) -> None:
    try:
        traces = Traces.from_protobuf(data)
    except PermanentError:
        return
    _pipeline(traces)


def decode_json(data: bytes) -> None:
    try:
        traces = Traces.from_json(data)
    except PermanentError:
        return
    _pipeline(traces)


# --- seeds: valid requests, mutated ----------------------------------------------------------

def _seed() -> bytes:
    request, _ = make_request(3, tenant="acme", attrs={"gen_ai.input.messages": "[{\"role\":\"user\"}]"})
    span = request.resource_spans[0].scope_spans[0].spans[0]
    span.events.add(name="gen_ai.choice", time_unix_nano=span.start_time_unix_nano).attributes.add(key="k").value.int_value = 1
    span.links.add(trace_id=b"\x01" * 16, span_id=b"\x02" * 8)
    span.attributes.add(key="arr").value.array_value.values.add().double_value = float("nan")
    span.attributes.add(key="bytes").value.bytes_value = b"\x00\xff"
    return request.SerializeToString()


SEED = _seed()


@st.composite
def mutated(draw) -> bytes:
    data = bytearray(SEED)
    for _ in range(draw(st.integers(1, 8))):
        op = draw(st.sampled_from(["flip", "insert", "delete", "set"]))
        pos = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "flip" and data:
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        elif op == "delete" and data:
            del data[pos:pos + draw(st.integers(1, 16))]
        elif data:
            data[pos] = draw(st.sampled_from([0x00, 0x7F, 0x80, 0xFF, 0x0A, 0x12, 0x1A, 0x22]))
    return bytes(data)


@FUZZ
@given(mutated())
def test_fuzz_mutated_protobuf(data):
    decode_protobuf(data)


@FUZZ
@given(st.binary(max_size=512))
def test_fuzz_random_protobuf(data):
    decode_protobuf(data)


# --- structured: OTLP/JSON-shaped documents with wrong types and odd values -------------------

_scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2 ** 70), 2 ** 70),
                     st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20))
_hexish = st.one_of(st.text("0123456789abcdefABCDEF", min_size=0, max_size=34), st.text(max_size=10), _scalars)
_any_value = st.recursive(
    st.one_of(
        st.builds(lambda v: {"stringValue": v}, st.text(max_size=50)),
        st.builds(lambda v: {"intValue": v}, st.one_of(st.integers(-(2 ** 64), 2 ** 64), st.text(max_size=5))),
        st.builds(lambda v: {"doubleValue": v}, st.floats()),
        st.builds(lambda v: {"boolValue": v}, _scalars),
        st.builds(lambda v: {"bytesValue": v}, st.one_of(st.binary(max_size=8).map(lambda b: base64.b64encode(b).decode()), st.text(max_size=5))),
        _scalars,
    ),
    lambda children: st.one_of(
        st.builds(lambda vs: {"arrayValue": {"values": vs}}, st.lists(children, max_size=3)),
        st.builds(lambda kvs: {"kvlistValue": {"values": [{"key": k, "value": v} for k, v in kvs]}},
                  st.lists(st.tuples(st.text(max_size=5), children), max_size=3)),
    ),
    max_leaves=12,
)
_attributes = st.lists(st.fixed_dictionaries({"key": st.one_of(st.text(max_size=12), _scalars), "value": _any_value}), max_size=4)
_time = st.one_of(st.integers(0, 2 ** 64 - 1).map(str), st.integers(-5, 2 ** 65), st.just(str(time.time_ns())), _scalars)
_span = st.fixed_dictionaries(
    {"traceId": _hexish, "spanId": _hexish},
    optional={
        "parentSpanId": _hexish, "name": st.one_of(st.text(max_size=300), _scalars), "kind": st.one_of(st.integers(-2, 9), st.text(max_size=8)),
        "startTimeUnixNano": _time, "endTimeUnixNano": _time, "attributes": _attributes,
        "events": st.lists(st.fixed_dictionaries({"name": st.text(max_size=8), "timeUnixNano": _time, "attributes": _attributes}), max_size=2),
        "links": st.lists(st.fixed_dictionaries({"traceId": _hexish, "spanId": _hexish}), max_size=2),
        "status": st.fixed_dictionaries({}, optional={"code": st.one_of(st.integers(-1, 5), st.text(max_size=8)), "message": st.text(max_size=10)}),
    },
)
_document = st.one_of(
    st.fixed_dictionaries({"resourceSpans": st.lists(st.fixed_dictionaries({}, optional={
        "resource": st.fixed_dictionaries({}, optional={"attributes": _attributes}),
        "scopeSpans": st.lists(st.fixed_dictionaries({}, optional={
            "scope": st.fixed_dictionaries({}, optional={"name": st.text(max_size=5), "attributes": _attributes}),
            "spans": st.lists(_span, max_size=3)}), max_size=2),
    }), max_size=2)}),
    st.recursive(_scalars, lambda c: st.one_of(st.lists(c, max_size=3), st.dictionaries(st.text(max_size=5), c, max_size=3)), max_leaves=8),
)


@FUZZ
@given(_document)
def test_fuzz_json_documents(document):
    decode_json(json.dumps(document, allow_nan=True).encode())


@FUZZ
@given(st.binary(max_size=256))
def test_fuzz_json_bytes(data):
    decode_json(data)


@FUZZ
@given(st.one_of(st.binary(max_size=256), mutated().map(gzip.compress), mutated().map(lambda b: gzip.compress(b)[: len(b) // 2])))
def test_fuzz_gunzip(data):
    try:
        out = decompress(data, "gzip", 4096)
    except PermanentError:  # BodyTooLarge (413) is one too
        return
    assert len(out) <= 4096


# --- the HTTP endpoint in-process ------------------------------------------------------------

@pytest.fixture(scope="module")
def http_client():
    from starlette.applications import Starlette
    from starlette.routing import Route
    from starlette.testclient import TestClient

    from collector.component import ComponentId
    from collector.receivers.otlp import OTLPReceiver, OTLPReceiverConfig

    receiver = OTLPReceiver(ComponentId("otlp"), OTLPReceiverConfig.model_validate(
        {"protocols": {"http": {"max_request_body_size_mib": 0.01}}, "validation": CFG.model_dump()}), Sink())
    app = Starlette(routes=[Route("/v1/traces", receiver._http_traces, methods=["POST"])])
    with TestClient(app, raise_server_exceptions=True) as client:
        yield client


@settings(max_examples=max(30, EXAMPLES // 3), deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(body=st.one_of(mutated(), _document.map(lambda d: json.dumps(d).encode()), st.binary(max_size=64)),
       content_type=st.sampled_from(["application/x-protobuf", "application/json", "application/json; charset=utf-8", "text/plain", ""]),
       gzipped=st.booleans())
def test_fuzz_http_endpoint(http_client, body, content_type, gzipped):
    headers = {"content-type": content_type} if content_type else {}
    if gzipped:
        body, headers["content-encoding"] = gzip.compress(body), "gzip"
    response = http_client.post("/v1/traces", content=body, headers=headers)
    assert response.status_code in (200, 400, 413, 415), (response.status_code, response.content[:300])


# --- regression corpus -----------------------------------------------------------------------

def _corpus() -> list[Path]:
    return sorted(p for p in CORPUS.glob("*") if p.suffix in (".bin", ".json"))


@pytest.mark.parametrize("path", _corpus(), ids=lambda p: p.name)
def test_corpus_regressions(path):
    data = path.read_bytes()
    (decode_json if path.suffix == ".json" else decode_protobuf)(data)
