"""The native extension (collector/native), the one implementation of the wire-level stages,
against plain references written here and in tests/test_columns.py with the protobuf API.

* `columns.payloads_to_arrow` must equal the per-span reference table exactly.
* `scan` must flag every span the Python validation drops or repairs when it walks every span
  (more is allowed), and name exactly the spans with a GenAI key.
* `genai_rows` must read what the protobuf message holds, and `apply_patches` must write what the
  protobuf API writes.
"""

from __future__ import annotations

import copy
import math
import random
import struct
import time

import pytest

from collector import native  # noqa: E402
from collector.component import PermanentError  # noqa: E402
from collector.pdata import GenAISpan, Traces, attributes_to_dict, format_double, set_any_value  # noqa: E402
from collector.receivers import validation  # noqa: E402
from collector.storage import columns  # noqa: E402
from semconv.genai_mapping import GENAI_KEY_PREFIXES  # noqa: E402
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest  # noqa: E402
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue  # noqa: E402
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status  # noqa: E402
from support.reference_columns import every_value_kind, reference_table, varied_request  # noqa: E402


def assert_same_table(payloads: list[bytes]):
    fast = columns.payloads_to_arrow(payloads)
    ref = reference_table(Traces.from_protobuf(b"".join(payloads)))
    assert fast.schema.equals(columns.ARROW_SCHEMA)
    assert fast.num_rows == ref.num_rows
    for name in columns.COLUMN_NAMES:
        assert fast.column(name).to_pylist() == ref.column(name).to_pylist(), name
    assert fast.equals(ref)
    return fast


def one_span_request(**span_fields) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    request.resource_spans.add().scope_spans.add().spans.add(**span_fields)
    return request


# --- payloads_to_arrow ----------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(6))
def test_varied_spans_match_python(seed):
    assert assert_same_table([varied_request(seed).SerializeToString()]).num_rows > 0


def test_every_value_kind():
    request = one_span_request(trace_id=b"\x01" * 16, span_id=b"\x02" * 8)
    span = request.resource_spans[0].scope_spans[0].spans[0]
    for key, value in every_value_kind():
        span.attributes.add(key=key, value=value)
        span.events.add(name="e").attributes.add(key=key, value=value)
        span.links.add(trace_id=b"\x03" * 16).attributes.add(key=key, value=value)
    request.resource_spans[0].resource.attributes.extend(span.attributes)
    assert_same_table([request.SerializeToString()])


def test_empty_request_and_empty_containers():
    assert assert_same_table([b""]).num_rows == 0
    request = ExportTraceServiceRequest()
    request.resource_spans.add().scope_spans.add()
    request.resource_spans.add()
    assert assert_same_table([request.SerializeToString()]).num_rows == 0


def test_bare_span():
    row = assert_same_table([one_span_request().SerializeToString()]).to_pylist()[0]
    assert row["TraceId"] == "" and row["SpanKind"] == "Unspecified" and row["StatusCode"] == "Unset"


def test_service_name_is_the_first_and_rendered():
    request = one_span_request(trace_id=b"\x01" * 16)
    attributes = request.resource_spans[0].resource.attributes
    attributes.add(key="service.name", value=AnyValue(int_value=7))
    attributes.add(key="service.name", value=AnyValue(string_value="second"))
    assert assert_same_table([request.SerializeToString()]).column("ServiceName").to_pylist() == ["7"]


def test_realistic_workload():
    from support.workload import make_request

    assert_same_table([make_request(1500, seed=3).SerializeToString()])


