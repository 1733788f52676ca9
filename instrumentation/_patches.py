"""Fix-ups around the third-party instrumentors so that every LLM call gives exactly one span.

* LiteLLM (openinference): the openinference ``completion`` span is THE inference span.
  Inside it, instrumentation is suppressed (so traceloop's ``openai``/``anthropic``
  instrumentors and the HTTP client instrumentors do not add a second span for the
  provider-SDK call LiteLLM makes underneath); streaming calls ask the provider for
  usage when the caller did not, and record the time to first chunk; finish reasons
  and ``gen_ai.request.stream`` are set.
* CrewAI (traceloop): traceloop's ``LLM.call`` span (``<model>.llm``) is removed (the
  LiteLLM span below it is the inference span); task spans are created around
  ``Task._execute_core`` / ``_aexecute_core`` so ``async_execution=True`` tasks (run
  in a thread) keep theirs; tools get ``execute_tool`` spans with the tool call id.
"""

from __future__ import annotations

import contextvars
import functools
import logging
import time
from typing import Any

from opentelemetry import context as context_api
from opentelemetry import trace as trace_api
from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY

_log = logging.getLogger(__name__)

TTFC_ATTRIBUTE = "gen_ai.response.time_to_first_chunk"  # seconds, float
_TRACER_NAME = "instrumentation.genai"

_pending_tool_call_ids: contextvars.ContextVar[dict | None] = contextvars.ContextVar(
    "genai_pending_tool_call_ids", default=None)
_active_tool: contextvars.ContextVar[Any] = contextvars.ContextVar("genai_active_tool", default=None)


def _tracer():
    return trace_api.get_tracer(_TRACER_NAME)


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


# ============================================================================ CrewAI
def _task_name(task) -> str:
    name = getattr(task, "name", None)
    if name:
        return str(name)
    desc = " ".join(str(getattr(task, "description", "") or "task").split())
    return desc if len(desc) <= 60 else desc[:59] + "…"


def _task_attrs(task) -> dict:
    attrs = {
        "gen_ai.operation.name": "task",
        "gen_ai.task.name": _task_name(task),
        "gen_ai.framework": "crewai",
        "crewai.task.id": str(getattr(task, "id", "")),
        "crewai.task.async_execution": bool(getattr(task, "async_execution", False)),
    }
    agent = getattr(task, "agent", None)
    if agent is not None and getattr(agent, "role", None):
        attrs["crewai.task.agent"] = str(agent.role)
    return attrs


def _end_status(span, exc: BaseException | None) -> None:
    if exc is not None:
        span.record_exception(exc)
        span.set_status(trace_api.Status(trace_api.StatusCode.ERROR, str(exc)))
        span.set_attribute("error.type", type(exc).__qualname__)


def _wrap_task_core(wrapped, instance, args, kwargs):
    if context_api.get_value(_SUPPRESS_INSTRUMENTATION_KEY):
        return wrapped(*args, **kwargs)
    with _tracer().start_as_current_span(f"task {_task_name(instance)}", attributes=_task_attrs(instance),
                                         record_exception=False, set_status_on_exception=False) as span:
        try:
            return wrapped(*args, **kwargs)
        except BaseException as exc:
            _end_status(span, exc)
            raise


async def _wrap_task_acore(wrapped, instance, args, kwargs):
    if context_api.get_value(_SUPPRESS_INSTRUMENTATION_KEY):
        return await wrapped(*args, **kwargs)
    with _tracer().start_as_current_span(f"task {_task_name(instance)}", attributes=_task_attrs(instance),
                                         record_exception=False, set_status_on_exception=False) as span:
        try:
            return await wrapped(*args, **kwargs)
        except BaseException as exc:
            _end_status(span, exc)
            raise


def _norm(name: str) -> str:
    import re

    return re.sub(r"[^a-z0-9]+", "_", str(name).lower()).strip("_")


def _tool_span_args(instance) -> tuple[str, dict]:
    name = str(getattr(instance, "name", None) or type(instance).__name__)
    attrs = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": name, "gen_ai.framework": "crewai"}
    desc = getattr(instance, "description", None)
    if desc:
        attrs["gen_ai.tool.description"] = " ".join(str(desc).split())[:200]
    attrs["gen_ai.tool.type"] = "function"
    pending = _pending_tool_call_ids.get()
    if pending:
        call_id = pending.pop(_norm(name), None)
        if call_id:
            attrs["gen_ai.tool.call.id"] = str(call_id)
    return name, attrs


