"""CrewAI spans (instrumentation/crewai.py) in one child process: wrappers installed once whatever
the order with traceloop's instrumentor, stable task names, failures typed on every level.

The entry points and Flows run end to end in tests/apps/test_crewai_apps.py.
"""

from __future__ import annotations

from support.instrumentation_fixtures import SPANS_DUMP, child_env, fake_llm, last_json, run_python  # noqa: F401

SCRIPT = SPANS_DUMP + """
import json, sys
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
import instrumentation
exp = InMemorySpanExporter()
instrumentation.init("crewai-unit", exporter=exp, batch=False, lazy=False, instrumentations=["crewai", "litellm"])

from crewai import LLM, Agent, Crew, Task
from crewai.crew import Crew as CrewCls
from opentelemetry.instrumentation.crewai import CrewAIInstrumentor
from instrumentation import crewai as ours

# traceloop instrumenting again (uninstrument + instrument: wrappers on top of ours), then our patch
inst = CrewAIInstrumentor()
inst._is_instrumented_by_opentelemetry = False
inst.instrument()
ours.patch_crewai()
ours.patch_crewai()
layers = []
fn = CrewCls.__dict__["kickoff"]
while hasattr(fn, "__wrapped__"):
    layers.append(getattr(getattr(fn, "_self_wrapper", None), "__name__", "?"))
    fn = fn.__wrapped__

base = sys.argv[1]
llm = LLM(model="openai/gpt-4o-mini", base_url=base, api_key="x", is_litellm=True)
agent = Agent(role="Analyst", goal="secret-goal", backstory="secret-backstory", llm=llm, max_iter=2)
ok = Task(description="secret-description one {x}", expected_output="secret-expected", agent=agent)
named = Task(name="summary", description="secret-description two", expected_output="secret-expected", agent=agent)
Crew(agents=[agent], tasks=[ok, named], name="unit_crew").kickoff(inputs={"x": "secret-input"})
names_ok = [ours.task_name(ok), ours.task_name(named)]

bad_llm = LLM(model="openai/gpt-4o-mini", base_url=base, api_key="x", is_litellm=True, max_retries=0)
bad_agent = Agent(role="Failer", goal="g", backstory="b", llm=bad_llm, max_iter=1, max_retry_limit=0)
failing = Task(description="[fail:500] secret-failing", expected_output="x", agent=bad_agent)
error = None
try:
    Crew(agents=[bad_agent], tasks=[failing], name="failing_crew").kickoff()
except Exception as exc:
    error = type(exc).__name__

# content capture on (read at each span): the crew's own content is on its spans
import os
os.environ["OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"] = "SPAN_ONLY"
shown = Task(name="shown", description="visible-description", expected_output="visible-expected", agent=agent)
Crew(agents=[agent], tasks=[shown], name="capture_crew").kickoff()
_dump(exp)
print(json.dumps({"layers": layers, "task_names": names_ok, "error": error}))
"""


def test_crewai_spans_names_and_failures(fake_llm):
    r = run_python(SCRIPT.replace("sys.argv[1]", repr(fake_llm.base_url)), env=child_env(), timeout=400)
    assert r.returncode == 0, r.stderr[-4000:]
    lines = [line for line in r.stdout.strip().splitlines() if line.startswith("[")]
    spans = __import__("json").loads(lines[-1])
    result = last_json(r.stdout)
    # one wrapper, ours, whatever the order traceloop and the patch ran in
    assert result["layers"] == ["_wrap_kickoff"], result
    assert result["task_names"] == ["task_1", "summary"]
    names = [s["name"] for s in spans]
    assert "execute_task task_1" in names and "execute_task summary" in names, names
    assert not any("secret" in n for n in names)
    captured = {s["trace_id"] for s in spans if s["name"] == "invoke_workflow capture_crew"}
    assert not any("secret" in str(s["attributes"]) for s in spans if s["trace_id"] not in captured)
    assert result["error"], "the failing crew must raise"
    failed = {s["name"]: s for s in spans if s["status"] == "ERROR"}
    for name in ("invoke_workflow failing_crew", "execute_task task_1", "invoke_agent Failer"):
        assert name in failed, (name, sorted(failed))
        assert failed[name]["attributes"]["error.type"], failed[name]
    # one trace per kickoff
    by_root = {s["trace_id"] for s in spans if s["parent_span_id"] is None and s["name"].startswith("invoke_workflow")}
    assert len(by_root) == 3 and len({s["trace_id"] for s in spans}) == 3
    # capture on: the task's and the agent's text, nothing of it in the span names
    shown = next(s for s in spans if s["name"] == "execute_task shown")
    assert shown["attributes"]["crewai.task.description"] == "visible-description"
    assert shown["attributes"]["crewai.task.expected_output"] == "visible-expected"
    agent = next(s for s in spans if s["name"] == "invoke_agent Analyst" and s["parent_span_id"] == shown["span_id"])
    assert agent["attributes"]["crewai.agent.goal"] == "secret-goal"
