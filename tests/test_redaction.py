"""The `redaction` processor: configured personal data and secrets never reach the store."""

from __future__ import annotations

import base64
import binascii
import json

import pytest

from collector.component import ComponentId
from collector.pdata import Traces, get_attribute
from support.harness import CollectorProcess
from support.otlp_load import http_send, make_request
from support.sinks import Sink
from processors.redaction import RedactionConfig, RedactionProcessor, Redactor

pytestmark = pytest.mark.timeout(120)


def _redact(text: str, **config) -> tuple[str, dict]:
    found: dict = {}
    return Redactor(RedactionConfig.model_validate(config)).redact(text, found), found


@pytest.mark.parametrize("text, kind", [
    ("write to jane.doe+billing@example.co.uk today", "email"),
    ("call +44 20 7946 0958", "phone"),
    ("call (415) 555-0100", "phone"),
    ("call 415-555-0100", "phone"),
    ("card 4111 1111 1111 1111 exp 12/29", "card_number"),
    ("card 5500-0000-0000-0004", "card_number"),
    ("OPENAI_API_KEY=sk-proj-Abcdefghijklmnopqrstuvwx1234", "api_key"),
    ("anthropic sk-ant-api03-abcdefghijklmnopqrstuvwxyz", "api_key"),
    ("aws AKIAIOSFODNN7EXAMPLE", "api_key"),
    ("gh ghp_abcdefghijklmnopqrstuvwxyz0123456789", "api_key"),
    ('{"api_key": "live_51Habcdef"}', "api_key"),
    ("Authorization: Bearer eyJhbGciOi.abc-def_ghi", "bearer_token"),
    ("jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U", "bearer_token"),
])
def test_builtin_detectors(text, kind):
    masked, found = _redact(text)
    assert kind in found, (masked, found)
    assert f"[REDACTED:{kind}]" in masked


@pytest.mark.parametrize("text", [
    "used 1234 input tokens and 567 output tokens",
    "trace 0af7651916cd43dd8448eb211c80319c span b7ad6b7169203331",
    "at 2024-05-01T12:30:45Z, version 1.2.3.4, uuid 550e8400-e29b-41d4-a716-446655440000",
    "order 4111111111111112 fails the Luhn check",
    "cost $0.000123 per 1000 tokens; id 20240501123045",
])
def test_no_false_positives_on_ordinary_numbers(text):
    masked, found = _redact(text)
    assert masked == text and not found


_FRAGMENTS = ["write to jane.doe@example.com", "call +44 20 7946 0958", "(415) 555-0100", "4111 1111 1111 1111",
              "sk-proj-Abcdefghijklmnopqrstuvwx1234", "AKIAIOSFODNN7EXAMPLE", "API_KEY = 'live_51Habcdef'",
              "PASSWORD: hunter2hunter2", "Bearer abcdefgh12345", "eyJhbGciOi.eyJzdWIiOi.sig", "the weather is fine",
              "paſſword=abcdefghij", "apı_key: abcdefghijk", "٣٣٣-٣٣٣-٣٣٣٣", "ΑΚΙΑ", "é", " ", "\n", '"', ":", "=",
              "4111.1111.1111.1111", "3782 822463 10005", "4111", "1111", ".", "-", "+", "(", "5", "415.555.0100",
              "AWS_SECRET_ACCESS_KEY=", "x-api-key: ", "Cookie: ", "\"token\": \"", "Basic ", "[REDACTED:x]"]


def test_skipping_hopeless_regexes_changes_nothing():
    """The cheap pre-check (strings every match contains) never skips a regex that would match:
    redaction with it equals redaction without it, over random texts, Unicode included."""
    import random

    fast = Redactor(RedactionConfig())
    slow = Redactor(RedactionConfig())
    slow.rules = [rule[:4] + (None,) for rule in slow.rules]
    rng = random.Random(7)
    for _ in range(3000):
        text = "".join(rng.choice(_FRAGMENTS) for _ in range(rng.randrange(1, 6)))
        found_fast: dict = {}
        found_slow: dict = {}
        assert fast.redact(text, found_fast) == slow.redact(text, found_slow), text
        assert found_fast == found_slow


def test_json_content_stays_valid_json():
    messages = [{"role": "user", "parts": [{"type": "text", "content": 'mail a@b.io, key api_key="abcd1234efgh", tel +1 415 555 0100'}]}]
    masked, found = _redact(json.dumps(messages))
    parsed = json.loads(masked)
    assert parsed[0]["parts"][0]["content"] == 'mail [REDACTED:email], key api_key="[REDACTED:api_key]", tel [REDACTED:phone]'
    assert found == {"email": 1, "api_key": 1, "phone": 1}