def _wrap_tool_run(wrapped, instance, args, kwargs):
    if context_api.get_value(_SUPPRESS_INSTRUMENTATION_KEY) or _active_tool.get() is instance:
        return wrapped(*args, **kwargs)
    name, attrs = _tool_span_args(instance)
    token = _active_tool.set(instance)
    try:
        with _tracer().start_as_current_span(f"execute_tool {name}", attributes=attrs,
                                             record_exception=False, set_status_on_exception=False) as span:
            try:
                return wrapped(*args, **kwargs)
            except BaseException as exc:
                _end_status(span, exc)
                raise
    finally:
        _active_tool.reset(token)


async def _wrap_tool_arun(wrapped, instance, args, kwargs):
    if context_api.get_value(_SUPPRESS_INSTRUMENTATION_KEY) or _active_tool.get() is instance:
        return await wrapped(*args, **kwargs)
    name, attrs = _tool_span_args(instance)
    token = _active_tool.set(instance)
    try:
        with _tracer().start_as_current_span(f"execute_tool {name}", attributes=attrs,
                                             record_exception=False, set_status_on_exception=False) as span:
            try:
                return await wrapped(*args, **kwargs)
            except BaseException as exc:
                _end_status(span, exc)
                raise
    finally:
        _active_tool.reset(token)


def _wrap_extract_tool_call_info(wrapped, instance, args, kwargs):
    info = wrapped(*args, **kwargs)
    try:
        if info:
            call_id, func_name = info[0], info[1]
            pending = _pending_tool_call_ids.get()
            if pending is None:
                pending = {}
                _pending_tool_call_ids.set(pending)
            pending[_norm(func_name)] = call_id
            if len(pending) > 64:
                pending.clear()
    except Exception:
        pass
    return info


_crewai_patched = False


def patch_crewai() -> bool:
    """Apply the CrewAI fix-ups (after traceloop's CrewAIInstrumentor). Idempotent."""
    global _crewai_patched
    if _crewai_patched:
        return True
    try:
        import crewai.llm
        import crewai.task
        import crewai.tools.base_tool as base_tool
        from opentelemetry.instrumentation.utils import unwrap
        from wrapt import wrap_function_wrapper
    except ImportError:
        return False
    # 1. no `<model>.llm` span: the LiteLLM span below is the one inference span
    if hasattr(getattr(crewai.llm.LLM, "call", None), "__wrapped__"):
        unwrap(crewai.llm.LLM, "call")
    # 2. task spans for sync, threaded (async_execution=True) and native-async tasks
    if hasattr(getattr(crewai.task.Task, "execute_sync", None), "__wrapped__"):
        unwrap(crewai.task.Task, "execute_sync")
    wrap_function_wrapper("crewai.task", "Task._execute_core", _wrap_task_core)
    if hasattr(crewai.task.Task, "_aexecute_core"):
        wrap_function_wrapper("crewai.task", "Task._aexecute_core", _wrap_task_acore)
    # 3. tool spans
    for cls_name in ("BaseTool", "Tool"):
        cls = getattr(base_tool, cls_name, None)
        if cls is None:
            continue
        if "run" in cls.__dict__:
            wrap_function_wrapper(base_tool, f"{cls_name}.run", _wrap_tool_run)
        if "arun" in cls.__dict__:
            wrap_function_wrapper(base_tool, f"{cls_name}.arun", _wrap_tool_arun)
    # 4. the tool call id of native tool calls
    for mod in ("crewai.utilities.agent_utils", "crewai.agents.agent_executor", "crewai.agents.step_executor",
                "crewai.llms.base_llm", "crewai.llm"):
        try:
            import importlib

            m = importlib.import_module(mod)
            if hasattr(m, "extract_tool_call_info"):
                wrap_function_wrapper(m, "extract_tool_call_info", _wrap_extract_tool_call_info)
        except Exception:
            continue
    _crewai_patched = True
    return True
