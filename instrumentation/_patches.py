"""Fix-ups around openinference's LiteLLM instrumentor so that every LLM call gives exactly one,
complete span, and the application sees exactly what it would see uninstrumented.

* The openinference ``completion`` span is THE inference span. Inside it, instrumentation is
  suppressed, so traceloop's ``openai``/``anthropic`` instrumentors and the HTTP client
  instrumentors do not add a second span for the provider-SDK call LiteLLM makes underneath.
* Streams: usage is requested (``stream_options.include_usage``; LiteLLM consumes it for every
  provider and asks the provider only where the provider supports it), and the usage-only chunk
  that request adds is taken out again, so the application receives exactly the chunks it would
  receive uninstrumented. The stream keeps its whole protocol (sync and async iteration, context
  managers, every attribute) through a ``wrapt.ObjectProxy``. Token counts LiteLLM estimated
  (the provider reported none) are marked ``genaitrace.usage.estimated=true``; so are the counts
  of a non-streamed call whose provider reported none (LiteLLM says 0 and 0 there: they are
  counted with LiteLLM's tokenizer instead). A stream the application stops reading early (a
  ``break``, a dropped stream) ends without the provider's usage: its prompt and the output the
  app received are counted the same way, marked estimated and ``genaitrace.stream.abandoned``
  (see ``instrumentation.unfinished``).
* Finish reasons, response id/model, ``gen_ai.request.stream``, time to first chunk, and
  ``error.type`` plus a status description on failures.
* CrewAI: see ``instrumentation.crewai``.

Nothing here may raise into the application: see ``instrumentation.safety``.
"""

from __future__ import annotations

import functools
import time

import wrapt
from opentelemetry import context as context_api
from opentelemetry import trace as trace_api
from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY

import semconv
from instrumentation import unfinished
from instrumentation.safety import guard, guarded

TTFC_ATTRIBUTE = "gen_ai.response.time_to_first_chunk"  # seconds, float
ESTIMATED_ATTRIBUTE = semconv.USAGE_ESTIMATED             # bool: tokens counted locally, not reported
ERROR_TYPE = "error.type"


def error_type(exc: BaseException) -> str:
    """GenAI semconv ``error.type``: the exception's fully-qualified class name (``_OTHER`` if none)."""
    cls = type(exc)
    name = getattr(cls, "__qualname__", None) or getattr(cls, "__name__", None)
    if not name:
        return "_OTHER"
    module = getattr(cls, "__module__", None)
    return name if module in (None, "builtins") else f"{module}.{name}"


@guard("genai.record_error")
def record_error(span, exc: BaseException) -> None:
    if span.is_recording():
        span.set_attribute(ERROR_TYPE, error_type(exc))
        span.set_status(trace_api.Status(trace_api.StatusCode.ERROR, f"{type(exc).__name__}: {exc}"[:1000]))


# ============================================================================ usage
def _get(obj, key):
    return obj.get(key) if isinstance(obj, dict) else getattr(obj, key, None)


@guard("litellm.record_usage")
def _record_usage(span, usage) -> None:
    if usage is None:
        return
    pt, ct = _get(usage, "prompt_tokens"), _get(usage, "completion_tokens")
    if isinstance(pt, int):
        span.set_attribute("gen_ai.usage.input_tokens", pt)
    if isinstance(ct, int):
        span.set_attribute("gen_ai.usage.output_tokens", ct)
    ptd = _get(usage, "prompt_tokens_details")
    if ptd is not None:
        cached = _get(ptd, "cached_tokens")
        if isinstance(cached, int):
            span.set_attribute("gen_ai.usage.cache_read.input_tokens", cached)
        cw = _get(ptd, "cache_creation_tokens")
        if isinstance(cw, int):
            span.set_attribute("gen_ai.usage.cache_write.input_tokens", cw)
    ctd = _get(usage, "completion_tokens_details")
    if ctd is not None:
        r = _get(ctd, "reasoning_tokens")
        if isinstance(r, int):
            span.set_attribute("gen_ai.usage.reasoning.output_tokens", r)
    # Anthropic-through-LiteLLM also reports these at top level
    cr = _get(usage, "cache_read_input_tokens")
    if isinstance(cr, int) and cr:
        span.set_attribute("gen_ai.usage.cache_read.input_tokens", cr)
    cc = _get(usage, "cache_creation_input_tokens")
    if isinstance(cc, int) and cc:
        span.set_attribute("gen_ai.usage.cache_write.input_tokens", cc)