def test_custom_patterns_and_secret_group():
    masked, found = _redact("ssn 123-45-6789, case TICKET-991 pin=8812", builtin=[], patterns=[
        {"name": "ssn", "regex": r"\b\d{3}-\d{2}-\d{4}\b"},
        {"name": "ticket", "regex": r"TICKET-\d+"},
        {"name": "pin", "regex": r"pin=(?P<secret>\d+)"},
    ])
    assert masked == "ssn [REDACTED:ssn], case [REDACTED:ticket] pin=[REDACTED:pin]"
    assert found == {"ssn": 1, "ticket": 1, "pin": 1}


def test_config_errors_are_clear():
    with pytest.raises(ValueError, match="unknown detector"):
        RedactionConfig.model_validate({"builtin": ["passport"]})
    with pytest.raises(ValueError, match="invalid regular expression"):
        RedactionConfig.model_validate({"patterns": [{"name": "x", "regex": "("}]})
    with pytest.raises(ValueError, match="quotes"):
        RedactionConfig.model_validate({"replacement": '"x"'})


def _span_with_content():
    request, _ = make_request(1, attrs={
        "gen_ai.input.messages": json.dumps([{"role": "user", "content": "I am bob@corp.com"}]),
        "gen_ai.request.model": "gpt-4o",                        # not content: left alone
        "user.email_hint": "bob@corp.com",                       # not a content key: left alone by default
        "llm.input_messages.0.message.content": "card 4111-1111-1111-1111",  # OpenInference dialect
    })
    span = request.resource_spans[0].scope_spans[0].spans[0]
    event = span.events.add(name="gen_ai.user.message")
    event.attributes.add(key="content").value.string_value = "reach me at +1 (415) 555-0100"
    nested = span.attributes.add(key="gen_ai.output.messages").value
    nested.array_value.values.add().kvlist_value.values.add(key="content").value.string_value = "token sk-abcdefghijklmnopqrstu"
    return request, span


def test_processor_masks_content_keys_events_and_nested_values():
    """`all_attributes: false`: only the content keys (and gen_ai.* events) are scanned."""
    sink = Sink()
    processor = RedactionProcessor(ComponentId("redaction"), RedactionConfig(all_attributes=False), sink)
    request, span = _span_with_content()
    processor.consume(Traces(request))
    attrs = {kv.key: kv for kv in span.attributes}
    assert "bob@corp.com" not in attrs["gen_ai.input.messages"].value.string_value
    assert attrs["user.email_hint"].value.string_value == "bob@corp.com"
    assert attrs["gen_ai.request.model"].value.string_value == "gpt-4o"
    assert attrs["llm.input_messages.0.message.content"].value.string_value == "card [REDACTED:card_number]"
    assert span.events[0].attributes[0].value.string_value == "reach me at [REDACTED:phone]"
    nested = attrs["gen_ai.output.messages"].value.array_value.values[0].kvlist_value.values[0].value.string_value
    assert nested == "token [REDACTED:api_key]"
    assert get_attribute(span.attributes, "redaction.masked.count") == 4
    assert get_attribute(span.attributes, "redaction.masked.types") == "api_key,card_number,email,phone"


def test_a_batch_with_nothing_to_mask_keeps_its_bytes_and_a_masked_one_is_serialized_again():
    processor = RedactionProcessor(ComponentId("redaction"), RedactionConfig(), Sink())
    clean = make_request(3, attrs={"gen_ai.request.model": "gpt-4o", "db.statement": "SELECT 1"})[0]
    payload = clean.SerializeToString()
    traces = Traces.from_protobuf(payload)
    assert processor.process(traces).to_protobuf() is payload  # not re-serialized
    request, _ = _span_with_content()
    payload = request.SerializeToString()
    masked = processor.process(Traces.from_protobuf(payload)).to_protobuf()
    assert masked != payload and b"bob@corp.com" not in masked and b"[REDACTED:api_key]" in masked


def test_all_attributes_mode():
    """The default: every attribute is scanned, not only the content keys."""
    assert RedactionConfig().all_attributes
    sink = Sink()
    processor = RedactionProcessor(ComponentId("redaction"), RedactionConfig(all_attributes=True), sink)
    request, span = _span_with_content()
    processor.consume(Traces(request))
    assert get_attribute(span.attributes, "user.email_hint") == "[REDACTED:email]"


