"""CrewAI spans, every way CrewAI runs: one trace per request, low-cardinality names, no content.

traceloop's CrewAI instrumentor wraps only ``Crew.kickoff``, ``Agent.execute_task``,
``Task.execute_sync`` and ``LLM.call``: ``akickoff`` (native async) then has no workflow
and no agent span (each task became its own trace), a Flow has no span at all, its task
spans are named by the interpolated description, and it copies descriptions, goals and
backstories into attributes. :func:`patch_crewai` removes traceloop's wrappers and puts
these in their place:

==================================================  ======================================
``Crew.kickoff`` / ``akickoff``                      ``invoke_workflow {crew name}``
``Crew.kickoff_for_each`` / ``kickoff_for_each_async``
/ ``akickoff_for_each``                              ``invoke_workflow {crew name}`` over one
                                                     ``invoke_workflow`` per input
``Flow.kickoff_async`` (``kickoff``, ``akickoff``)   ``invoke_workflow {flow name}`` over its crews
``Agent.execute_task`` / ``aexecute_task``           ``invoke_agent {role}``
``Agent.kickoff`` / ``kickoff_async`` (``akickoff``)  ``invoke_agent {role}``: an agent run without a crew
``Task._execute_core`` / ``_aexecute_core``          ``execute_task {task name}``
``BaseTool.run`` / ``arun``                          ``execute_tool {tool name}``
==================================================  ======================================

``kickoff_async`` runs ``kickoff`` in ``asyncio.to_thread`` (the context follows), so it
needs no wrapper of its own. The task name is ``Task.name`` when set, else ``task_{n}``, its
1-based position in its crew (stable across runs and inputs; never the description, which
is content and unbounded). No LLM span is made here: the LiteLLM / provider-SDK span below
is the inference span (traceloop's ``<model>.llm`` span is removed).

Content (goal, backstory, task description and expected output, tool arguments and
result) is put on spans only with content capture on (:mod:`instrumentation.privacy` caps it).
Failures set ``error.type`` (the exception's class) and an ERROR status.
"""

from __future__ import annotations

import asyncio
import contextvars
import importlib
import json
import logging
import re
from typing import Any

from opentelemetry import context as context_api
from opentelemetry import trace as trace_api
from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY

_log = logging.getLogger(__name__)

_TRACER_NAME = "instrumentation.genai"
_FRAMEWORK = "crewai"
_TRACELOOP_MODULE = "opentelemetry.instrumentation.crewai"

_pending_tool_call_ids: contextvars.ContextVar[dict | None] = contextvars.ContextVar(
    "genai_pending_tool_call_ids", default=None)
_active_tool: contextvars.ContextVar[Any] = contextvars.ContextVar("genai_active_tool", default=None)


def _tracer():
    return trace_api.get_tracer(_TRACER_NAME)


def _capture_on() -> bool:
    from instrumentation.processor import SPAN_ONLY, capture_mode

    return capture_mode() == SPAN_ONLY


def _suppressed() -> bool:
    return bool(context_api.get_value(_SUPPRESS_INSTRUMENTATION_KEY))


# ----------------------------------------------------------------------------- names and attributes
def task_name(task) -> str:
    """``Task.name``, else ``task_{n}`` (position in its crew), else ``task``."""
    name = getattr(task, "name", None)
    if name:
        return str(name)
    index = _task_index(task)
    return f"task_{index}" if index else "task"


def _task_index(task) -> int | None:
    agent = getattr(task, "agent", None)
    crew = getattr(agent, "crew", None) if agent is not None else None
    for i, t in enumerate(getattr(crew, "tasks", None) or (), start=1):
        if t is task:
            return i
    return None


