"""The LiteLLM inference span without the work whose result is thrown away.

With message content capture off (``NO_CONTENT``, the default), most of what
openinference-instrumentation-litellm computes per call never leaves the app: the
flattened ``llm.input_messages.*`` / ``llm.output_messages.*``, ``input.value`` /
``output.value`` (JSON-serialised request and response), ``llm.invocation_parameters``,
``llm.tools.*``, audio token counts and the cost are all removed again by
:class:`instrumentation.processor.GenAISpanProcessor`; every attribute also goes through
openinference's ``TraceConfig`` masking wrapper first. That was ~0.7 ms of CPU per call,
9x a bare SDK span.

This module replaces openinference's wrappers of ``litellm.completion`` and
``litellm.acompletion`` (non-streaming calls) with one that builds the same span directly:
same tracer (scope ``openinference.instrumentation.litellm``), same name, same attributes
*before* our processor (``openinference.span.kind``, ``llm.model_name``, ``llm.provider``,
openinference's context attributes, ``gen_ai.request.stream``, ``gen_ai.response.*``, the
usage tokens openinference and ``_patches`` would have recorded, merged into the semconv
keys the processor keeps), same status and exception handling, same context inside the
call (the span current, instrumentation suppressed). So the exported span is the same,
attribute for attribute (``tests/test_instrumentation_overhead.py`` compares the two paths).

Everything else stays with openinference: streaming calls (its stream proxies end the span),
content capture (``SPAN_ONLY`` needs its flattened messages), embeddings, images, the
responses API, ``completion_with_retries`` and the Anthropic messages interface.
"""

from __future__ import annotations

import functools
import logging
import threading
from typing import Any

from opentelemetry import context as context_api
from opentelemetry import trace as trace_api
from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY
from opentelemetry.trace import SpanKind, Status, StatusCode

from instrumentation import genai_mapping as gm
from instrumentation.bootstrap import _state as _bootstrap_state
from instrumentation.processor import SETTLED, inference_name

_log = logging.getLogger(__name__)

_SPAN_KEY = "current-span"  # opentelemetry.trace.propagation._SPAN_KEY
GEN_AI_REQUEST_STREAM = "gen_ai.request.stream"

from openinference.instrumentation.context_attributes import CONTEXT_ATTRIBUTES as _CONTEXT_KEYS

try:  # openinference's capture_span_context() support (private helper)
    from openinference.instrumentation._capture import _capture_span_context
except Exception:  # pragma: no cover
    _capture_span_context = None
_OK = Status(StatusCode.OK)

# model string -> _Start (the span's start attributes that depend on it); bounded
_model_cache: dict[str, "_Start"] = {}
_model_cache_lock = threading.Lock()
_MODEL_CACHE_LIMIT = 1024


class _Start:
    """Per model: the start attributes as openinference sets them (``raw``) and, when they
    settle without the response (the provider is known), what the processor makes of them."""

    __slots__ = ("raw", "settled", "provider", "name")

    def __init__(self, raw: dict, settled: dict | None):
        self.raw = raw
        self.settled = settled
        self.provider = settled.get(gm.GEN_AI_PROVIDER_NAME) if settled else None
        self.name = inference_name(gm.OP_CHAT, settled) if settled else None


def _compute_start(model: Any) -> _Start:
    from openinference.instrumentation import get_llm_provider_attributes
    from openinference.instrumentation.litellm import _get_oi_provider_from_litellm_model_name

    raw: dict[str, Any] = {"openinference.span.kind": "LLM"}
    if model:
        raw["llm.model_name"] = model
        raw.update(get_llm_provider_attributes(_get_oi_provider_from_litellm_model_name(model)))
    settled = None
    if "llm.provider" in raw:
        # with an explicit provider, operation, request model and provider detection depend on
        # these keys only: normalise them once, exactly as the processor would
        from instrumentation.processor import NO_CONTENT, GenAISpanProcessor

        _, out = GenAISpanProcessor(capture=NO_CONTENT).rewrite("completion", dict(raw))
        if out.get(gm.GEN_AI_OPERATION_NAME) == gm.OP_CHAT and out.get(gm.GEN_AI_PROVIDER_DETECTION) == "attribute":
            settled = out
    return _Start(raw, settled)