def test_several_payloads_concatenated():
    from support.workload import payloads

    parts = payloads(3, 200, seed=5) + [varied_request(s).SerializeToString() for s in range(3)] + [b""]
    random.Random(1).shuffle(parts)
    table = assert_same_table(parts)
    assert table.num_rows == sum(Traces.from_protobuf(p).span_count() for p in parts)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field (numbers < 16, lengths < 2**21 here)."""
    def varint(n):
        out = bytearray()
        while True:
            out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
            n >>= 7
            if not n:
                return bytes(out)
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def test_repeated_fields_on_the_wire_merge_like_python():
    """A KeyValue whose `value` appears twice: protobuf merges the two AnyValues (arrays append,
    a scalar replaces), and so must the native decoder."""
    first = AnyValue()
    first.array_value.values.add(string_value="a")
    second = AnyValue()
    second.array_value.values.add(int_value=2)
    scalar = AnyValue(string_value="last wins")
    merged_array = KeyValue(key="arr").SerializeToString() + _field(2, first.SerializeToString()) + _field(
        2, second.SerializeToString())
    replaced = _field(1, b"s") + _field(2, first.SerializeToString()) + _field(2, scalar.SerializeToString())
    span = Span(trace_id=b"\x01" * 16, span_id=b"\x02" * 8).SerializeToString()
    span += _field(9, merged_array) + _field(9, replaced)
    request = _field(1, _field(2, _field(2, span)))
    table = assert_same_table([request])
    assert table.column("SpanAttributes").to_pylist()[0] == [("arr", '["a",2]'), ("s", "last wins")]


def test_format_double_parity():
    rng = random.Random(11)
    values = [0.0, -0.0, 1e21, 1e20, 5e-324, -5e-324, 1.25e-07, 0.1, 123456789.125, 1e16, 1e15, 1e-5,
              2.5e-308, 1.7976931348623157e308, -1.7976931348623157e308, 3.0, -2.5, 0.30000000000000004,
              math.nan, -math.nan, math.inf, -math.inf, 2.0 ** 63, 2.0 ** 53 + 2, 1 / 3]
    values += [struct.unpack("<d", rng.getrandbits(64).to_bytes(8, "little"))[0] for _ in range(20000)]
    values += [rng.random() * 10.0 ** rng.randint(-30, 30) for _ in range(10000)]
    values += [float(rng.randint(-(2**60), 2**60)) for _ in range(2000)]
    values += [rng.randint(-10**6, 10**6) / 10 ** rng.randint(0, 9) for _ in range(5000)]
    request = one_span_request()
    span = request.resource_spans[0].scope_spans[0].spans[0]
    for i, value in enumerate(values):
        span.attributes.add(key=str(i), value=AnyValue(double_value=value))
    rendered = [v for _, v in columns.payloads_to_arrow([request.SerializeToString()]).column("SpanAttributes")
                .to_pylist()[0]]
    expected = [format_double(v) for v in values]
    mismatches = [(v, r, e) for v, r, e in zip(values, rendered, expected) if r != e]
    assert not mismatches, mismatches[:10]


@pytest.mark.parametrize("payload", [b"\xff\xff\xff", b"\x0a\x05\x12", _field(1, _field(2, _field(2, _field(5, b"\xff\xfe"))))])
def test_malformed_payload_is_a_permanent_error(payload):
    with pytest.raises(PermanentError):
        Traces.from_protobuf(payload).read()  # the Python decoder agrees it is malformed (parsed on first read)
    with pytest.raises(PermanentError):
        columns.payloads_to_arrow([payload])
    with pytest.raises(ValueError):
        native.scan(payload, 0, 8, 0, 0, 2**64, ())


def test_wrong_wire_type_is_read_in_its_canonical_form():
    """upb reads a known field sent with the wrong wire type as an unknown field; prost refuses
    it. Every stage then reads the batch's canonical bytes (upb's reading, unknown fields dropped),
    made once: the same table, scan, rows and patches as for the well-formed payload."""
    now = time.time_ns()
    span = Span(trace_id=b"\x01" * 16, span_id=b"\x02" * 8, name="kept", start_time_unix_nano=now - HOUR,
                end_time_unix_nano=now)
    span.attributes.add(key="gen_ai.system").value.string_value = "openai"
    payload = _field(1, _field(2, _field(2, span.SerializeToString() + _field(6, b"xy"))))
    assert Traces.from_protobuf(payload).span_count() == 1
    assert assert_same_table([payload]).column("SpanName").to_pylist() == ["kept"]
    with pytest.raises(ValueError):
        native.scan(payload, 0, 8, 0, 0, 2**64, ())
    traces = Traces.from_protobuf(payload)
    assert validation.sanitize(traces, raw=payload) == (0, "") and traces.genai_spans == [0]
    canonical = traces.to_protobuf()
    assert canonical != payload and ExportTraceServiceRequest.FromString(canonical) == traces.read()
    [row] = traces.genai_rows()
    assert row.name == "kept" and row.attributes == {"gen_ai.system": "openai"}
    traces.patch(row, {"gen_ai.provider.name": "openai"})
    assert [kv.key for kv in traces.read().resource_spans[0].scope_spans[0].spans[0].attributes] == [
        "gen_ai.system", "gen_ai.provider.name"]
    fresh = Traces.from_protobuf(payload)  # the rows without the scan's hint, patched at once
    fresh.patch(fresh.genai_rows()[0], {"gen_ai.x": 1})
    assert ExportTraceServiceRequest.FromString(fresh.to_protobuf()).resource_spans[0].scope_spans[0].spans[0].attributes[1].key == "gen_ai.x"


def test_render_errors_propagate():
    def render(raw):
        raise RuntimeError("no")

    request = one_span_request()
    request.resource_spans[0].scope_spans[0].spans[0].attributes.add(key="b", value=AnyValue(bytes_value=b"x"))
    with pytest.raises(RuntimeError):
        native.arrow_columns(request.SerializeToString(), render, columns.COLUMN_NAMES)


def test_columns_come_in_the_order_the_caller_names():
    """The column order is defined once, in Python (`columns.COLUMN_NAMES`); the native side
    builds whatever order it is given, and refuses a name it does not build."""
    payload = varied_request(2).SerializeToString()
    table = columns.payloads_to_arrow([payload])
    names = list(reversed(columns.COLUMN_NAMES))
    rows, buffers = native.arrow_columns(payload, columns._render, names)
    reader = columns._Reader(buffers)
    for name in names:
        assert reader.array(columns.ARROW_SCHEMA.field(name).type, rows).equals(table.column(name).chunk(0)), name
    with pytest.raises(ValueError, match="no column"):
        native.arrow_columns(payload, columns._render, ["Timestamp", "NoSuchColumn"])
    with pytest.raises(ValueError, match="no column"):
        native.arrow_columns(payload, columns._render, ["Timestamp", "Timestamp"])


# --- scan -----------------------------------------------------------------------------------------

HOUR = 3600 * 10**9
CONFIGS = {
    "small": validation.ValidationConfig(max_attribute_value_bytes=64, max_attribute_depth=2, max_span_name_bytes=32),
    "tiny": validation.ValidationConfig(max_attribute_value_bytes=8, max_attribute_depth=1, max_span_name_bytes=4),
    "unlimited": validation.ValidationConfig(max_attribute_value_bytes=0, max_span_name_bytes=0),
    "default": validation.DEFAULT,
}


def _nested(depth: int) -> AnyValue:
    value = AnyValue(string_value="leaf")
    for level in range(depth):
        outer = AnyValue()
        if level % 2:
            outer.kvlist_value.values.add(key="k", value=value)
        else:
            outer.array_value.values.add().CopyFrom(value)
        value = outer
    return value


def _attrs_of(span, rng):
    """The attributes a mutation targets: the span's, an event's or a link's."""
    where = rng.choice(["span", "event", "link"])
    if where == "event":
        return span.events.add(name="ev", time_unix_nano=span.start_time_unix_nano).attributes
    if where == "link":
        return span.links.add(trace_id=b"\x05" * 16, span_id=b"\x06" * 8).attributes
    return span.attributes