def _task_attrs(task) -> dict:
    attrs = {
        "gen_ai.operation.name": "task",
        "gen_ai.task.name": task_name(task),
        "gen_ai.framework": _FRAMEWORK,
        "crewai.task.id": str(getattr(task, "id", "")),
        "crewai.task.async_execution": bool(getattr(task, "async_execution", False)),
    }
    index = _task_index(task)
    if index:
        attrs["crewai.task.index"] = index
    agent = getattr(task, "agent", None)
    if agent is not None and getattr(agent, "role", None):
        attrs["crewai.task.agent"] = str(agent.role)
    if _capture_on():
        _put_text(attrs, "crewai.task.description", getattr(task, "description", None))
        _put_text(attrs, "crewai.task.expected_output", getattr(task, "expected_output", None))
    return attrs


def _agent_attrs(agent, method: str | None = None) -> dict:
    role = str(getattr(agent, "role", None) or "agent")
    attrs = {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": role, "gen_ai.framework": _FRAMEWORK,
             "crewai.agent.allow_delegation": bool(getattr(agent, "allow_delegation", False))}
    if method:
        attrs["crewai.kickoff.method"] = method
    if getattr(agent, "id", None) is not None:
        attrs["gen_ai.agent.id"] = str(agent.id)
    model = getattr(getattr(agent, "llm", None), "model", None)
    if isinstance(model, str) and model:
        attrs["gen_ai.request.model"] = model
    if _capture_on():
        _put_text(attrs, "crewai.agent.goal", getattr(agent, "goal", None))
        _put_text(attrs, "crewai.agent.backstory", getattr(agent, "backstory", None))
    return attrs


def _crew_attrs(crew, method: str) -> dict:
    name = getattr(crew, "name", None) or "crew"
    attrs = {"gen_ai.operation.name": "invoke_workflow", "gen_ai.workflow.name": str(name),
             "gen_ai.framework": _FRAMEWORK, "crewai.kickoff.method": method,
             "crewai.crew.id": str(getattr(crew, "id", ""))}
    process = getattr(crew, "process", None)
    if process is not None:
        attrs["crewai.crew.process"] = str(getattr(process, "value", process))
    roles = [str(a.role) for a in (getattr(crew, "agents", None) or ()) if getattr(a, "role", None)]
    if roles:
        attrs["crewai.crew.agent_roles"] = roles
    return attrs


def _flow_attrs(flow) -> dict:
    name = getattr(flow, "name", None) or type(flow).__name__
    attrs = {"gen_ai.operation.name": "invoke_workflow", "gen_ai.workflow.name": str(name),
             "gen_ai.framework": _FRAMEWORK, "crewai.flow.name": str(name), "crewai.kickoff.method": "flow"}
    try:
        flow_id = getattr(getattr(flow, "state", None), "id", None)
        if flow_id:
            attrs["crewai.flow.id"] = str(flow_id)
    except Exception:
        pass
    return attrs


def _put_text(attrs: dict, key: str, value) -> None:
    if value not in (None, ""):
        attrs[key] = value if isinstance(value, str) else json.dumps(value, default=str)