def _start_attributes(model: Any) -> _Start:
    """openinference asks ``litellm.get_llm_provider(model)`` on every call (~50 us); the answer
    depends on the model string only."""
    key = model if isinstance(model, str) else None
    if key is not None:
        hit = _model_cache.get(key)
        if hit is not None:
            return hit
    entry = _compute_start(model)
    if key is not None:
        with _model_cache_lock:
            if len(_model_cache) >= _MODEL_CACHE_LIMIT:
                _model_cache.clear()
            _model_cache[key] = entry
    return entry


_int = gm._as_int  # what the GenAI normaliser accepts as a token count


try:
    from pydantic import BaseModel as _PydanticModel

    _PYDANTIC_GETATTR = getattr(_PydanticModel, "__getattr__", None)
except Exception:  # pragma: no cover
    _PYDANTIC_GETATTR = None
_on_class: dict[tuple[type, str], bool] = {}


def _attr(obj: Any, key: str) -> Any:
    """``getattr(obj, key, None)``, without pydantic's slow ``__getattr__`` for a missing field.

    LiteLLM's responses and usage are pydantic models; asking one for a field it does not have
    goes through ``BaseModel.__getattr__`` and an exception (~5 us). For a model that keeps
    pydantic's ``__getattr__`` this resolves the same way from ``__dict__``, the class, private
    attributes and ``__pydantic_extra__``.
    """
    cls = type(obj)
    if _PYDANTIC_GETATTR is not None and getattr(cls, "__getattr__", None) is _PYDANTIC_GETATTR:
        try:
            d = obj.__dict__
            if key in d:
                return d[key]
            known = _on_class.get((cls, key))
            if known is None:
                known = _on_class[(cls, key)] = (any(key in c.__dict__ for c in cls.__mro__)
                                                 or key in (getattr(cls, "__private_attributes__", None) or ()))
            if not known:
                extra = object.__getattribute__(obj, "__pydantic_extra__")
                return extra.get(key) if extra else None
        except Exception:
            pass
    return getattr(obj, key, None)


def _get(obj: Any, key: str) -> Any:
    return obj.get(key) if isinstance(obj, dict) else _attr(obj, key)


def _first_int(sem: Any, oi: Any) -> int | None:
    number = _int(sem)
    return number if number is not None else _int(oi)


def usage_attributes(usage: Any) -> dict:
    """The token counts the two recorders together put on the span, under the semconv keys.

    ``_patches._record_usage`` sets ``gen_ai.usage.*`` (dicts or objects; ints only; the
    top-level Anthropic cache counts only when non-zero); openinference sets
    ``llm.token_count.*`` (attributes of objects only; ``x or input_tokens`` fallbacks). The
    normaliser takes the semconv key first and openinference's when that is not a count, which
    is the merge below; ``gen_ai.usage.total_tokens`` (openinference's total, used to infer a
    missing side, then dropped by the processor) is passed on for the same reason. Each field
    is read once (a missing field of a pydantic model costs an exception).
    """
    if not usage:
        return {}
    is_obj = not isinstance(usage, dict)
    # --- _patches._record_usage (semconv) ---
    pt, ct = _get(usage, "prompt_tokens"), _get(usage, "completion_tokens")
    ptd = _get(usage, "prompt_tokens_details")
    ctd = _get(usage, "completion_tokens_details")
    cr = _get(usage, "cache_read_input_tokens")
    cc = _get(usage, "cache_creation_input_tokens")
    s_in = pt if isinstance(pt, int) else None
    s_out = ct if isinstance(ct, int) else None
    s_cache_read = s_cache_write = s_reasoning = None
    ptd_cached = ptd_write = ctd_reasoning = None
    if ptd is not None:
        ptd_cached = _get(ptd, "cached_tokens")
        if isinstance(ptd_cached, int):
            s_cache_read = ptd_cached
        ptd_write = _get(ptd, "cache_creation_tokens")
        if isinstance(ptd_write, int):
            s_cache_write = ptd_write
    if ctd is not None:
        ctd_reasoning = _get(ctd, "reasoning_tokens")
        if isinstance(ctd_reasoning, int):
            s_reasoning = ctd_reasoning
    if isinstance(cr, int) and cr:
        s_cache_read = cr
    if isinstance(cc, int) and cc:
        s_cache_write = cc
    # --- openinference _set_token_counts_from_usage (llm.token_count.*), objects only ---
    o_in = o_out = o_cache_read = o_cache_write = o_reasoning = o_total = None
    if is_obj:
        o_in = pt or _attr(usage, "input_tokens")
        o_out = ct or _attr(usage, "output_tokens")
        optd = ptd or _attr(usage, "input_tokens_details")
        if optd is not None:
            o_cache_read = _attr(optd, "cached_tokens") if optd is not ptd or isinstance(ptd, dict) else ptd_cached
        octd = ctd or _attr(usage, "output_tokens_details")
        if octd is not None:
            o_reasoning = (_attr(octd, "reasoning_tokens") if octd is not ctd or isinstance(ctd, dict)
                           else ctd_reasoning)
        o_total = _attr(usage, "total_tokens")
        if cc is not None:
            o_cache_write = cc
        if cr is not None:
            o_cache_read = cr

    out = {}
    for key, sem, oi in (
        (gm.GEN_AI_USAGE_INPUT_TOKENS, s_in, o_in),
        (gm.GEN_AI_USAGE_OUTPUT_TOKENS, s_out, o_out),
        (gm.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS, s_cache_read, o_cache_read),
        (gm.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS, s_cache_write, o_cache_write),
        (gm.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS, s_reasoning, o_reasoning),
        (gm.GEN_AI_USAGE_TOTAL_TOKENS, None, o_total),
    ):
        number = _first_int(sem, oi)
        if number is not None:
            out[key] = number
    return out