def _value_mutation(make_value):
    return lambda span, rng, now: _attrs_of(span, rng).add(key="big", value=make_value(rng))


MUTATIONS = {
    "trace_id.short": lambda s, rng, now: setattr(s, "trace_id", b"\x01" * 15),
    "trace_id.zero": lambda s, rng, now: setattr(s, "trace_id", bytes(16)),
    "trace_id.empty": lambda s, rng, now: s.ClearField("trace_id"),
    "span_id.long": lambda s, rng, now: setattr(s, "span_id", b"\x01" * 9),
    "span_id.zero": lambda s, rng, now: setattr(s, "span_id", bytes(8)),
    "parent.short": lambda s, rng, now: setattr(s, "parent_span_id", b"\x01" * 7),
    "parent.long": lambda s, rng, now: setattr(s, "parent_span_id", b"\x01" * 16),
    "start.zero": lambda s, rng, now: setattr(s, "start_time_unix_nano", 0),
    "start.before_2000": lambda s, rng, now: setattr(s, "start_time_unix_nano", validation.MIN_TIME_NS - 1),
    "end.before_start": lambda s, rng, now: setattr(s, "end_time_unix_nano", s.start_time_unix_nano - 1),
    "end.zero": lambda s, rng, now: setattr(s, "end_time_unix_nano", 0),
    "end.future": lambda s, rng, now: setattr(s, "end_time_unix_nano", now + 400 * 24 * HOUR),
    "both.future": lambda s, rng, now: (setattr(s, "end_time_unix_nano", now + 500 * 24 * HOUR),
                                        setattr(s, "start_time_unix_nano", now + 400 * 24 * HOUR)),
    "start.max": lambda s, rng, now: setattr(s, "start_time_unix_nano", 2**64 - 1),
    "name.long": lambda s, rng, now: setattr(s, "name", "n" * rng.choice([5, 33, 300, 5000])),
    "name.multibyte": lambda s, rng, now: setattr(s, "name", "é" * rng.choice([3, 17, 2049])),
    "string.long": _value_mutation(lambda rng: AnyValue(string_value="x" * rng.choice([7, 9, 62, 63, 65, 300000]))),
    "string.multibyte": _value_mutation(lambda rng: AnyValue(string_value="日" * rng.choice([3, 22, 100000]))),
    "bytes.long": _value_mutation(lambda rng: AnyValue(bytes_value=b"\x00" * rng.choice([7, 9, 63, 65, 300000]))),
    "array": _value_mutation(lambda rng: _nested(1)),
    "kvlist": _value_mutation(lambda rng: _nested(2)),
    "deep": _value_mutation(lambda rng: _nested(rng.choice([3, 9, 12]))),
    "double": _value_mutation(lambda rng: AnyValue(double_value=rng.random() * 1e-300)),
    "int": _value_mutation(lambda rng: AnyValue(int_value=-(2**63))),
    "unset": _value_mutation(lambda rng: AnyValue()),
    "repaired.preclaimed": lambda s, rng, now: s.attributes.add(key=validation.REPAIRED_ATTRIBUTE,
                                                                value=AnyValue(string_value="none")),
}
GENAI_KEYS = ["gen_ai.request.model", "gen_ai.", "llm.token_count.prompt", "llm", "llmx.y", "openinference.span.kind",
              "traceloop.span.kind", "embedding.model_name", "embedding.model_name.x", "embedding.model", "xgen_ai.a",
              "Gen_ai.system", "ünicode.key", "http.method"]


