"""Fix-ups around traceloop's CrewAI instrumentor.

traceloop's ``LLM.call`` span (``<model>.llm``) is removed (the LiteLLM span below it is
the inference span); task spans are created around ``Task._execute_core`` /
``_aexecute_core`` so ``async_execution=True`` tasks (run in a thread) keep theirs; tools
get ``execute_tool`` spans with the tool call id.
"""

from __future__ import annotations

import contextvars
import logging
from typing import Any

from opentelemetry import context as context_api
from opentelemetry import trace as trace_api
from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY

_log = logging.getLogger(__name__)

_TRACER_NAME = "instrumentation.genai"

_pending_tool_call_ids: contextvars.ContextVar[dict | None] = contextvars.ContextVar(
    "genai_pending_tool_call_ids", default=None)
_active_tool: contextvars.ContextVar[Any] = contextvars.ContextVar("genai_active_tool", default=None)


def _tracer():
    return trace_api.get_tracer(_TRACER_NAME)


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