def result_attributes(result: Any) -> dict:
    """``_patches._record_result`` + openinference's ``_finalize_span``, minus what is dropped."""
    out: dict[str, Any] = {}
    choices = _attr(result, "choices") or []
    reasons = [str(c.finish_reason) for c in choices if _attr(c, "finish_reason")]
    if reasons:
        out["gen_ai.response.finish_reasons"] = reasons
    rid = _attr(result, "id")
    if rid:
        out["gen_ai.response.id"] = str(rid)
    model = _attr(result, "model")
    if model:
        out[gm.GEN_AI_RESPONSE_MODEL] = str(model)
    usage = _attr(result, "usage")
    if usage:
        out.update(usage_attributes(usage))
    return out


def _settle_result(attrs: dict, provider: str | None) -> dict:
    """What the processor makes of the result attributes of a settled span (see ``rewrite``)."""
    from instrumentation.processor import _strip_routing_prefix

    tokens = {k: attrs.pop(k) for k in [k for k in attrs if k.startswith("gen_ai.usage.")]}
    if tokens:
        tokens = gm.normalize_usage(tokens)
        tokens.pop(gm.GEN_AI_USAGE_TOTAL_TOKENS, None)  # a dialect key to the processor: dropped
        attrs.update(tokens)
    model = attrs.get(gm.GEN_AI_RESPONSE_MODEL)
    if model is not None:
        model = gm._as_str(model)
        if model is None:
            del attrs[gm.GEN_AI_RESPONSE_MODEL]
        else:
            attrs[gm.GEN_AI_RESPONSE_MODEL] = model
            probe = {gm.GEN_AI_PROVIDER_NAME: provider, gm.GEN_AI_RESPONSE_MODEL: model}
            _strip_routing_prefix(probe)
            attrs[gm.GEN_AI_RESPONSE_MODEL] = probe[gm.GEN_AI_RESPONSE_MODEL]
    return attrs


def _status(result: Any) -> Status:
    """openinference's ``_set_span_status``."""
    error = _attr(result, "error")
    if error is None and isinstance(result, dict):
        error = result.get("error", None)
    if error is not None:
        return Status(StatusCode.ERROR, description=str(error))
    return _OK


def _processor():
    """The GenAI processor init() installed, if it rewrites without content (else: no fast path)."""
    processor = _bootstrap_state.get("processor")
    if processor is None or processor.capture == "SPAN_ONLY":
        return None
    return processor


