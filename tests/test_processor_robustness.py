"""One span with odd attribute types must not fail its batch: the others are still normalised and priced."""

import pytest

from collector.component import ComponentId
from collector.pdata import Traces, attributes_to_dict, set_any_value
from processors.genai_cost import GenAICostConfig, GenAICostProcessor
from processors.genai_normalizer import GenAINormalizerConfig, GenAINormalizerProcessor
from support.sinks import Sink

GOOD = {"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o", "gen_ai.provider.name": "openai",
        "gen_ai.usage.input_tokens": 1000, "gen_ai.usage.output_tokens": 100}


@pytest.mark.parametrize("odd", [
    {"gen_ai.operation.name": ["chat", "x"], "gen_ai.request.model": "gpt-4o"},
    {"gen_ai.operation.name": "chat", "gen_ai.request.model": ["gpt-4o"], "gen_ai.usage.input_tokens": "lots"},
    {"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": {"a": 1},
     "gen_ai.usage.output_tokens": [1]},
    {"openinference.span.kind": "LLM", "llm.model_name": 5, "llm.token_count.prompt": "x"},
])
def test_odd_span_does_not_fail_the_batch(odd):
    sink = Sink()
    pipeline = GenAINormalizerProcessor(ComponentId("genai_normalizer"), GenAINormalizerConfig(),
                                        GenAICostProcessor(ComponentId("genai_cost"), GenAICostConfig(), sink))
    traces = Traces()
    scope = traces.request.resource_spans.add().scope_spans.add()
    for span_id, attrs in ((b"\x01" * 8, odd), (b"\x02" * 8, GOOD)):
        span = scope.spans.add(trace_id=b"\x07" * 16, span_id=span_id, name="chat", start_time_unix_nano=1)
        for key, value in attrs.items():
            set_any_value(span.attributes.add(key=key).value, value)
    pipeline.consume(traces)
    odd_out, good_out = (attributes_to_dict(s.attributes) for s in sink.traces.request.resource_spans[0].scope_spans[0].spans)
    # gpt-4o: $2.50 / $10 per M tokens
    assert good_out["gen_ai.usage.cost_usd"] == pytest.approx(1000 * 2.5e-6 + 100 * 10e-6)
    assert "gen_ai.usage.cost_usd" not in odd_out or odd_out["gen_ai.usage.cost_usd"] > 0  # never a fake $0
    if odd_out.get("genaitrace.cost.status") == "unpriced":
        assert odd_out["genaitrace.cost.unpriced_reason"]


def test_failed_call_without_usage_is_unpriced_with_its_own_reason():
    sink = Sink()
    cost = GenAICostProcessor(ComponentId("genai_cost"), GenAICostConfig(), sink)
    traces = Traces()
    scope = traces.request.resource_spans.add().scope_spans.add()
    span = scope.spans.add(trace_id=b"\x07" * 16, span_id=b"\x01" * 8, name="chat gpt-4o", start_time_unix_nano=1)
    span.status.code = 2  # ERROR: e.g. a 429 from the provider
    for key, value in {k: v for k, v in GOOD.items() if not k.startswith("gen_ai.usage.")}.items():
        set_any_value(span.attributes.add(key=key).value, value)
    cost.consume(traces)
    attrs = attributes_to_dict(sink.traces.request.resource_spans[0].scope_spans[0].spans[0].attributes)
    assert "gen_ai.usage.cost_usd" not in attrs
    assert (attrs["genaitrace.cost.status"], attrs["genaitrace.cost.unpriced_reason"]) == ("unpriced", "failed_call_no_usage")