@guard("litellm.record_result")
def _record_result(span, result) -> None:
    if not span.is_recording() or result is None:
        return
    choices = getattr(result, "choices", None) or []
    reasons = [str(c.finish_reason) for c in choices if getattr(c, "finish_reason", None)]
    if reasons:
        span.set_attribute("gen_ai.response.finish_reasons", reasons)
    rid = getattr(result, "id", None)
    if rid:
        span.set_attribute("gen_ai.response.id", str(rid))
    model = getattr(result, "model", None)
    if model:
        span.set_attribute("gen_ai.response.model", str(model))
    _record_usage(span, getattr(result, "usage", None))


def _reported_usage(usage) -> bool:
    """Whether the provider reported counts. LiteLLM answers a response without ``usage`` with
    ``Usage(0, 0, 0)``: no real chat or embedding call has zero input tokens and zero output tokens."""
    if usage is None:
        return False
    counts = (_get(usage, "prompt_tokens"), _get(usage, "completion_tokens"))
    return any(isinstance(c, int) and c > 0 for c in counts)


def _call_inputs(args: tuple, kwargs: dict) -> tuple[str, object, object]:
    """(model, messages, input) of a litellm call, by keyword or position (``completion(model, messages)``)."""
    model = kwargs.get("model", args[0] if args else None)
    messages = kwargs.get("messages", args[1] if len(args) > 1 else None)
    return str(model or ""), messages, kwargs.get("input", args[1] if len(args) > 1 else None)


def _written(message, parts: list[str]) -> None:
    """Append what the model wrote in a message or a stream delta: its text, and the name and
    arguments of each tool call (what LiteLLM's own estimates count)."""
    content = _get(message, "content")
    if isinstance(content, str):
        parts.append(content)
    for call in _get(message, "tool_calls") or []:
        function = _get(call, "function")
        for key in ("name", "arguments"):
            value = _get(function, key) if function is not None else None
            if isinstance(value, str):
                parts.append(value)


def _response_text(result) -> str:
    """What the model wrote in a response, every choice."""
    parts: list[str] = []
    for choice in getattr(result, "choices", None) or []:
        message = _get(choice, "message")
        if message is not None:
            _written(message, parts)
    return "".join(parts)


@guard("litellm.estimate_usage")
def _estimate_missing_usage(span, args: tuple, kwargs: dict, result) -> None:
    """A non-streamed call whose provider reported no usage: LiteLLM's tokenizer counts (as LiteLLM
    does for such a stream), marked ``genaitrace.usage.estimated`` so they are priced as estimates."""
    if not span.is_recording() or result is None or _reported_usage(getattr(result, "usage", None)):
        return
    import litellm

    model, messages, inputs = _call_inputs(args, kwargs)
    if getattr(result, "choices", None) is not None:  # chat / text completion
        prompt = litellm.token_counter(model=model, messages=messages) if messages else 0
        output = litellm.token_counter(model=model, text=_response_text(result), count_response_tokens=True)
    elif getattr(result, "data", None) is not None and inputs:  # embeddings
        texts = [inputs] if isinstance(inputs, str) else [t for t in inputs if isinstance(t, str)]
        if not texts:
            return  # token ids: nothing to count with
        prompt, output = litellm.token_counter(model=model, text=texts), 0
    else:
        return
    span.set_attribute("gen_ai.usage.input_tokens", int(prompt))
    span.set_attribute("gen_ai.usage.output_tokens", int(output))
    span.set_attribute(ESTIMATED_ATTRIBUTE, True)


def _stream_usage_was_estimated(stream) -> bool | None:
    """Whether LiteLLM will fill in this stream's counts with its tokenizer (no provider report)."""
    chunks = getattr(stream, "chunks", None)
    if not chunks:
        return None
    from litellm.litellm_core_utils.streaming_chunk_builder_utils import ChunkProcessor

    processor = ChunkProcessor(chunks=list(chunks))
    reported = processor._calculate_usage_per_chunk(chunks=processor.chunks)
    return reported.get("prompt_tokens") is None or reported.get("completion_tokens") is None


def _chunks_text(chunks) -> str:
    """What the model wrote in these stream chunks."""
    parts: list[str] = []
    for chunk in chunks:
        for choice in _get(chunk, "choices") or []:
            delta = _get(choice, "delta")
            if delta is not None:
                _written(delta, parts)
    return "".join(parts)