def validation_request(seed: int, now: int) -> tuple[ExportTraceServiceRequest, set[int]]:
    """Spans with none, one or two of MUTATIONS each, and the indices of the mutated ones."""
    rng = random.Random(seed)
    request, mutated, index = ExportTraceServiceRequest(), set(), 0
    for _ in range(rng.randint(1, 4)):
        rs = request.resource_spans.add()
        rs.resource.attributes.add(key="service.name", value=AnyValue(string_value="svc"))
        if rng.random() < 0.3:
            rs.resource.attributes.add(key="res.big", value=rng.choice(
                [AnyValue(string_value="r" * 100), _nested(1), AnyValue(string_value="short")]))
        for _ in range(rng.randint(0, 3)):
            ss = rs.scope_spans.add()
            if rng.random() < 0.3:
                ss.scope.attributes.add(key="scope.big", value=rng.choice(
                    [AnyValue(string_value="s" * 100), _nested(2), AnyValue(int_value=1)]))
            for _ in range(rng.randint(0, 12)):
                span = ss.spans.add(trace_id=rng.getrandbits(128).to_bytes(16, "big") or b"\x01" * 16,
                                    span_id=(rng.getrandbits(64) | 1).to_bytes(8, "big"), name="GET /x",
                                    start_time_unix_nano=now - rng.randint(HOUR, 100 * HOUR))
                span.end_time_unix_nano = span.start_time_unix_nano + rng.randint(0, HOUR)
                if rng.random() < 0.5:
                    span.parent_span_id = (rng.getrandbits(64) | 1).to_bytes(8, "big")
                for key in rng.sample(GENAI_KEYS, rng.randint(0, 3)):
                    span.attributes.add(key=key, value=AnyValue(string_value="v"))
                if rng.random() < 0.5:
                    span.events.add(name="e", time_unix_nano=span.start_time_unix_nano).attributes.add(
                        key="k", value=AnyValue(string_value="v"))
                for name in rng.sample(sorted(MUTATIONS), rng.choice([0, 0, 1, 1, 2])):
                    MUTATIONS[name](span, rng, now)
                    mutated.add(index)
                index += 1
    return request, mutated


def full_walk(message: ExportTraceServiceRequest, cfg) -> None:
    """Validation's drop-or-repair on every span, resource and scope: what the scan must cover."""
    now_ns = time.time_ns()
    max_ns = now_ns + int(cfg.max_future_skew * 1e9)
    for rs in message.resource_spans:
        validation._limit_resource_and_scopes(rs, cfg, True)
        for ss in rs.scope_spans:
            bad = [i for i, span in enumerate(ss.spans) if validation._drop_or_repair(span, cfg, now_ns, max_ns, True)]
            for index in reversed(bad):
                del ss.spans[index]


def python_changes(request: ExportTraceServiceRequest, cfg) -> tuple[set[int], bool]:
    """(indices of spans the Python validation drops or changes, whether a resource/scope changed)."""
    after = copy.deepcopy(request)
    full_walk(after, cfg)
    changed, resources_changed, index = set(), False, 0
    for rs, rs_after in zip(request.resource_spans, after.resource_spans):
        resources_changed |= rs.resource != rs_after.resource
        for ss, ss_after in zip(rs.scope_spans, rs_after.scope_spans):
            resources_changed |= ss.scope != ss_after.scope
            kept = iter(ss_after.spans)
            for span in ss.spans:
                if validation._invalid_reason(span) or span != next(kept):
                    changed.add(index)
                index += 1
    return changed, resources_changed


