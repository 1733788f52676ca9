"""Attribute values rendered as the contrib exporter renders them, and OTLP/JSON id handling."""

import pytest

from collector.component import PermanentError
from collector.pdata import AnyValue, any_value_to_str, decode_otlp_json, format_double


@pytest.mark.parametrize("number, text", [
    (1.25e-7, "0.000000125"),  # a per-token price: must never render as "0"
    (3.9e-05, "0.000039"),
    (0.25, "0.25"),
    (3.0, "3"),
    (1e22, "10000000000000000000000"),
    (-2.5e-10, "-0.00000000025"),
    (float("nan"), "NaN"),
    (float("inf"), "+Inf"),
])
def test_doubles_render_like_go_formatfloat(number, text):
    assert format_double(number) == text
    assert any_value_to_str(AnyValue(double_value=number)) == text


def test_composite_values_render_as_json():
    value = AnyValue()
    value.array_value.values.add(string_value="a")
    value.array_value.values.add(int_value=2)
    assert any_value_to_str(value) == '["a",2]'
    assert any_value_to_str(AnyValue(bool_value=False)) == "false"
    assert any_value_to_str(AnyValue()) == ""


def test_json_ids_are_hex_and_bad_ids_are_named():
    request = decode_otlp_json(b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"000102030405060708090a0b0c0d0e0f",'
                               b'"spanId":"0001020304050607","name":"x"}]}]}]}')
    span = request.resource_spans[0].scope_spans[0].spans[0]
    assert span.trace_id.hex() == "000102030405060708090a0b0c0d0e0f" and span.span_id.hex() == "0001020304050607"
    with pytest.raises(PermanentError, match=r"spans\[0\]\.spanId: expected 16 hex characters"):
        decode_otlp_json(b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"spanId":"abc"}]}]}]}')
    with pytest.raises(PermanentError, match="not a hex id"):
        decode_otlp_json(b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"spanId":"zzzzzzzzzzzzzzzz"}]}]}]}')
    with pytest.raises(PermanentError, match="malformed OTLP/JSON"):
        decode_otlp_json(b'{"resourceSpans": [')


def _batch(names: list[str], genai: list[int] | None):
    from collector.pdata import ExportTraceServiceRequest, Traces

    request = ExportTraceServiceRequest()
    spans = request.resource_spans.add().scope_spans.add().spans
    for name in names:
        spans.add(name=name, trace_id=b"t" * 16, span_id=b"s" * 8)
    traces = Traces(request)
    traces.genai_spans = genai
    return traces


def test_merge_concatenates_and_keeps_the_genai_hint_in_order():
    from collector.pdata import ExportTraceServiceRequest, Traces

    parts = [_batch(["a", "b"], [1]), _batch(["c"], []), _batch(["d", "e", "f"], [0, 2])]
    expected = ExportTraceServiceRequest()
    for part in parts:
        expected.resource_spans.extend(part.request.resource_spans)
    merged = Traces.merge(parts)
    assert merged.span_count() == 6 and merged.genai_spans == [1, 3, 5]
    assert merged.to_protobuf() == expected.SerializeToString()  # served from the concatenation
    assert merged.serialized_size() == len(expected.SerializeToString())
    assert parts[0].serialized_size() == len(parts[0].to_protobuf())
    assert [span.name for _, _, span in merged.spans()] == list("abcdef")
    merged.request.resource_spans[0].scope_spans[0].spans[0].name = "changed"  # parsed, then edited
    assert ExportTraceServiceRequest.FromString(merged.to_protobuf()).resource_spans[0].scope_spans[0].spans[0].name == "changed"
    assert Traces.merge([_batch(["a"], [0]), _batch(["b"], None)]).genai_spans is None  # one unknown: unknown


def test_spans_at_finds_spans_across_scopes_without_visiting_others():
    from collector.pdata import Traces

    merged = Traces.merge([_batch(["a", "b"], None), _batch([], None), _batch(["c", "d", "e"], None)])
    found = [ss.spans[index].name for ss, index in merged.spans_at([0, 2, 4])]
    assert found == ["a", "c", "e"] and list(merged.spans_at([])) == []


# --- the forms of a batch and the conversions between them -------------------------------------


def _genai_payload() -> bytes:
    from collector.pdata import ExportTraceServiceRequest

    request = ExportTraceServiceRequest()
    spans = request.resource_spans.add().scope_spans.add().spans
    spans.add(name="llm", trace_id=b"t" * 16, span_id=b"s" * 8).attributes.add(key="gen_ai.system").value.string_value = "openai"
    spans.add(name="db", trace_id=b"t" * 16, span_id=b"u" * 8).attributes.add(key="db.system").value.string_value = "pg"
    return request.SerializeToString()