def _end_status(span, exc: BaseException) -> None:
    span.record_exception(exc)
    span.set_status(trace_api.Status(trace_api.StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
    span.set_attribute("error.type", type(exc).__qualname__)


# ----------------------------------------------------------------------------- span helpers
def _span_sync(name: str, attrs: dict, wrapped, args, kwargs, on_result=None):
    with _tracer().start_as_current_span(name, attributes=attrs, record_exception=False,
                                         set_status_on_exception=False) as span:
        try:
            result = wrapped(*args, **kwargs)
        except BaseException as exc:
            _end_status(span, exc)
            raise
        if on_result is not None:
            on_result(span, result)
        return result


async def _span_async(name: str, attrs: dict, wrapped, args, kwargs, on_result=None):
    with _tracer().start_as_current_span(name, attributes=attrs, record_exception=False,
                                         set_status_on_exception=False) as span:
        try:
            result = await wrapped(*args, **kwargs)
        except BaseException as exc:
            _end_status(span, exc)
            raise
        if on_result is not None:
            on_result(span, result)
        return result


def _safe_attrs(build, *a) -> dict | None:
    """The span's attributes, or None (no span) if building them failed: never hurt the app."""
    try:
        return build(*a)
    except Exception:
        _log.debug("crewai span attributes failed", exc_info=True)
        return None


# ----------------------------------------------------------------------------- crew
def _wrap_kickoff(wrapped, instance, args, kwargs):
    # stream=True returns at once and runs kickoff again (stream off) where the chunks are read
    attrs = None if _suppressed() or getattr(instance, "stream", False) else _safe_attrs(_crew_attrs, instance,
                                                                                        "kickoff")
    if attrs is None:
        return wrapped(*args, **kwargs)
    return _span_sync(f"invoke_workflow {attrs['gen_ai.workflow.name']}", attrs, wrapped, args, kwargs)


async def _wrap_akickoff(wrapped, instance, args, kwargs):
    attrs = None if _suppressed() or getattr(instance, "stream", False) else _safe_attrs(_crew_attrs, instance,
                                                                                        "akickoff")
    if attrs is None:
        return await wrapped(*args, **kwargs)
    return await _span_async(f"invoke_workflow {attrs['gen_ai.workflow.name']}", attrs, wrapped, args, kwargs)


def _for_each_attrs(instance, method: str, args, kwargs) -> dict:
    attrs = _crew_attrs(instance, method)
    inputs = args[0] if args else kwargs.get("inputs")
    try:
        attrs["crewai.kickoff.inputs_count"] = len(inputs)
    except TypeError:
        pass
    return attrs


def _make_for_each_wrapper(method: str, is_async: bool):
    """kickoff_for_each(_async): one request, one trace: a workflow span over the per-input crews."""
    if is_async:
        async def wrapper(wrapped, instance, args, kwargs):
            attrs = None if _suppressed() else _safe_attrs(_for_each_attrs, instance, method, args, kwargs)
            if attrs is None:
                return await wrapped(*args, **kwargs)
            return await _span_async(f"invoke_workflow {attrs['gen_ai.workflow.name']}", attrs, wrapped, args,
                                     kwargs)
    else:
        def wrapper(wrapped, instance, args, kwargs):
            attrs = None if _suppressed() else _safe_attrs(_for_each_attrs, instance, method, args, kwargs)
            if attrs is None:
                return wrapped(*args, **kwargs)
            return _span_sync(f"invoke_workflow {attrs['gen_ai.workflow.name']}", attrs, wrapped, args, kwargs)
    wrapper.__name__ = f"_wrap_{method}"
    return wrapper


# ----------------------------------------------------------------------------- flow
def _is_app_flow(flow) -> bool:
    """The app's Flows; not CrewAI's own (its agent executor is a Flow, under the agent span)."""
    return not type(flow).__module__.startswith("crewai.")


async def _wrap_flow_kickoff_async(wrapped, instance, args, kwargs):
    attrs = (_safe_attrs(_flow_attrs, instance)
             if not _suppressed() and not getattr(instance, "stream", False) and _is_app_flow(instance) else None)
    if attrs is None:
        return await wrapped(*args, **kwargs)
    return await _span_async(f"invoke_workflow {attrs['gen_ai.workflow.name']}", attrs, wrapped, args, kwargs)


# ----------------------------------------------------------------------------- agent
def _wrap_agent_execute(wrapped, instance, args, kwargs):
    attrs = None if _suppressed() else _safe_attrs(_agent_attrs, instance)
    if attrs is None:
        return wrapped(*args, **kwargs)
    return _span_sync(f"invoke_agent {attrs['gen_ai.agent.name']}", attrs, wrapped, args, kwargs)


async def _wrap_agent_aexecute(wrapped, instance, args, kwargs):
    attrs = None if _suppressed() else _safe_attrs(_agent_attrs, instance)
    if attrs is None:
        return await wrapped(*args, **kwargs)
    return await _span_async(f"invoke_agent {attrs['gen_ai.agent.name']}", attrs, wrapped, args, kwargs)


def _in_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _wrap_agent_kickoff(wrapped, instance, args, kwargs):
    """An agent run without a crew: the request's span, over its LLM calls and tools."""
    # inside an event loop (a Flow's method) kickoff returns kickoff_async's coroutine, whose
    # wrapper makes the span when it is awaited
    attrs = None if _suppressed() or _in_event_loop() else _safe_attrs(_agent_attrs, instance, "agent.kickoff")
    if attrs is None:
        return wrapped(*args, **kwargs)
    return _span_sync(f"invoke_agent {attrs['gen_ai.agent.name']}", attrs, wrapped, args, kwargs)


async def _wrap_agent_kickoff_async(wrapped, instance, args, kwargs):
    attrs = None if _suppressed() else _safe_attrs(_agent_attrs, instance, "agent.kickoff_async")
    if attrs is None:
        return await wrapped(*args, **kwargs)
    return await _span_async(f"invoke_agent {attrs['gen_ai.agent.name']}", attrs, wrapped, args, kwargs)


# ----------------------------------------------------------------------------- task
def _wrap_task_core(wrapped, instance, args, kwargs):
    attrs = None if _suppressed() else _safe_attrs(_task_attrs, instance)
    if attrs is None:
        return wrapped(*args, **kwargs)
    return _span_sync(f"execute_task {attrs['gen_ai.task.name']}", attrs, wrapped, args, kwargs)


async def _wrap_task_acore(wrapped, instance, args, kwargs):
    attrs = None if _suppressed() else _safe_attrs(_task_attrs, instance)
    if attrs is None:
        return await wrapped(*args, **kwargs)
    return await _span_async(f"execute_task {attrs['gen_ai.task.name']}", attrs, wrapped, args, kwargs)


# ----------------------------------------------------------------------------- tools
def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", str(name).lower()).strip("_")


def _tool_span_args(instance, args, kwargs) -> tuple[str, dict]:
    name = str(getattr(instance, "name", None) or type(instance).__name__)
    attrs = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": name, "gen_ai.framework": _FRAMEWORK,
             "gen_ai.tool.type": "function"}
    desc = getattr(instance, "description", None)
    if desc:
        attrs["gen_ai.tool.description"] = " ".join(str(desc).split())[:200]
    pending = _pending_tool_call_ids.get()
    if pending:
        call_id = pending.pop(_norm(name), None)
        if call_id:
            attrs["gen_ai.tool.call.id"] = str(call_id)
    if _capture_on():
        call = dict(kwargs)
        if args:
            call["_args"] = list(args)
        _put_text(attrs, "gen_ai.tool.call.arguments", json.dumps(call, default=str))
    return name, attrs


def _tool_result(span, result) -> None:
    try:
        if _capture_on() and span.is_recording():
            span.set_attribute("gen_ai.tool.call.result", result if isinstance(result, str)
                               else json.dumps(result, default=str))
    except Exception:
        pass


def _wrap_tool_run(wrapped, instance, args, kwargs):
    if _suppressed() or _active_tool.get() is instance:
        return wrapped(*args, **kwargs)
    spec = _safe_attrs(_tool_span_args, instance, args, kwargs)
    if spec is None:
        return wrapped(*args, **kwargs)
    token = _active_tool.set(instance)
    try:
        return _span_sync(f"execute_tool {spec[0]}", spec[1], wrapped, args, kwargs, _tool_result)
    finally:
        _active_tool.reset(token)


async def _wrap_tool_arun(wrapped, instance, args, kwargs):
    if _suppressed() or _active_tool.get() is instance:
        return await wrapped(*args, **kwargs)
    spec = _safe_attrs(_tool_span_args, instance, args, kwargs)
    if spec is None:
        return await wrapped(*args, **kwargs)
    token = _active_tool.set(instance)
    try:
        return await _span_async(f"execute_tool {spec[0]}", spec[1], wrapped, args, kwargs, _tool_result)
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


# ----------------------------------------------------------------------------- installing
def _peel_traceloop(owner, attr: str) -> None:
    """Remove traceloop's CrewAI wrappers from ``owner.attr`` (ours would make them duplicates)."""
    while True:
        current = owner.__dict__.get(attr)
        inner = getattr(current, "__wrapped__", None)
        wrapper = getattr(current, "_self_wrapper", None)
        if inner is None or not str(getattr(wrapper, "__module__", "")).startswith(_TRACELOOP_MODULE):
            return
        setattr(owner, attr, inner)


def _install(owner, attr: str, wrapper) -> None:
    """Wrap ``owner.attr`` with ``wrapper`` once (idempotent), after peeling traceloop's wrappers."""
    from wrapt import wrap_function_wrapper

    if attr not in owner.__dict__:
        return
    _peel_traceloop(owner, attr)
    if getattr(owner.__dict__.get(attr), "_self_wrapper", None) is wrapper:
        return
    wrap_function_wrapper(owner, attr, wrapper)


_WRAPPERS = {
    "kickoff_for_each": _make_for_each_wrapper("kickoff_for_each", False),
    "kickoff_for_each_async": _make_for_each_wrapper("kickoff_for_each_async", True),
    "akickoff_for_each": _make_for_each_wrapper("akickoff_for_each", True),
}


def patch_crewai() -> bool:
    """Install the CrewAI spans (after, or instead of, traceloop's CrewAIInstrumentor). Idempotent."""
    try:
        import crewai.agent
        import crewai.crew
        import crewai.llm
        import crewai.task
        import crewai.tools.base_tool as base_tool
    except ImportError:
        return False
    crew_cls, agent_cls, task_cls = crewai.crew.Crew, crewai.agent.Agent, crewai.task.Task
    _install(crew_cls, "kickoff", _wrap_kickoff)
    _install(crew_cls, "akickoff", _wrap_akickoff)
    for method, wrapper in _WRAPPERS.items():
        _install(crew_cls, method, wrapper)
    _install(agent_cls, "execute_task", _wrap_agent_execute)
    _install(agent_cls, "aexecute_task", _wrap_agent_aexecute)
    _install(agent_cls, "kickoff", _wrap_agent_kickoff)
    _install(agent_cls, "kickoff_async", _wrap_agent_kickoff_async)  # akickoff awaits it
    # task spans around the core, so async_execution=True tasks (run in a thread) keep theirs
    _peel_traceloop(task_cls, "execute_sync")
    _install(task_cls, "_execute_core", _wrap_task_core)
    _install(task_cls, "_aexecute_core", _wrap_task_acore)
    # no `<model>.llm` span: the LiteLLM / provider span below is the one inference span
    _peel_traceloop(crewai.llm.LLM, "call")
    for cls_name in ("BaseTool", "Tool"):
        cls = getattr(base_tool, cls_name, None)
        if cls is not None:
            _install(cls, "run", _wrap_tool_run)
            _install(cls, "arun", _wrap_tool_arun)
    _patch_flow()
    _patch_tool_call_ids()
    return True


def _patch_flow() -> None:
    try:
        from crewai.flow import runtime
    except ImportError:
        return
    flow_cls = getattr(runtime, "Flow", None)
    if flow_cls is not None:
        _install(flow_cls, "kickoff_async", _wrap_flow_kickoff_async)


def _patch_tool_call_ids() -> None:
    """The tool call id of native tool calls, handed from the LLM response to the tool span."""
    from wrapt import wrap_function_wrapper

    for mod in ("crewai.utilities.agent_utils", "crewai.agents.agent_executor", "crewai.agents.step_executor",
                "crewai.llms.base_llm", "crewai.llm"):
        try:
            m = importlib.import_module(mod)
        except Exception:
            continue
        fn = m.__dict__.get("extract_tool_call_info")
        if fn is not None and getattr(fn, "_self_wrapper", None) is not _wrap_extract_tool_call_info:
            wrap_function_wrapper(m, "extract_tool_call_info", _wrap_extract_tool_call_info)