def genai_candidates(request: ExportTraceServiceRequest) -> list[int]:
    """The normaliser's candidate check (`normalize_traces`), span by span."""
    spans = [span for rs in request.resource_spans for ss in rs.scope_spans for span in ss.spans]
    return [i for i, span in enumerate(spans) if any(kv.key.startswith(GENAI_KEY_PREFIXES) for kv in span.attributes)]


def run_scan(request: ExportTraceServiceRequest, cfg):
    max_ns = time.time_ns() + int(cfg.max_future_skew * 1e9)  # before sanitize's: conservative
    return native.scan(request.SerializeToString(), cfg.max_attribute_value_bytes, cfg.max_attribute_depth,
                       cfg.max_span_name_bytes,
                       validation.MIN_TIME_NS, max_ns, GENAI_KEY_PREFIXES)


@pytest.mark.parametrize("config", sorted(CONFIGS))
@pytest.mark.parametrize("seed", range(12))
def test_scan_flags_every_span_validation_touches(config, seed):
    cfg = CONFIGS[config]
    request, mutated = validation_request(seed, time.time_ns())
    attention, genai, resources, _count = run_scan(request, cfg)
    changed, resources_changed = python_changes(request, cfg)
    assert attention == sorted(set(attention)), "ascending, no duplicates"
    assert changed <= set(attention), sorted(changed - set(attention))
    assert resources or not resources_changed
    if config != "tiny":  # with an 8-byte limit every number is suspect; otherwise clean spans pass
        assert set(attention) <= mutated
    assert genai == genai_candidates(request)


def test_every_mutation_is_flagged_alone():
    now = time.time_ns()
    for name, mutate in MUTATIONS.items():
        for cfg in CONFIGS.values():
            request = one_span_request(trace_id=b"\x01" * 16, span_id=b"\x02" * 8, name="x",
                                       start_time_unix_nano=now - HOUR, end_time_unix_nano=now - 1)
            mutate(request.resource_spans[0].scope_spans[0].spans[0], random.Random(3), now)
            changed, _ = python_changes(request, cfg)
            attention = run_scan(request, cfg)[0]
            assert changed <= set(attention), (name, cfg)


@pytest.mark.parametrize("seed", range(4))
def test_scan_on_varied_and_realistic_spans(seed):
    from support.workload import make_request

    for request in (varied_request(seed), make_request(300, seed=seed)):
        for cfg in CONFIGS.values():
            attention, genai, resources, _count = run_scan(request, cfg)
            changed, resources_changed = python_changes(request, cfg)
            assert changed <= set(attention)
            assert resources or not resources_changed
            assert genai == genai_candidates(request)


def test_scan_time_limits_beyond_u64_clamp():
    request = one_span_request(trace_id=b"\x01" * 16, span_id=b"\x02" * 8, start_time_unix_nano=2**64 - 2,
                               end_time_unix_nano=2**64 - 1)
    assert native.scan(request.SerializeToString(), 0, 8, 0, -5, 2**70, ())[0] == []
    assert native.scan(request.SerializeToString(), 0, 8, 0, 0, 2**64 - 2, ())[0] == [0]


# --- genai_rows and apply_patches -------------------------------------------------------------


def _same_values(left, right) -> bool:
    """Equal with types, NaN equal to NaN (a dict of floats can hold it)."""
    if type(left) is not type(right):
        return False
    if isinstance(left, float) and math.isnan(left):
        return math.isnan(right)
    if isinstance(left, list):
        return len(left) == len(right) and all(_same_values(a, b) for a, b in zip(left, right))
    if isinstance(left, dict):
        return list(left) == list(right) and all(_same_values(left[k], right[k]) for k in left)
    return left == right


ROW_FIELDS = ("index", "name", "trace_id", "span_id", "parent_span_id", "status_code", "start_time_unix_nano",
              "end_time_unix_nano", "status_message", "exception_types")


def _failure(span) -> tuple[str, list[str] | tuple]:
    """A failed span's status description and its exception events' `exception.type` string
    values, last event first, as upb reads them ("" and () for a span that did not fail)."""
    if span.status.code != 2:
        return "", ()
    types = [kv.value.string_value for event in reversed(span.events) if event.name == "exception"
             for kv in event.attributes if kv.key == "exception.type"]
    return span.status.message, types


