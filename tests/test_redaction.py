"""The `redaction` processor: configured personal data and secrets never reach the store."""

from __future__ import annotations

import json

import pytest

from collector.component import ComponentId
from collector.pdata import Traces, get_attribute
from harness import CollectorProcess
from otlp_load import http_send, make_request
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
              "4111.1111.1111.1111", "3782 822463 10005", "4111", "1111", ".", "-", "+", "(", "5", "415.555.0100"]


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


class _Sink:
    def consume(self, traces):
        self.traces = traces


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
    sink = _Sink()
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


def test_all_attributes_mode():
    """The default: every attribute is scanned, not only the content keys."""
    assert RedactionConfig().all_attributes
    sink = _Sink()
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
