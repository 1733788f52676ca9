"""Fix-ups around the third-party instrumentors so that every LLM call gives exactly one span.

* LiteLLM (openinference): the openinference ``completion`` span is THE inference span.
  Inside it, instrumentation is suppressed (so traceloop's ``openai``/``anthropic``
  instrumentors and the HTTP client instrumentors do not add a second span for the
  provider-SDK call LiteLLM makes underneath); streaming calls ask the provider for
  usage when the caller did not, and record the time to first chunk; finish reasons
  and ``gen_ai.request.stream`` are set.
* CrewAI: see ``instrumentation.crewai``.
"""

from __future__ import annotations

import functools
import logging
import time

from opentelemetry import context as context_api
from opentelemetry import trace as trace_api
from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY

_log = logging.getLogger(__name__)

TTFC_ATTRIBUTE = "gen_ai.response.time_to_first_chunk"  # seconds, float

def _safe(fn):
    @functools.wraps(fn)
    def wrapper(*a, **kw):
        try:
            return fn(*a, **kw)
        except Exception:  # pragma: no cover - instrumentation must never hurt the app
            _log.debug("instrumentation helper %s failed", fn.__name__, exc_info=True)
            return None
    return wrapper


# ============================================================================ LiteLLM
def _supports_stream_options(kwargs: dict) -> bool:
    try:
        import litellm

        model = kwargs.get("model") or ""
        provider = kwargs.get("custom_llm_provider")
        _, provider, _, _ = litellm.get_llm_provider(model=model, custom_llm_provider=provider)
        params = litellm.get_supported_openai_params(model=model, custom_llm_provider=provider) or []
        return "stream_options" in params
    except Exception:
        return False


@_safe
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


@_safe
def _record_usage(span, usage) -> None:
    if usage is None:
        return
    get = (lambda o, k: o.get(k) if isinstance(o, dict) else getattr(o, k, None))
    pt, ct = get(usage, "prompt_tokens"), get(usage, "completion_tokens")
    if isinstance(pt, int):
        span.set_attribute("gen_ai.usage.input_tokens", pt)
    if isinstance(ct, int):
        span.set_attribute("gen_ai.usage.output_tokens", ct)
    ptd = get(usage, "prompt_tokens_details")
    if ptd is not None:
        cached = get(ptd, "cached_tokens")
        if isinstance(cached, int):
            span.set_attribute("gen_ai.usage.cache_read.input_tokens", cached)
        cw = get(ptd, "cache_creation_tokens")
        if isinstance(cw, int):
            span.set_attribute("gen_ai.usage.cache_creation.input_tokens", cw)
    ctd = get(usage, "completion_tokens_details")
    if ctd is not None:
        r = get(ctd, "reasoning_tokens")
        if isinstance(r, int):
            span.set_attribute("gen_ai.usage.reasoning.output_tokens", r)
    # Anthropic-through-LiteLLM also reports these at top level
    cr = get(usage, "cache_read_input_tokens")
    if isinstance(cr, int) and cr:
        span.set_attribute("gen_ai.usage.cache_read.input_tokens", cr)
    cc = get(usage, "cache_creation_input_tokens")
    if isinstance(cc, int) and cc:
        span.set_attribute("gen_ai.usage.cache_creation.input_tokens", cc)


def _stream_proxy(result, span, t0):
    import wrapt

    is_async = hasattr(result, "__anext__") and not hasattr(result, "__next__")

    class _Proxy(wrapt.ObjectProxy):
        def __init__(self, wrapped):
            super().__init__(wrapped)
            self._self_first = False
            self._self_done = False
            self._self_reasons: list[str] = []
            self._self_usage = None
            self._self_model = None

        def _self_chunk(self, chunk):
            if not self._self_first:
                self._self_first = True
                if span.is_recording():
                    span.set_attribute(TTFC_ATTRIBUTE, round(time.perf_counter() - t0, 6))
            try:
                for c in getattr(chunk, "choices", None) or []:
                    fr = getattr(c, "finish_reason", None)
                    if fr:
                        self._self_reasons.append(str(fr))
                usage = getattr(chunk, "usage", None)
                if usage:
                    self._self_usage = usage
                if self._self_model is None and getattr(chunk, "model", None):
                    self._self_model = str(chunk.model)
                    if span.is_recording():
                        span.set_attribute("gen_ai.response.model", self._self_model)
                        if getattr(chunk, "id", None):
                            span.set_attribute("gen_ai.response.id", str(chunk.id))
            except Exception:
                pass

        def _self_finish(self):
            if self._self_done:
                return
            self._self_done = True
            if span.is_recording():
                if self._self_reasons:
                    span.set_attribute("gen_ai.response.finish_reasons", self._self_reasons)
                _record_usage(span, self._self_usage)

        if is_async:
            def __aiter__(self):
                return self

            async def __anext__(self):
                try:
                    chunk = await self.__wrapped__.__anext__()
                except StopAsyncIteration:
                    self._self_finish()
                    raise
                self._self_chunk(chunk)
                return chunk
        else:
            def __iter__(self):
                return self

            def __next__(self):
                try:
                    chunk = next(self.__wrapped__)
                except StopIteration:
                    self._self_finish()
                    raise
                self._self_chunk(chunk)
                return chunk

    return _Proxy(result)


def _prepare(kwargs: dict, span) -> bool:
    stream = bool(kwargs.get("stream"))
    if span.is_recording():
        span.set_attribute("gen_ai.request.stream", stream)
    if stream and not kwargs.get("stream_options") and _supports_stream_options(kwargs):
        kwargs["stream_options"] = {"include_usage": True}
    return stream


def _begin_call(kwargs: dict):
    """Before litellm runs inside openinference's span: usage for streams, and no nested spans."""
    span = trace_api.get_current_span()
    try:
        stream = _prepare(kwargs, span)
    except Exception:
        stream = bool(kwargs.get("stream"))
    # Instrumentation suppressed inside: traceloop's openai and the HTTP client spans would
    # otherwise be second and third spans for this one call.
    token = context_api.attach(context_api.set_value(_SUPPRESS_INSTRUMENTATION_KEY, True))
    return span, stream, time.perf_counter(), token


def _end_call(result, span, stream: bool, t0: float):
    if stream and (hasattr(result, "__next__") or hasattr(result, "__anext__")):
        try:
            return _stream_proxy(result, span, t0)
        except Exception:
            return result
    _record_result(span, result)
    return result


def _wrap_litellm_sync(original):
    @functools.wraps(original)
    def inner(*args, **kwargs):
        span, stream, t0, token = _begin_call(kwargs)
        try:
            result = original(*args, **kwargs)
        finally:
            context_api.detach(token)
        return _end_call(result, span, stream, t0)

    inner._genai_wrapped = True
    return inner


def _wrap_litellm_async(original):
    @functools.wraps(original)
    async def inner(*args, **kwargs):
        span, stream, t0, token = _begin_call(kwargs)
        try:
            result = await original(*args, **kwargs)
        finally:
            context_api.detach(token)
        return _end_call(result, span, stream, t0)

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