def _abandoned_stream_usage(stream, args: tuple, kwargs: dict, ended_with=None) -> dict:
    """Attributes for a stream whose span ended before the stream did (see instrumentation.unfinished):
    the prompt and what the app received, counted with LiteLLM's tokenizer, marked estimated."""
    import litellm

    model, messages, _ = _call_inputs(args, kwargs)
    received = list(getattr(stream, "chunks", None) or [])
    prompt = litellm.token_counter(model=model, messages=messages) if messages else 0
    output = litellm.token_counter(model=model, text=_chunks_text(received), count_response_tokens=True) if received else 0
    return {"gen_ai.usage.input_tokens": int(prompt), "gen_ai.usage.output_tokens": int(output),
            ESTIMATED_ATTRIBUTE: True, semconv.STREAM_ABANDONED: True}


# ============================================================================ streams
def _carries_output(chunk) -> bool:
    """A chunk with anything for the app: text, tool calls, a finish reason, ..."""
    for choice in _get(chunk, "choices") or []:
        if _get(choice, "finish_reason"):
            return True
        delta = _get(choice, "delta")
        if delta is None:
            continue
        for key in ("content", "tool_calls", "function_call", "reasoning_content", "thinking_blocks", "audio",
                    "refusal", "images", "annotations", "provider_specific_fields"):
            if _get(delta, key):
                return True
    return False


class _StreamRecorder:
    """Watches the chunks of one stream for the span; decides which chunks the app sees."""

    __slots__ = ("span", "t0", "injected_usage", "first", "done", "reasons", "usage", "model")

    def __init__(self, span, t0: float, injected_usage: bool):
        self.span, self.t0, self.injected_usage = span, t0, injected_usage
        self.first = self.done = False
        self.reasons: list[str] = []
        self.usage = None
        self.model = None

    def keep(self, chunk) -> bool:
        """Record the chunk; False for the usage-only chunk the app did not ask for."""
        try:
            if not self.first:
                self.first = True
                if self.span.is_recording():
                    self.span.set_attribute(TTFC_ATTRIBUTE, round(time.perf_counter() - self.t0, 6))
            for choice in _get(chunk, "choices") or []:
                reason = _get(choice, "finish_reason")
                if reason:
                    self.reasons.append(str(reason))
            usage = _get(chunk, "usage")
            if usage:
                self.usage = usage
            if self.model is None and _get(chunk, "model"):
                self.model = str(chunk.model)
                if self.span.is_recording():
                    self.span.set_attribute("gen_ai.response.model", self.model)
                    if _get(chunk, "id"):
                        self.span.set_attribute("gen_ai.response.id", str(chunk.id))
            return not (self.injected_usage and usage and not _carries_output(chunk))
        except Exception as exc:
            from instrumentation.safety import report

            report("litellm.stream.chunk", exc)
            return True

    def finish(self, stream) -> None:
        if self.done:
            return
        self.done = True
        unfinished.forget(self.span.get_span_context().span_id)
        with guarded("litellm.stream.finish"):
            if not self.span.is_recording():
                return
            if self.reasons:
                self.span.set_attribute("gen_ai.response.finish_reasons", self.reasons)
            _record_usage(self.span, self.usage)
            estimated = _stream_usage_was_estimated(stream)
            if estimated is not None:
                self.span.set_attribute(ESTIMATED_ATTRIBUTE, estimated)


class StreamProxy(wrapt.ObjectProxy):
    """The stream LiteLLM returned, as the app would see it: the same chunks through every protocol."""

    def __init__(self, wrapped, recorder: _StreamRecorder):
        super().__init__(wrapped)
        self._self_recorder = recorder

    # sync iteration
    def __iter__(self):
        return self

    def __next__(self):
        while True:
            try:
                chunk = self.__wrapped__.__next__()
            except StopIteration:
                self._self_recorder.finish(self.__wrapped__)
                raise
            if self._self_recorder.keep(chunk):
                return chunk

    # async iteration
    def __aiter__(self):
        return self

    async def __anext__(self):
        while True:
            try:
                chunk = await self.__wrapped__.__anext__()
            except StopAsyncIteration:
                self._self_recorder.finish(self.__wrapped__)
                raise
            if self._self_recorder.keep(chunk):
                return chunk

    # context managers hand back the proxy, not the bare stream
    def __enter__(self):
        self.__wrapped__.__enter__()
        return self

    def __exit__(self, *exc):
        return self.__wrapped__.__exit__(*exc)

    async def __aenter__(self):
        await self.__wrapped__.__aenter__()
        return self

    async def __aexit__(self, *exc):
        return await self.__wrapped__.__aexit__(*exc)


