"""The app matrix, CrewAI: every entry point and Flows, under opentelemetry-instrument with env vars only.

Each app runs bare and instrumented (tests/apps/harness.py); beyond the shared checks (same
output, one trace per request, no orphans, no duplicate LLM spans, priced, errors typed, no
canary in any exported byte) the CrewAI structure is checked on the stored spans.
"""

from __future__ import annotations

import re
from collections import Counter

import pytest

from apps.harness import run_app

ENTRY_POINT_REQUESTS = 8  # see tests/apps/programs/crewai_entrypoints.py


def _by_trace_root(run) -> dict[str, list[dict]]:
    return {spans[0]["TraceId"]: spans for spans in run.traces().values()}


def _root(spans):
    return next(s for s in spans if not s["ParentSpanId"])


def _names(spans) -> Counter:
    return Counter(s["SpanName"] for s in spans)


@pytest.mark.timeout(1500)  # CrewAI: ~4 s of imports per process, ~20 crews, run twice; slow on a loaded host
def test_crewai_entry_points(app_environment):
    run = run_app(app_environment, "crewai_entrypoints.py", timeout=660)
    run.check(requests=ENTRY_POINT_REQUESTS)
    roots = Counter(_root(spans)["SpanName"] for spans in run.traces().values())
    assert roots == Counter({"invoke_workflow city_crew": 2, "invoke_workflow brief_crew": 4,
                             "invoke_workflow managed_crew": 1, "invoke_workflow fragile_crew": 1}), run.describe()
    methods = Counter(_root(spans)["SpanAttributes"].get("crewai.kickoff.method") for spans in run.traces().values())
    assert methods == Counter({"kickoff": 4, "akickoff": 1, "kickoff_for_each": 1, "kickoff_for_each_async": 1,
                               "akickoff_for_each": 1}), methods  # kickoff_async runs kickoff in a thread
    by_id = {s["SpanId"]: s for s in run.spans}
    for spans in run.traces().values():
        names = _names(spans)
        root = _root(spans)
        if root["SpanName"] == "invoke_workflow city_crew":  # kickoff, akickoff: two agents, a tool
            assert names["execute_task task_1"] == 1 and names["execute_task report"] == 1, run.describe()
            assert names["invoke_agent Researcher"] == 1 and names["invoke_agent Writer"] == 1, run.describe()
            assert names["execute_tool lookup_city"] == 1, run.describe()
        elif root["SpanName"] == "invoke_workflow brief_crew":
            per_input = "for_each" in root["SpanAttributes"]["crewai.kickoff.method"]
            crews = 2 if per_input else 1
            # for_each: one workflow per input under the request's workflow
            assert names["invoke_workflow brief_crew"] == crews + (1 if per_input else 0), run.describe()
            assert names["execute_task brief"] == crews and names["invoke_agent Researcher"] == crews
        elif root["SpanName"] == "invoke_workflow managed_crew":
            # the manager delegates: the Researcher runs under the delegation tool
            delegated = [s for s in spans if s["SpanName"] == "invoke_agent Researcher"]
            assert delegated and all(by_id[s["ParentSpanId"]]["SpanName"].startswith("execute_tool Delegate")
                                     for s in delegated), run.describe()
            assert names["invoke_agent Crew Manager"] == 1 and names["execute_task delegated"] == 1
        else:
            failed = [s for s in spans if s["SpanName"] == "execute_tool broken_tool"]
            assert failed and all(s["StatusCode"] == "Error" for s in failed), run.describe()
            assert all(s["SpanAttributes"]["error.type"] == "ValueError" for s in failed)
    # span names are low-cardinality: never the task text
    for s in run.spans:
        assert re.fullmatch(r"(invoke_workflow|execute_task|invoke_agent|execute_tool|chat|POST|GET)\b.{0,40}",
                            s["SpanName"]), s["SpanName"]
    # every LLM span knows its agent and workflow (cost per agent without walking the tree)
    for s in run.llm_spans():
        assert s["SpanAttributes"].get("gen_ai.agent.name"), run.describe()
        assert s["SpanAttributes"].get("gen_ai.workflow.name"), run.describe()