def python_rows(message: ExportTraceServiceRequest, hint: list[int] | None) -> list[GenAISpan]:
    """The GenAI rows through the protobuf API: the spans at `hint`, or those with a GenAI key."""
    rows, index = [], 0
    for rs in message.resource_spans:
        resource = attributes_to_dict(rs.resource.attributes)
        for ss in rs.scope_spans:
            for span in ss.spans:
                if (index in hint) if hint is not None else any(kv.key.startswith(GENAI_KEY_PREFIXES)
                                                                for kv in span.attributes):
                    rows.append(GenAISpan(index, span.name, span.trace_id, span.span_id, span.parent_span_id,
                                          span.status.code, span.start_time_unix_nano, span.end_time_unix_nano,
                                          attributes_to_dict(span.attributes), resource, *_failure(span)))
                index += 1
    return rows


def assert_rows_like_python(payload: bytes, hint: list[int] | None = None, canonical: bool = False) -> list:
    """Native rows of a payload == the rows read through the protobuf API, field by field; read
    from the received bytes, or (`canonical`) from their canonical form."""
    traces = Traces.from_protobuf(payload)
    traces.genai_spans = hint
    native_rows = traces.genai_rows()
    assert (traces.to_protobuf() is payload) is not canonical, "read from the received bytes unless canonical"
    reference = python_rows(ExportTraceServiceRequest.FromString(payload), hint)
    assert [r.index for r in native_rows] == [r.index for r in reference]
    for fast, ref in zip(native_rows, reference):
        for name in ROW_FIELDS:
            assert getattr(fast, name) == getattr(ref, name), name
        assert _same_values(fast.attributes, ref.attributes)
        assert _same_values(fast.resource, ref.resource)
    return native_rows


def _with_genai_spans(request: ExportTraceServiceRequest) -> ExportTraceServiceRequest:
    """Every third span gets a GenAI key, the first one every kind of value."""
    spans = [span for rs in request.resource_spans for ss in rs.scope_spans for span in ss.spans]
    for i, span in enumerate(spans[::3]):
        span.attributes.add(key="gen_ai.request.model").value.string_value = f"m{i}"
    for key, value in every_value_kind():
        spans[0].attributes.add(key=key).value.CopyFrom(value)
    spans[0].status.code = 2
    return request


@pytest.mark.parametrize("seed", range(4))
def test_genai_rows_read_like_python(seed):
    payload = _with_genai_spans(varied_request(seed)).SerializeToString()
    rows = assert_rows_like_python(payload)
    assert rows and rows[0].status_code == 2
    assert_rows_like_python(payload, [row.index for row in rows])  # the receiver's hint: the same rows
    assert_rows_like_python(payload, [rows[-1].index])  # only the named ones


def test_genai_rows_on_the_realistic_workload():
    from support.workload import make_request

    rows = assert_rows_like_python(make_request(600, seed=3).SerializeToString())
    assert 100 < len(rows) < 600


def test_genai_rows_duplicates_and_values_set_twice_merge_like_python():
    span = Span(name="dup", trace_id=b"\x01" * 16, span_id=b"\x02" * 8)
    for key, value in [("gen_ai.a", 1), ("b", 2), ("gen_ai.a", 3)]:
        span.attributes.add(key=key).value.int_value = value
    kv = span.attributes.add(key="m").value.kvlist_value.values
    kv.add(key="x").value.string_value = "first"
    kv.add(key="x").value.bool_value = True
    request = ExportTraceServiceRequest()
    request.resource_spans.add().scope_spans.add().spans.append(span)
    rows = assert_rows_like_python(request.SerializeToString())
    assert rows[0].attributes == {"gen_ai.a": 3, "b": 2, "m": {"x": True}}
    # A KeyValue whose value field comes twice: protobuf merges the two AnyValues (the second's
    # oneof wins; two arrays concatenate). The wire reader leaves such a span (or resource) to
    # the canonical bytes, where upb has merged them.
    for first, second in [(AnyValue(string_value="a"), AnyValue(int_value=7)),
                          (_array(1, 2), _array(3))]:
        key_value = _field(1, b"gen_ai.k") + _field(2, first.SerializeToString()) + _field(2, second.SerializeToString())
        payload = _field(1, _field(2, _field(2, _field(5, b"s") + _field(9, key_value))))
        assert_rows_like_python(payload, canonical=True)
        resource_value = _field(1, _field(1, _field(1, b"r") + _field(2, first.SerializeToString()) + _field(
            2, second.SerializeToString())))
        payload = _field(1, resource_value + _field(2, _field(2, _field(5, b"s") + _field(9, KeyValue(
            key="gen_ai.x").SerializeToString()))))
        [row] = assert_rows_like_python(payload, canonical=True)
        assert row.resource == {"r": 7 if second.HasField("int_value") else [1, 2, 3]}