def test_nothing_unmasked_reaches_the_store(tmp_path):
    processors = """
  redaction:
    patterns:
      - {name: ssn, regex: '\\b\\d{3}-\\d{2}-\\d{4}\\b'}
"""
    collector = CollectorProcess(tmp_path, processors="memory_limiter, redaction, batch", extra_processors_yaml=processors).start()
    try:
        request, span = _span_with_content()
        span.name = "redacted-e2e"
        span.attributes.add(key="gen_ai.system_instructions").value.string_value = "customer ssn 123-45-6789"
        assert http_send(collector.http_url, request).status_code == 200
        collector.wait_for_rows("SELECT count() AS n FROM otel.otel_traces WHERE SpanName = 'redacted-e2e'", lambda r: r[0]["n"] == 1)
        dump = json.dumps(collector.query(
            "SELECT SpanAttributes AS a, Events.Attributes AS e FROM otel.otel_traces WHERE SpanName = 'redacted-e2e'"))
    finally:
        collector.stop()
    for secret in ("I am bob@corp.com", "4111-1111-1111-1111", "555-0100", "sk-abcdefghijklmnopqrstu", "123-45-6789"):
        assert secret not in dump
    assert "[REDACTED:ssn]" in dump and "[REDACTED:email]" in dump


# --- everywhere a client can put a value ------------------------------------------------------

@pytest.mark.parametrize("text", ["card 4111.1111.1111.1111 on file", "card 4111 1111 1111 1111", "amex 3782 822463 10005",
                                  "card 4111-1111-1111-1111.", "pan 4111111111111111"])
def test_card_numbers_with_spaces_dots_or_dashes(text):
    masked, found = _redact(text)
    assert found == {"card_number": 1} and "[REDACTED:card_number]" in masked


@pytest.mark.parametrize("text", ["ts 1714566645.123456789", "v1.4111.1111.1111.1111", "4111.1111.1111.1112",
                                  "4111 1111-1111 1111", "ip 10.100.200.250"])
def test_dotted_numbers_that_are_not_cards(text):
    masked, found = _redact(text)
    assert "card_number" not in found, (masked, found)


@pytest.mark.parametrize("key", ["aws_secret_access_key", "password", "authorization", "api_key", "token", "secret", "cookie",
                                 "http.request.header.authorization", "db.Password", "AWS_SECRET_ACCESS_KEY",
                                 "x-api-key", "env.OPENAI_API_KEY", "github_access_token", "set-cookie", "client_secret"])
def test_secrets_known_by_key_are_replaced_whatever_the_value(key):
    request, _ = make_request(1)
    span = request.resource_spans[0].scope_spans[0].spans[0]
    span.attributes.add(key=key).value.string_value = "plain-looking-value"
    span.attributes.add(key="numbers." + key).value.int_value = 12345678
    span.attributes.add(key="gen_ai.usage.input_tokens").value.int_value = 42
    RedactionProcessor(ComponentId("redaction"), RedactionConfig(), Sink()).consume(Traces(request))
    assert get_attribute(span.attributes, key) == "[REDACTED:secret]"
    assert get_attribute(span.attributes, "numbers." + key) == "[REDACTED:secret]"
    assert get_attribute(span.attributes, "gen_ai.usage.input_tokens") == 42
    assert "secret" in get_attribute(span.attributes, "redaction.masked.types")


def test_configured_secret_keys_add_to_the_list():
    request, _ = make_request(1)
    span = request.resource_spans[0].scope_spans[0].spans[0]
    span.attributes.add(key="app.X-Internal-Signature").value.string_value = "abc"
    span.attributes.add(key="app.signature_note").value.string_value = "abc"
    RedactionProcessor(ComponentId("redaction"), RedactionConfig(secret_keys=["x-internal-signature"]), Sink()).consume(Traces(request))
    assert get_attribute(span.attributes, "app.X-Internal-Signature") == "[REDACTED:secret]"
    assert get_attribute(span.attributes, "app.signature_note") == "abc"