def test_reading_keeps_the_received_bytes():
    """Reading the message, the GenAI rows, the count and the size leaves the bytes as received."""
    from collector.pdata import Traces

    payload = _genai_payload()
    traces = Traces.from_protobuf(payload)
    assert [span.name for _, _, span in traces.spans()] == ["llm", "db"]
    assert traces.read().resource_spans[0].scope_spans[0].spans[1].name == "db"
    assert [row.name for row in traces.genai_rows()] == ["llm"]
    assert traces.span_count() == 2 and traces.serialized_size() == len(payload)
    assert traces.to_protobuf() is payload


def test_edit_gives_the_bytes_up_by_name_and_to_protobuf_serializes_once():
    from collector.pdata import ExportTraceServiceRequest, Traces

    payload = _genai_payload()
    traces = Traces.from_protobuf(payload)
    traces.edit().resource_spans[0].scope_spans[0].spans[1].name = "changed"
    serialized = traces.to_protobuf()
    assert serialized is not payload and traces.to_protobuf() is serialized  # once, then shared
    assert traces.serialized_size() == len(serialized)
    assert ExportTraceServiceRequest.FromString(serialized).resource_spans[0].scope_spans[0].spans[1].name == "changed"
    assert [row.name for row in traces.genai_rows()] == ["llm"]  # rows read again, from the new bytes


def test_patches_are_written_into_the_bytes_before_any_other_form_is_read():
    from collector.pdata import ExportTraceServiceRequest, Traces, attributes_to_dict

    traces = Traces.from_protobuf(_genai_payload())
    row = traces.genai_rows()[0]
    traces.patch(row, {"gen_ai.provider.name": "openai"}, ["gen_ai.system"])
    expected = {"gen_ai.provider.name": "openai"}
    assert row.attributes == expected
    assert attributes_to_dict(traces.read().resource_spans[0].scope_spans[0].spans[0].attributes) == expected
    traces.patch(row, {"gen_ai.x": 1})
    message = ExportTraceServiceRequest.FromString(traces.to_protobuf())
    assert attributes_to_dict(message.resource_spans[0].scope_spans[0].spans[0].attributes) == {**expected, "gen_ai.x": 1}


def test_canonical_protobuf_drops_what_upb_keeps_as_unknown_and_refuses_garbage():
    from collector.pdata import ExportTraceServiceRequest, canonical_protobuf

    payload = _genai_payload() + b"\xa2\x06\x02hi"  # field 100, length-delimited: unknown to both
    canonical = canonical_protobuf(payload)
    assert canonical == _genai_payload()
    assert ExportTraceServiceRequest.FromString(canonical).resource_spans[0].scope_spans[0].spans[0].name == "llm"
    with pytest.raises(PermanentError, match="malformed OTLP protobuf"):
        canonical_protobuf(b"\xff\xff\xff")


def test_edit_if_gives_the_bytes_up_only_when_the_change_says_so():
    from collector.pdata import Traces

    payload = _genai_payload()
    traces = Traces.from_protobuf(payload)
    assert traces.edit_if(lambda message: False) is False and traces.to_protobuf() is payload

    def rename(message) -> bool:
        message.resource_spans[0].scope_spans[0].spans[0].name = "renamed"
        return True

    assert traces.edit_if(rename) is True
    assert traces.to_protobuf() != payload and [row.name for row in traces.genai_rows()] == ["renamed"]


def test_logs_keep_their_received_bytes_until_edited():
    """Logs have the forms of Traces: read() and an edit_if that changes nothing keep the received
    bytes (no re-serialization); edit() gives them up; sanitize gives them up only to drop records."""
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

    from collector.plogs import Logs, sanitize

    message = ExportLogsServiceRequest()
    records = message.resource_logs.add().scope_logs.add().log_records
    records.add(trace_id=b"\x01" * 16, span_id=b"\x02" * 8).body.string_value = "kept"
    received = message.SerializeToString()
    logs = Logs.from_protobuf(received)
    assert logs.read().resource_logs[0].scope_logs[0].log_records[0].body.string_value == "kept"
    assert not logs.edit_if(lambda m: False)
    assert sanitize(logs) == (0, "")
    assert logs.to_protobuf() is not None and logs.to_protobuf() == received and logs.record_count() == 1
    logs.edit().resource_logs[0].scope_logs[0].log_records.add(trace_id=b"\x00" * 16)
    dropped, reason = sanitize(logs)
    assert (dropped, logs.record_count()) == (1, 1) and "trace_id" in reason
    assert Logs.from_protobuf(logs.to_protobuf()).record_count() == 1
    assert not hasattr(Logs, "request")  # no property that silently drops the bytes