def test_genai_rows_read_a_failed_spans_error_sources_like_python():
    """A failed span's status description and its exception events' types (last event first, a
    non-string or missing type as upb reads it); nothing of the kind for a span that did not fail.
    Status set twice merges; an exception.type value set twice goes to the canonical bytes."""
    request = ExportTraceServiceRequest()
    spans = request.resource_spans.add().scope_spans.add().spans
    for i, code in enumerate([2, 2, 1, 0, 2]):
        span = spans.add(name=f"s{i}", trace_id=b"\x01" * 16, span_id=bytes([i + 1]) * 8)
        span.attributes.add(key="gen_ai.operation.name").value.string_value = "chat"
        span.status.code, span.status.message = code, f"RateLimitError: slow down {i}"
        if i != 1:
            span.events.add(name="exception").attributes.add(key="exception.type").value.string_value = "FirstError"
            event = span.events.add(name="log")
            event.attributes.add(key="exception.type").value.string_value = "NotAnException"
            event = span.events.add(name="exception")
            event.attributes.add(key="exception.message").value.string_value = "m"
            event.attributes.add(key="exception.type").value.int_value = 7
            event.attributes.add(key="exception.type").value.string_value = " LastError "
    rows = assert_rows_like_python(request.SerializeToString())
    assert rows[0].exception_types == ["", " LastError ", "FirstError"]
    assert rows[0].status_message == "RateLimitError: slow down 0"
    assert (tuple(rows[1].exception_types), rows[1].status_message) == ((), "RateLimitError: slow down 1")
    assert all((row.status_message, row.exception_types) == ("", ()) for row in rows[2:4])
    # A status field sent twice (protobuf merges them: the later message and code win).
    status_twice = (_field(15, Status(message="first", code=1).SerializeToString())
                    + _field(15, Status(message="second", code=2).SerializeToString()))
    key = KeyValue(key="gen_ai.x").SerializeToString()
    payload = _field(1, _field(2, _field(2, _field(5, b"s") + _field(9, key) + status_twice)))
    [row] = assert_rows_like_python(payload)
    assert (row.status_code, row.status_message) == (2, "second")
    # An exception.type whose value comes twice: left to the canonical bytes, where upb merged them.
    type_twice = _field(1, b"exception.type") + _field(2, AnyValue(string_value="A").SerializeToString()) + _field(
        2, AnyValue(string_value="B").SerializeToString())
    event = _field(2, b"exception") + _field(3, type_twice)
    payload = _field(1, _field(2, _field(2, _field(5, b"s") + _field(9, key) + _field(11, event)
                                         + _field(15, Status(code=2).SerializeToString()))))
    [row] = assert_rows_like_python(payload, canonical=True)
    assert row.exception_types == ["B"]


def _array(*numbers: int) -> AnyValue:
    value = AnyValue()
    for number in numbers:
        value.array_value.values.add(int_value=number)
    return value


def _random_value(rng: random.Random, depth: int = 0):
    kind = rng.choice(["str", "int", "float", "bool", "none", "big", "list", "dict", "tuple", "other"] if depth < 2
                      else ["str", "int", "float", "bool"])
    return {
        "str": lambda: rng.choice(["", "gpt-4o", "é😀", "x" * 300]),
        "int": lambda: rng.choice([0, -1, 2**63 - 1, -(2**63), 12345]),
        "float": lambda: rng.choice([0.0, -2.5e-7, float("inf"), 1e300]),
        "bool": lambda: rng.random() < 0.5,
        "none": lambda: None,
        "big": lambda: 2**40,
        "list": lambda: [_random_value(rng, depth + 1) for _ in range(rng.randrange(3))],
        "tuple": lambda: tuple(_random_value(rng, depth + 1) for _ in range(2)),
        "dict": lambda: {f"k{i}": _random_value(rng, depth + 1) for i in range(rng.randrange(3))},
        "other": lambda: b"raw",  # str(value), as set_any_value does
    }[kind]()


def _random_patches(traces: Traces, rng: random.Random) -> None:
    for row in traces.genai_rows():
        if rng.random() < 0.3:
            continue
        keys = list(row.attributes) + ["gen_ai.new.a", "gen_ai.new.b", "gen_ai.request.model"]
        for _ in range(rng.randrange(1, 3)):  # several patches on one span merge
            to_set = {rng.choice(keys): _random_value(rng) for _ in range(rng.randrange(4))}
            remove = [rng.choice(keys) for _ in range(rng.randrange(3))]
            traces.patch(row, to_set, remove)