def _canary_request(tag: str = "unit"):
    """One span with personal data and secrets in every place OTLP has for a value."""
    request, _ = make_request(1)
    rs = request.resource_spans[0]
    rs.resource.attributes.add(key="host.owner").value.string_value = f"resource.{tag}@example.com"
    rs.resource.attributes.add(key="deployment.password").value.string_value = f"resource-pw-{tag}"
    scope = rs.scope_spans[0].scope
    scope.name, scope.version = "canary-scope", "1.0"
    scope.attributes.add(key="scope.contact").value.string_value = f"scope.{tag}@example.com"
    span = rs.scope_spans[0].spans[0]
    span.name = f"canary-{tag}"
    span.attributes.add(key="user.note").value.string_value = f"mail span.{tag}@example.com"
    array = span.attributes.add(key="user.list").value.array_value
    array.values.add().string_value = "first item"
    array.values.add().string_value = f"card 4111.1111.1111.1111 {tag}"
    kvlist = span.attributes.add(key="user.profile").value.kvlist_value
    kvlist.values.add(key="phone").value.string_value = "+44 20 7946 0958"
    kvlist.values.add(key="cookie").value.string_value = f"session-cookie-{tag}"
    inner = kvlist.values.add(key="nested").value.kvlist_value.values.add(key="deep")
    inner.value.array_value.values.add().string_value = f"deep.{tag}@example.com"
    span.attributes.add(key="http.request.header.authorization").value.array_value.values.add().string_value = f"Basic dXNlcjpwYXNz{tag}"
    span.attributes.add(key="aws_secret_access_key").value.string_value = f"wJalrXUtnFEMIK7MDENGbPxRfiCY{tag}"
    span.attributes.add(key="payload.text").value.bytes_value = f"bytes.{tag}@example.com".encode()
    span.attributes.add(key="payload.blob").value.bytes_value = b"\xff\xfe\x00binary-" + tag.encode()
    span.status.code = 2
    span.status.message = f"failed for status.{tag}@example.com with key sk-proj-Abcdefghijklmnopqrstuvwx{tag}"
    exception = span.events.add(name="exception", time_unix_nano=span.start_time_unix_nano)
    exception.attributes.add(key="exception.type").value.string_value = "ValueError"
    exception.attributes.add(key="exception.message").value.string_value = f"bad card 4111 1111 1111 1111 for exc.{tag}@example.com"
    exception.attributes.add(key="exception.stacktrace").value.string_value = f'File "x.py", line 1\n  password="hunter2-{tag}-xyz"'
    event = span.events.add(name="note", time_unix_nano=span.start_time_unix_nano)
    event.attributes.add(key="token").value.string_value = f"event-token-{tag}"
    link = span.links.add(trace_id=bytes(range(16)), span_id=bytes(range(8)))
    link.attributes.add(key="linked.by").value.string_value = f"link.{tag}@example.com"
    link.attributes.add(key="api_key").value.string_value = f"link-key-{tag}"
    return request


def _canaries(tag: str) -> list[str]:
    return [f"resource.{tag}@example.com", f"resource-pw-{tag}", f"span.{tag}@example.com", "4111.1111.1111.1111",
            "7946 0958", f"session-cookie-{tag}", f"deep.{tag}@example.com", f"dXNlcjpwYXNz{tag}",
            f"wJalrXUtnFEMIK7MDENGbPxRfiCY{tag}", f"bytes.{tag}@example.com", f"binary-{tag}", f"status.{tag}@example.com",
            f"Abcdefghijklmnopqrstuvwx{tag}", "4111 1111 1111 1111", f"exc.{tag}@example.com", f"hunter2-{tag}",
            f"event-token-{tag}", f"link.{tag}@example.com", f"link-key-{tag}"]


def test_every_location_is_redacted_in_process():
    request = _canary_request()
    RedactionProcessor(ComponentId("redaction"), RedactionConfig(), Sink()).consume(Traces(request))
    dump = str(request)  # text format: every field, bytes escaped
    for canary in _canaries("unit") + ["scope.unit@example.com"]:
        assert canary not in dump, canary
    span = request.resource_spans[0].scope_spans[0].spans[0]
    assert [e.name for e in span.events] == ["exception", "note"]  # names stay
    assert get_attribute(span.attributes, "payload.text") == base64.b64encode(b"[REDACTED:email]").decode()
    assert get_attribute(span.attributes, "payload.blob") == "[REDACTED:bytes]"
    assert span.status.message.startswith("failed for [REDACTED:email] with key [REDACTED:api_key]")
    assert get_attribute(span.events[0].attributes, "exception.type") == "ValueError"
    assert set(get_attribute(span.attributes, "redaction.masked.types").split(",")) == {
        "api_key", "bytes", "card_number", "email", "phone", "secret"}