# ============================================================================ the wrappers
def _prepare(kwargs: dict, span) -> tuple[bool, bool]:
    """(stream?, usage injected?). LiteLLM consumes ``stream_options`` itself for every provider."""
    stream = bool(kwargs.get("stream"))
    if span.is_recording():
        span.set_attribute("gen_ai.request.stream", stream)
    if stream and kwargs.get("stream_options") is None:
        kwargs["stream_options"] = {"include_usage": True}
        return stream, True
    return stream, False


def _begin_call(kwargs: dict):
    """Before litellm runs inside openinference's span: usage for streams, and no nested spans."""
    span = trace_api.get_current_span()
    stream, injected = bool(kwargs.get("stream")), False
    with guarded("litellm.prepare"):
        stream, injected = _prepare(kwargs, span)
    # Instrumentation suppressed inside: traceloop's openai and the HTTP client spans would
    # otherwise be second and third spans for this one call.
    token = context_api.attach(context_api.set_value(_SUPPRESS_INSTRUMENTATION_KEY, True))  # noqa: GT104 (nested duplicates only)
    return span, stream, injected, time.perf_counter(), token


def _end_call(result, span, stream: bool, injected: bool, t0: float, args: tuple = (), kwargs: dict | None = None):
    if stream and (hasattr(result, "__next__") or hasattr(result, "__anext__")):
        try:
            proxy = StreamProxy(result, _StreamRecorder(span, t0, injected))
            if span.is_recording():
                unfinished.register(span, functools.partial(_abandoned_stream_usage, result, args, kwargs or {}))
            return proxy
        except Exception as exc:
            from instrumentation.safety import report

            report("litellm.stream.wrap", exc)
            return result
    _record_result(span, result)
    _estimate_missing_usage(span, args, kwargs or {}, result)
    return result


def _wrap_litellm_sync(original):
    @functools.wraps(original)
    def inner(*args, **kwargs):
        span, stream, injected, t0, token = _begin_call(kwargs)
        try:
            result = original(*args, **kwargs)
        except BaseException as exc:
            record_error(span, exc)
            raise
        finally:
            context_api.detach(token)
        return _end_call(result, span, stream, injected, t0, args, kwargs)

    inner._genai_wrapped = True
    return inner


def _wrap_litellm_async(original):
    @functools.wraps(original)
    async def inner(*args, **kwargs):
        span, stream, injected, t0, token = _begin_call(kwargs)
        try:
            result = await original(*args, **kwargs)
        except BaseException as exc:
            record_error(span, exc)
            raise
        finally:
            context_api.detach(token)
        return _end_call(result, span, stream, injected, t0, args, kwargs)

    inner._genai_wrapped = True
    return inner


def patch_openinference_litellm() -> bool:
    """Wrap the originals openinference calls inside its span (idempotent)."""
    try:
        from openinference.instrumentation.litellm import LiteLLMInstrumentor
    except ImportError:
        return False
    funcs = LiteLLMInstrumentor.original_litellm_funcs
    for name, original in list(funcs.items()):
        if getattr(original, "_genai_wrapped", False):
            continue
        if name in ("completion", "completion_with_retries", "embedding", "image_generation", "responses"):
            funcs[name] = _wrap_litellm_sync(original)
        elif name in ("acompletion", "aembedding", "aimage_generation", "aresponses"):
            funcs[name] = _wrap_litellm_async(original)
    return True


def _dispatch_loop_without_creating():
    """The loop a blocking LiteLLM caller may dispatch its timing report on, never a new one.

    LiteLLM asks ``asyncio.get_event_loop()``, which on Python 3.11 creates and sets a loop in the
    main thread that nobody closes (3.14 raises instead, and LiteLLM then uses ``asyncio.run``). The
    abandoned loop is finalized at exit in no fixed order: in most runs of an instrumented app
    (more live objects) its socket went first and ``__del__`` printed "Exception ignored ... Invalid
    file descriptor: -1". This gives LiteLLM the 3.14 answer: the running or set loop, else None.
    """
    import asyncio

    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        pass
    local = getattr(asyncio.get_event_loop_policy(), "_local", None)  # the default policy's slot
    loop = getattr(local, "_loop", None)
    return None if loop is None or loop.is_closed() else loop