def _start(tracer, name: str, kwargs: dict):
    entry = _start_attributes(kwargs.get("model"))
    current = context_api.get_current()
    # openinference's get_attributes_from_context() (using_session, using_metadata, ...), one lookup
    context_attrs = {}
    for key in _CONTEXT_KEYS:
        value = current.get(key)
        if value is not None:
            context_attrs[key] = value
    attrs = dict(context_attrs)
    attrs.update(entry.settled if entry.settled is not None else entry.raw)
    attrs[GEN_AI_REQUEST_STREAM] = False  # _patches._prepare
    if entry.settled is not None:
        # the name and kind the processor gives an inference span
        span = tracer.start_span(entry.name, kind=SpanKind.CLIENT, attributes=attrs)
    else:
        span = tracer.start_span(name, attributes=attrs)
    if context_attrs and span.is_recording():
        # OITracer sets them again after the span started, i.e. after the processors' on_start:
        # they win over the baggage attribution (session.id)
        span.set_attributes(context_attrs)
    settled = entry.settled is not None and span.is_recording()
    if settled:
        SETTLED.add(span.get_span_context().span_id)
    if _capture_span_context is not None:
        _capture_span_context(span.get_span_context())
    ctx = context_api.set_value(_SPAN_KEY, span, current)
    token = context_api.attach(context_api.set_value(_SUPPRESS_INSTRUMENTATION_KEY, True, ctx))
    return span, token, entry if settled else None


def _error(span, exc: BaseException) -> None:
    # trace_api.use_span(record_exception=True, set_status_on_exception=True), as openinference
    if isinstance(exc, Exception) and span.is_recording():
        span.record_exception(exc)
        span.set_status(Status(StatusCode.ERROR, description=f"{type(exc).__name__}: {exc}"))


def _finish(span, result, entry) -> None:
    if span.is_recording() and result is not None:
        try:
            attrs = result_attributes(result)
            if entry is not None:
                attrs = _settle_result(attrs, entry.provider)
            if attrs:
                span.set_attributes(attrs)
        except Exception:  # pragma: no cover - never hurt the app
            _log.debug("recording the LiteLLM result failed", exc_info=True)
    span.set_status(_status(result))


def make_sync(tracer, name: str, raw, fallback):
    """``litellm.completion``: the fast span for plain calls, openinference's wrapper otherwise."""

    def completion(*args, **kwargs):
        if kwargs.get("stream") or context_api.get_value(_SUPPRESS_INSTRUMENTATION_KEY) or _processor() is None:
            return fallback(*args, **kwargs)
        span, token, entry = _start(tracer, name, kwargs)
        try:
            try:
                result = raw(*args, **kwargs)
            finally:
                context_api.detach(token)
        except BaseException as exc:
            _error(span, exc)
            span.end()
            raise
        _finish(span, result, entry)
        span.end()
        return result

    functools.update_wrapper(completion, fallback)
    completion._genai_fast = True
    return completion


def make_async(tracer, name: str, raw, fallback):
    async def acompletion(*args, **kwargs):
        if kwargs.get("stream") or context_api.get_value(_SUPPRESS_INSTRUMENTATION_KEY) or _processor() is None:
            return await fallback(*args, **kwargs)
        span, token, entry = _start(tracer, name, kwargs)
        try:
            try:
                result = await raw(*args, **kwargs)
            finally:
                context_api.detach(token)
        except BaseException as exc:
            _error(span, exc)
            span.end()
            raise
        _finish(span, result, entry)
        span.end()
        return result

    functools.update_wrapper(acompletion, fallback)
    acompletion._genai_fast = True
    return acompletion


def install(instrumentor) -> bool:
    """Put the fast wrappers on ``litellm`` in front of openinference's (idempotent)."""
    import litellm

    tracer = getattr(instrumentor, "_tracer", None)
    funcs = getattr(type(instrumentor), "original_litellm_funcs", {})
    if tracer is None:
        return False
    # openinference's OITracer proxies the SDK tracer: use the SDK tracer itself (same scope)
    sdk_tracer = getattr(tracer, "__wrapped__", tracer)
    done = False
    for name, factory in (("completion", make_sync), ("acompletion", make_async)):
        current = getattr(litellm, name, None)
        original = funcs.get(name)
        if current is None or original is None or getattr(current, "_genai_fast", False):
            continue
        raw = getattr(original, "__wrapped__", original) if getattr(original, "_genai_wrapped", False) else original
        setattr(litellm, name, factory(sdk_tracer, name, raw, current))
        done = True
    return done