def _stored_text(rows: list[dict]) -> str:
    """Every stored value as text, with each base64-looking string also decoded (bytes values are
    stored as base64: a canary inside one must be found too)."""
    parts = []

    def walk(value):
        if isinstance(value, dict):
            for key, item in value.items():
                walk(key)
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)
        else:
            text = str(value)
            parts.append(text)
            try:
                parts.append(base64.b64decode(text, validate=True).decode("utf-8", "replace"))
            except (ValueError, binascii.Error):
                pass

    walk(rows)
    return "\n".join(parts)


def test_canaries_in_every_location_never_reach_any_stored_column(tmp_path):
    """A real OTLP request through a real collector process (HTTP protobuf and gRPC), then every
    column of every stored row is read back through SQL and searched for each canary."""
    from support.otlp_load import grpc_send

    collector = CollectorProcess(tmp_path, processors="memory_limiter, redaction, batch", extra_processors_yaml="  redaction: {}").start()
    try:
        assert http_send(collector.http_url, _canary_request("http")).status_code == 200
        ok, answer, _ = grpc_send(collector.grpc_endpoint, _canary_request("grpc"))
        assert ok, answer
        collector.wait_for_rows("SELECT count() AS n FROM otel.otel_traces WHERE SpanName LIKE 'canary-%'", lambda r: r[0]["n"] == 2)
        # every column, MATERIALIZED and ALIAS ones too (SELECT * leaves those out)
        columns = [row["name"] for row in collector.query("SELECT name FROM system.columns WHERE database = 'otel' AND table = 'otel_traces'")]
        rows = collector.query(f"SELECT {', '.join(f'`{c}`' for c in columns)} FROM otel.otel_traces WHERE SpanName LIKE 'canary-%'")
    finally:
        collector.stop()
    assert len(columns) >= 20 and set(rows[0]) == set(columns)
    stored = _stored_text(rows)
    for tag in ("http", "grpc"):
        for canary in _canaries(tag):
            assert canary not in stored, canary
    assert {"canary-http", "canary-grpc"} == {row["SpanName"] for row in rows}
    for row in rows:  # masked in place, the rest of each value kept
        assert row["ResourceAttributes"]["host.owner"] == "[REDACTED:email]"
        assert row["ResourceAttributes"]["deployment.password"] == "[REDACTED:secret]"
        assert row["SpanAttributes"]["user.note"] == "mail [REDACTED:email]"
        assert row["SpanAttributes"]["aws_secret_access_key"] == "[REDACTED:secret]"
        assert row["SpanAttributes"]["payload.blob"] == "[REDACTED:bytes]"
        assert row["StatusMessage"].startswith("failed for [REDACTED:email] with key [REDACTED:api_key]")
        assert row["Events.Name"] == ["exception", "note"]
        assert row["Events.Attributes"][0]["exception.message"] == "bad card [REDACTED:card_number] for [REDACTED:email]"
        assert row["Events.Attributes"][1]["token"] == "[REDACTED:secret]"
        assert row["Links.Attributes"][0] == {"linked.by": "[REDACTED:email]", "api_key": "[REDACTED:secret]"}


@pytest.mark.parametrize("text, secret", [
    ("AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "wJalrXUtnFEMI"),
    ('{"password": "correct horse battery"}', "correct horse"),
    ('{\\"db_password\\": \\"hunter2\\"}', "hunter2"),
    ("Authorization: Basic dXNlcjpwYXNzd29yZA==", "dXNlcjpwYXNzd29yZA"),
    ("GET /callback?access_token=ya29.a0AfH6SMB&state=1", "ya29.a0AfH6SMB"),
    ("Cookie: sessionid=8f14e45fceea167a5a36", "8f14e45fceea167a5a36"),
    ("x-api-key: 0123456789abcdef", "0123456789abcdef"),
])
def test_secrets_assigned_to_a_secret_key_name_in_text(text, secret):
    masked, found = _redact(text)
    assert secret not in masked and found, masked


def test_secret_name_needles_cover_every_secret_key_name():
    """The pre-check's strings must be in every name the assignment detector knows, or the fast
    path would skip texts it should search."""
    from collector.secretkeys import SECRET_KEY_NAMES, SECRET_KEY_SUFFIXES
    from processors.redaction import _SECRET_NAME_NEEDLES

    for name in {*SECRET_KEY_NAMES, *(s.lstrip("_") for s in SECRET_KEY_SUFFIXES)}:
        assert any(needle in name.replace("_", "-") or needle in name for needle in _SECRET_NAME_NEEDLES), name