def patch_litellm_dispatch_loop(module) -> None:
    """Post-import hook for ``litellm._service_logger`` (imported lazily by LiteLLM)."""
    service_logging = getattr(module, "ServiceLogging", None)
    if service_logging is None or not isinstance(service_logging.__dict__.get("_sync_dispatch_loop"),
                                                 staticmethod):
        return  # another LiteLLM: leave it as it is
    import asyncio

    if not hasattr(asyncio.get_event_loop_policy(), "_local"):
        return
    service_logging._sync_dispatch_loop = staticmethod(_dispatch_loop_without_creating)


# ============================================================================ OpenAI SDK used directly
class _OpenAIStream(wrapt.ObjectProxy):
    """An OpenAI SDK stream as the app would see it: without the usage-only chunk we asked for (when
    we asked), and with the call's span ended when the app closes the stream before its end
    (traceloop's wrapper ends it only when the stream is collected, so a stream closed and kept
    in a variable until exit lost its span)."""

    def __init__(self, wrapped, injected: bool, span):
        super().__init__(wrapped)
        self._self_injected, self._self_span = injected, span

    def __iter__(self):
        return self

    def __next__(self):
        while True:
            try:
                chunk = self.__wrapped__.__next__()
            except StopIteration:
                self._self_finished()
                raise
            if not (self._self_injected and _is_usage_only(chunk)):
                return chunk

    def __aiter__(self):
        return self

    async def __anext__(self):
        while True:
            try:
                chunk = await self.__wrapped__.__anext__()
            except StopAsyncIteration:
                self._self_finished()
                raise
            if not (self._self_injected and _is_usage_only(chunk)):
                return chunk

    def close(self):  # the SDK's sync close, or its async one (returns the coroutine)
        self._self_left()
        return self.__wrapped__.close()

    def __enter__(self):
        self.__wrapped__.__enter__()
        return self

    def __exit__(self, *exc):
        return self.__wrapped__.__exit__(*exc)

    async def __aenter__(self):
        await self.__wrapped__.__aenter__()
        return self

    async def __aexit__(self, *exc):
        self._self_left()
        return await self.__wrapped__.__aexit__(*exc)

    def _self_finished(self) -> None:
        if self._self_span is not None:
            unfinished.forget(self._self_span.get_span_context().span_id)

    def _self_left(self) -> None:
        """The app closes the stream: end the span now if the call has not ended (traceloop's own
        cleanup, which records what it has; the GenAI span processor marks the stream as left)."""
        with guarded("openai.stream.close"):
            if self._self_span is not None and self._self_span.is_recording():
                cleanup = getattr(self.__wrapped__, "_ensure_cleanup", None)
                if cleanup is not None:
                    cleanup()


# What only a stream read to its end leaves on traceloop's span (its names, before the rewrite).
_STREAM_END_KEYS = ("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens", "gen_ai.response.finish_reasons",
                    "gen_ai.response.finish_reason", "llm.usage.total_tokens")


def _openai_stream_left(ended_with) -> dict:
    """traceloop ends the span of a stream read to its end before our wrapper sees the end, so the
    end is told by what the span holds: the provider's usage (asked for) or a finish reason.
    Without either the app left the stream early. No tokenizer is loaded for the OpenAI SDK alone
    (LiteLLM's import costs seconds), so such a call stays unpriced, and says why."""
    if any(key in ended_with for key in _STREAM_END_KEYS):
        return {}
    return {semconv.STREAM_ABANDONED: True}


def _wrap_openai_stream(result, injected: bool):
    """The stream traceloop returned (its span in `_span`), or the SDK's own (no span: traced by
    nobody here, e.g. inside LiteLLM's call)."""
    try:
        span = getattr(result, "_span", None)
        if not hasattr(span, "is_recording") or not span.is_recording():
            span = None
        if span is None and not injected:
            return result
        wrapped = _OpenAIStream(result, injected, span)
        if span is not None:
            unfinished.register(span, _openai_stream_left)
        return wrapped
    except Exception as exc:
        from instrumentation.safety import report

        report("openai.stream.wrap", exc)
        return result


def _is_usage_only(chunk) -> bool:
    try:
        return bool(getattr(chunk, "usage", None)) and not getattr(chunk, "choices", None)
    except Exception:
        return False


def _not_given(value) -> bool:
    """None, or the OpenAI SDK's sentinels for an argument the caller left out (its own helpers,
    such as `chat.completions.stream`, pass NOT_GIVEN / omit rather than nothing)."""
    return value is None or type(value).__name__ in ("NotGiven", "Omit")


def _wants_injection(kwargs: dict) -> bool:
    return kwargs.get("stream") is True and _not_given(kwargs.get("stream_options"))


