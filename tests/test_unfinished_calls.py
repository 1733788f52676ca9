"""A call whose span ends before the instrumentation saw it end (instrumentation/unfinished.py): a
stream the app stopped reading. Real SDK tracer, the GenAI span processor before an exporter, and the
LiteLLM stream wrapper over a real litellm stream object shape (its received `chunks`)."""

from __future__ import annotations

import pytest

import semconv
from instrumentation import _patches, unfinished

CHAT = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o-mini"}


@pytest.fixture
def tracer(genai_provider):
    provider, exporter = genai_provider
    return provider.get_tracer("test"), exporter


class _Chunk:
    def __init__(self, text):
        self.choices = [type("Choice", (), {"delta": type("Delta", (), {"content": text, "tool_calls": None})(),
                                            "finish_reason": None})()]
        self.usage, self.model, self.id = None, "gpt-4o-mini", "chatcmpl-1"


class _LiteLLMStream:
    """The parts of litellm's CustomStreamWrapper the wrapper reads: iteration and `chunks` received."""

    def __init__(self, texts):
        self._texts, self.chunks = list(texts), []

    def __iter__(self):
        return self

    def __next__(self):
        if not self._texts:
            raise StopIteration
        chunk = _Chunk(self._texts.pop(0))
        self.chunks.append(chunk)
        return chunk


def _call(tracer, texts, read):
    """A streamed call: the wrapper over the stream, `read` chunks read, then the span ends (as the
    instrumentor ends it when the app drops the stream). Returns the exported span."""
    messages = [{"role": "user", "content": "Tell me a long story about rivers and the sea"}]
    with tracer.start_as_current_span("chat gpt-4o-mini", attributes=CHAT) as span:
        stream = _patches._end_call(_LiteLLMStream(texts), span, True, False, 0.0,
                                    kwargs={"model": "openai/gpt-4o-mini", "messages": messages})
        for _ in range(read):
            next(stream, None)
    return span


def test_a_stream_left_early_gets_estimated_usage(tracer):
    tracer_, exporter = tracer
    _call(tracer_, ["Once upon", " a time there", " was a river", " that ran"], read=2)
    (span,) = exporter.get_finished_spans()
    a = span.attributes
    assert a[semconv.STREAM_ABANDONED] is True and a[semconv.USAGE_ESTIMATED] is True
    assert a["gen_ai.usage.input_tokens"] > 5  # the prompt, counted
    assert 0 < a["gen_ai.usage.output_tokens"] < 10  # what the app received, not the whole answer


def test_a_stream_read_to_its_end_is_not_marked(tracer):
    tracer_, exporter = tracer
    _call(tracer_, ["Once upon", " a time"], read=5)  # StopIteration reached
    (span,) = exporter.get_finished_spans()
    assert semconv.STREAM_ABANDONED not in span.attributes
    assert not unfinished._pending  # nothing left registered


def test_an_estimate_that_fails_never_reaches_the_app_and_the_span_is_exported(tracer, monkeypatch):
    tracer_, exporter = tracer

    def broken(*args, **kwargs):  # the completion is called with the attributes the span ended with
        raise RuntimeError("tokenizer unavailable")

    monkeypatch.setattr(_patches, "_abandoned_stream_usage", broken)
    _call(tracer_, ["Once upon", " a time"], read=1)
    (span,) = exporter.get_finished_spans()
    assert semconv.STREAM_ABANDONED not in span.attributes and span.attributes["gen_ai.operation.name"] == "chat"


def test_the_registry_is_bounded():
    class _Span:
        def __init__(self, span_id):
            self.span_id = span_id

        def get_span_context(self):
            return self

    for span_id in range(unfinished._LIMIT + 100):
        unfinished.register(_Span(span_id), dict)
    assert len(unfinished._pending) == unfinished._LIMIT
    assert unfinished.take(0) is None and unfinished.take(unfinished._LIMIT + 99) is dict
    for span_id in range(unfinished._LIMIT + 100):
        unfinished.forget(span_id)
    assert not unfinished._pending


def test_a_forked_child_does_not_end_the_parents_calls():
    import os

    unfinished.register(type("S", (), {"get_span_context": lambda self: type("C", (), {"span_id": 7})()})(), dict)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: nothing of the parent's is left to end
        os.write(write, str(len(unfinished._pending)).encode())
        os._exit(0)
    os.waitpid(pid, 0)
    assert os.read(read, 16) == b"0" and unfinished.take(7) is dict