@pytest.mark.timeout(600)
def test_crewai_flows(app_environment):
    run = run_app(app_environment, "crewai_flow.py", timeout=300)
    run.check(requests=2)
    for spans in run.traces().values():
        root = _root(spans)
        assert root["SpanName"] == "invoke_workflow ResearchFlow", run.describe()
        assert root["SpanAttributes"]["gen_ai.operation.name"] == "invoke_workflow"
        crews = [s for s in spans if s["SpanName"] in ("invoke_workflow research_crew", "invoke_workflow writing_crew")]
        assert len(crews) == 2, run.describe()
        by_id = {s["SpanId"]: s for s in spans}
        for c in crews:  # each crew under the Flow span (directly, or under a Flow method span)
            parent = by_id[c["ParentSpanId"]]
            while parent["SpanId"] != root["SpanId"]:
                assert not parent["SpanName"].startswith("invoke_workflow"), run.describe()
                parent = by_id[parent["ParentSpanId"]]


def test_crewai_memory(app_environment):
    """A crew with memory (embeddings through the fake, storage on disk), kicked off twice: the
    memory's embedding inputs are content too, so none of them is exported with capture off."""
    run = run_app(app_environment, "crewai_memory.py")
    run.check(requests=2)


def test_crewai_streaming(app_environment):
    """`Crew(stream=True)`, kicked off and read as a stream (sync and akickoff): each request is one
    trace under its crew's invoke_workflow span, whatever threads CrewAI streams from."""
    run = run_app(app_environment, "crewai_streaming.py", timeout=300)
    run.check(requests=2)
    for spans in run.traces().values():
        assert _root(spans)["SpanName"] == "invoke_workflow streaming_crew", run.describe()


@pytest.mark.timeout(900)
def test_crewai_agents_without_a_crew_and_native_providers(app_environment):
    """`Agent.kickoff`, `kickoff_async` and `akickoff` (no crew; once from a Flow's step),
    `LLM.call` as a plain client, and a planned crew on CrewAI's native Anthropic provider: one
    trace per request, the agent's span the root of a crew-less kickoff (its tool under it), one
    LLM span per call although the Anthropic SDK traces itself."""
    run = run_app(app_environment, "crewai_agents_direct.py", timeout=420)
    # the native Anthropic provider asks the provider to count the prompt's tokens first: a
    # request to the provider that is not an LLM call (free, no generation)
    counts = [r for r in run.provider_requests if r.get("path", "").endswith("/count_tokens")]
    run.check(requests=6, llm_calls=len(run.provider_requests) - len(counts))
    roots = Counter(_root(spans)["SpanName"] for spans in run.traces().values())
    assert roots == Counter({"invoke_agent Analyst": 3, "invoke_workflow AskFlow": 1, "chat gpt-4o-mini": 1,
                             "invoke_workflow planned_crew": 1}), run.describe()
    for spans in run.traces().values():
        root, names = _root(spans), _names(spans)
        if root["SpanAttributes"].get("crewai.kickoff.method") == "agent.kickoff":
            assert names["execute_tool lookup_city"] == 1 and names["chat gpt-4o-mini"] == 2, run.describe()
        if root["SpanName"] == "invoke_workflow AskFlow":
            assert names["invoke_agent Analyst"] == 1, run.describe()


@pytest.mark.timeout(900)
def test_crewai_task_options(app_environment):
    """Structured task output (CrewAI's native provider and LiteLLM with instructor's conversion), a
    guardrail that makes the agent retry, an agent that reasons first, task context and callbacks:
    every extra LLM call (planning, conversion, retry) in its crew's trace, priced, no content."""
    run = run_app(app_environment, "crewai_task_options.py", timeout=420)
    run.check(requests=2)
    for spans in run.traces().values():
        names = _names(spans)
        assert names["execute_task gather"] == 1 and names["execute_task check"] >= 1, run.describe()


@pytest.mark.timeout(900)
def test_crewai_flow_parallel_router_and_nested_flow(app_environment):
    """A Flow with typed state, two crews gathered in parallel in an async step, a router, or_/and_
    listeners, a direct LLM call and a flow kicked off inside a step: one trace under the outer
    Flow's span, both crews and the nested flow inside it."""
    run = run_app(app_environment, "crewai_flow_parallel.py", timeout=420)
    run.check(requests=1)
    (spans,) = run.traces().values()
    names = _names(spans)
    assert _root(spans)["SpanName"] == "invoke_workflow TripFlow", run.describe()
    assert names["invoke_workflow rivers_crew"] == 1 and names["invoke_workflow bridges_crew"] == 1, run.describe()
    assert names["invoke_workflow SummaryFlow"] == 1, run.describe()