def _openai_create(wrapped, instance, args, kwargs):
    if kwargs.get("stream") is not True:
        return wrapped(*args, **kwargs)
    injected = _wants_injection(kwargs)
    if injected:
        kwargs["stream_options"] = {"include_usage": True}  # the stream's exact usage, for its span
    return _wrap_openai_stream(wrapped(*args, **kwargs), injected)


async def _openai_acreate(wrapped, instance, args, kwargs):
    if kwargs.get("stream") is not True:
        return await wrapped(*args, **kwargs)
    injected = _wants_injection(kwargs)
    if injected:
        kwargs["stream_options"] = {"include_usage": True}
    return _wrap_openai_stream(await wrapped(*args, **kwargs), injected)


_openai_patched = False


def patch_openai_streams() -> bool:
    """OpenAI SDK streams the app did not ask usage for: ask for it, hide the extra chunk (after
    traceloop's instrumentor, so its span sees the usage). Idempotent."""
    global _openai_patched
    if _openai_patched:
        return True
    try:
        from openai.resources.chat import completions
    except ImportError:
        return False
    wrapt.wrap_function_wrapper(completions, "Completions.create", _openai_create)
    wrapt.wrap_function_wrapper(completions, "AsyncCompletions.create", _openai_acreate)
    _openai_patched = True
    return True


# --- OpenAI Responses: the call's span id reserved before the call (instrumentation.posthoc) -----

# traceloop's OpenAI instrumentor (its tracer's name): its Responses span is started after the call.
_OPENAI_SCOPE = "opentelemetry.instrumentation.openai.v1"


def _responses_reservation(kwargs: dict):
    """A reservation for this call's span, or None where traceloop's wrapper starts no span
    (instrumentation suppressed; a raw-response stream, which it leaves untraced)."""
    try:
        if context_api.get_value(_SUPPRESS_INSTRUMENTATION_KEY):
            return None
        raw = any(str(k).lower() == "x-stainless-raw-response" for k in (kwargs.get("extra_headers") or {}))
        if kwargs.get("stream") and raw:
            return None
        from instrumentation.posthoc import reserved_span

        return reserved_span(_OPENAI_SCOPE)
    except Exception as exc:
        from instrumentation.safety import report

        report("openai.responses.reserve", exc)
        return None


def _responses_call(wrapped, instance, args, kwargs):
    reservation = _responses_reservation(kwargs)
    if reservation is None:
        return wrapped(*args, **kwargs)
    with reservation:
        return wrapped(*args, **kwargs)


async def _responses_acall(wrapped, instance, args, kwargs):
    reservation = _responses_reservation(kwargs)
    if reservation is None:
        return await wrapped(*args, **kwargs)
    with reservation:
        return await wrapped(*args, **kwargs)


class _RecentResponses(dict):
    """traceloop keeps every Responses call's data (its input and output text included) in a
    module-level dict keyed by response id, to join a later `retrieve` or stream to it, and only a
    `cancel` removes an entry: a service's memory grows with every call. This keeps the most recent
    `limit` entries (insertion order), which is what a continuation looks up."""

    def __init__(self, limit: int):
        super().__init__()
        self.limit = limit

    def __setitem__(self, key, value) -> None:
        self.pop(key, None)
        super().__setitem__(key, value)
        while len(self) > self.limit:
            del self[next(iter(self))]


RECENT_RESPONSES_KEPT = 128

_responses_patched = False


def _bound_traceloop_responses() -> None:
    try:
        from opentelemetry.instrumentation.openai.v1 import responses_wrappers
    except ImportError:
        return
    if not isinstance(responses_wrappers.responses, _RecentResponses):
        bounded = _RecentResponses(RECENT_RESPONSES_KEPT)
        bounded.update(responses_wrappers.responses)
        responses_wrappers.responses = bounded  # its functions look the name up at each call


def patch_openai_responses() -> bool:
    """Around traceloop's Responses wrappers (so after its instrumentor): each call's span parents
    the call's HTTP span, and what traceloop keeps per call is bounded. Idempotent."""
    global _responses_patched
    if _responses_patched:
        return True
    try:
        from openai.resources import responses
    except ImportError:
        return False
    _bound_traceloop_responses()
    for name in ("create", "parse", "retrieve"):
        if hasattr(responses.Responses, name):
            wrapt.wrap_function_wrapper(responses, f"Responses.{name}", _responses_call)
        if hasattr(responses.AsyncResponses, name):
            wrapt.wrap_function_wrapper(responses, f"AsyncResponses.{name}", _responses_acall)
    _responses_patched = True
    return True