def patch_with_protobuf_api(span: Span, to_set: dict, remove: set) -> None:
    """`Traces.patch` through the protobuf API: every `remove` key's attributes go, then each key
    set replaces its last attribute in place or is appended."""
    attributes = span.attributes
    if remove and any(kv.key in remove for kv in attributes):
        kept = [KeyValue(key=kv.key, value=kv.value) for kv in attributes if kv.key not in remove]
        del attributes[:]
        attributes.extend(kept)
    position = {kv.key: i for i, kv in enumerate(attributes)}  # the last of duplicate keys
    for key, value in to_set.items():
        at = position.get(key)
        key_value = attributes.add(key=key) if at is None else attributes[at]
        key_value.ClearField("value")
        if value is not None:  # None: no value field at all (an empty AnyValue reads the same)
            _set_value(key_value.value, value)


def _set_value(target: AnyValue, value) -> None:
    """`set_any_value`, except that a map entry whose value is None has no value field."""
    if isinstance(value, dict):
        target.kvlist_value.SetInParent()
        for key, item in value.items():
            entry = target.kvlist_value.values.add(key=str(key))
            if item is not None:
                _set_value(entry.value, item)
    elif isinstance(value, (list, tuple)):
        target.array_value.SetInParent()
        for item in value:
            _set_value(target.array_value.values.add(), item)
    else:
        set_any_value(target, value)


@pytest.mark.parametrize("seed", range(8))
def test_apply_patches_writes_what_the_protobuf_api_writes(seed):
    from support.workload import make_request

    source = _with_genai_spans(varied_request(seed)) if seed % 2 else make_request(200, seed=seed)
    # a duplicate key to replace (the last one is replaced in place) and an empty span to append to
    first = next(span for rs in source.resource_spans for ss in rs.scope_spans for span in ss.spans)
    first.attributes.add(key="gen_ai.request.model").value.string_value = "again"
    source.resource_spans.add().scope_spans.add().spans.add(name="bare").attributes.add(key="gen_ai.x")
    payload = source.SerializeToString()
    fast = Traces.from_protobuf(payload)
    _random_patches(fast, random.Random(seed))
    assert fast._patches
    slow = ExportTraceServiceRequest.FromString(payload)
    spans = [span for rs in slow.resource_spans for ss in rs.scope_spans for span in ss.spans]
    for index, (to_set, remove) in fast._patches.items():
        patch_with_protobuf_api(spans[index], to_set, remove)
    patched = fast.to_protobuf()
    assert fast._request is None, "patched natively"
    assert ExportTraceServiceRequest.FromString(patched) == slow
    spans = list(Traces.from_protobuf(patched).spans())
    for row in fast.genai_rows():
        assert _same_values(attributes_to_dict(spans[row.index][2].attributes), row.attributes), "rows follow patches"


def test_apply_patches_keeps_unknown_fields_and_other_bytes():
    span = Span(name="llm", trace_id=b"\x01" * 16, span_id=b"\x02" * 8)
    span.attributes.add(key="gen_ai.system").value.string_value = "openai"
    unknown = _field(100, b"future field")
    payload = _field(1, _field(2, _field(2, span.SerializeToString() + unknown) + _field(2, b"\x2a\x01y")))
    traces = Traces.from_protobuf(payload)
    traces.patch(traces.genai_rows()[0], {"gen_ai.provider.name": "openai"}, ["gen_ai.system"])
    patched = traces.to_protobuf()
    assert unknown in patched and patched.endswith(_field(2, b"\x2a\x01y"))
    spans = ExportTraceServiceRequest.FromString(patched).resource_spans[0].scope_spans[0].spans
    assert [(kv.key, kv.value.string_value) for kv in spans[0].attributes] == [("gen_ai.provider.name", "openai")]


def test_patch_refuses_what_otlp_cannot_carry_and_records_nothing():
    traces = Traces.from_protobuf(_with_genai_spans(varied_request(0)).SerializeToString())
    row = traces.genai_rows()[0]
    before = dict(row.attributes)
    for bad in (2**63, [1, -(2**63) - 1], {"k": 2**64}):
        with pytest.raises(ValueError, match="out of range"):
            traces.patch(row, {"gen_ai.usage.input_tokens": 1, "gen_ai.x": bad})
    assert row.attributes == before and not traces._patches


def test_apply_patches_refuses_a_span_that_is_not_there():
    payload = one_span_request(name="x").SerializeToString()
    with pytest.raises(ValueError, match="patch for span 1: the payload has 1 spans"):
        native.apply_patches(payload, [(1, [], {"a": 1})])
    with pytest.raises(ValueError, match="ascending"):
        native.apply_patches(payload, [(0, [], {}), (0, [], {})])
