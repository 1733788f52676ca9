"""The sample multi-agent workload (process A), against the fake LLM provider.

    python -m instrumentation.demo --collector http://127.0.0.1:4318

A CrewAI crew per request, for several tenants:

* ``Manager`` delegates research to ``Researcher`` (CrewAI delegation tool);
* ``Researcher`` uses ``lookup_weather`` and ``ask_research_service``, which calls
  process B over HTTP (``requests``: traceparent + baggage), where the ``Analyst``
  agent makes a streamed LLM call;
* ``Checker`` runs as an ``async_execution=True`` task (a thread), through CrewAI's
  native OpenAI provider (not LiteLLM); its ``fact_check`` tool fans out with a
  ``ThreadPoolExecutor`` and ``asyncio.run`` (one call fails with a 429).

Every request is one trace across both processes; ``run_demo`` returns the trace ids.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from typing import Any

import instrumentation

TENANTS = ("acme", "globex")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_http(url: str, timeout: float, proc: subprocess.Popen | None = None) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} was ready")
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"{url} not ready after {timeout}s")


def start_service(llm_base_url: str, env: dict[str, str] | None = None, port: int | None = None):
    port = port or _free_port()
    child_env = dict(os.environ)
    child_env.update(env or {})
    child_env["DEMO_LLM_BASE_URL"] = llm_base_url
    child_env["OTEL_SERVICE_NAME"] = "demo-research-service"
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    child_env["PYTHONPATH"] = root + (os.pathsep + child_env["PYTHONPATH"] if child_env.get("PYTHONPATH") else "")
    proc = subprocess.Popen([sys.executable, "-m", "instrumentation.demo.service", "--port", str(port)],
                            env=child_env, stdout=subprocess.DEVNULL, stderr=None)
    return proc, f"http://127.0.0.1:{port}"


def build_crew(llm_base_url: str, service_url: str):
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    import litellm
    import requests
    from crewai import LLM, Agent, Crew, Task
    from crewai.tools import tool

    # LiteLLM route (openinference spans). litellm is pinned to 1.105.0: 1.106.x imports
    # mcp 2.x names while crewai 1.15 needs mcp<2, so any call with tools raised ImportError.
    via_litellm = LLM(model="openai/gpt-4o-mini", base_url=llm_base_url, api_key="fake", is_litellm=True)
    # CrewAI's native OpenAI provider (traceloop openai spans)
    native = LLM(model="gpt-4o-mini", base_url=llm_base_url, api_key="fake")

    @tool("lookup_weather")
    def lookup_weather(city: str) -> str:
        """Look up today's weather for a city."""
        return f"Sunny and 21C in {city}"

    @tool("ask_research_service")
    def ask_research_service(question: str) -> str:
        """Ask the research service (another process) a question."""
        r = requests.post(service_url + "/research", json={"question": question}, timeout=60)
        r.raise_for_status()
        return r.json()["answer"]

    def _one_call(prompt: str) -> str:
        try:
            resp = litellm.completion(model="openai/gpt-4o-mini", api_base=llm_base_url, api_key="fake",
                                      num_retries=0, max_retries=0, messages=[{"role": "user", "content": prompt}])
            return resp.choices[0].message.content or ""
        except Exception as exc:  # the failing call is part of the demo
            return f"unavailable ({type(exc).__name__})"

    async def _async_calls() -> list[str]:
        async def one(prompt):
            resp = await litellm.acompletion(model="openai/gpt-4o-mini", api_base=llm_base_url, api_key="fake",
                                             num_retries=0, messages=[{"role": "user", "content": prompt}])
            return resp.choices[0].message.content or ""
        return list(await asyncio.gather(one("second opinion A"), one("second opinion B")))

    @tool("fact_check")
    def fact_check(claim: str) -> str:
        """Fact-check a claim with two independent sources."""
        with ThreadPoolExecutor(max_workers=2) as pool:
            results = list(pool.map(_one_call, [f"check: {claim}", f"check: {claim} [fail:429]"]))
        results += asyncio.run(_async_calls())
        return " | ".join(results)

    researcher = Agent(role="Researcher", goal="Find facts", backstory="A careful researcher.",
                       llm=via_litellm, tools=[lookup_weather, ask_research_service], allow_delegation=False,
                       max_iter=4)
    manager = Agent(role="Manager", goal="Coordinate the research", backstory="Runs the team.",
                    llm=via_litellm, allow_delegation=True, max_iter=4)
    checker = Agent(role="Checker", goal="Check facts", backstory="Sceptical.", llm=native, tools=[fact_check],
                    allow_delegation=False, max_iter=4)

    check = Task(name="fact check",
                 description='Fact-check the claim that Paris is sunny. [call:fact_check {"claim": "Paris is sunny"}]',
                 expected_output="a verdict", agent=checker, async_execution=True)
    research = Task(
        name="research",
        description='Research the weather in Paris and ask the archive. '
                    '[call:lookup_weather {"city": "Paris"}] '
                    '[call:ask_research_service {"question": "What does the archive say about Paris weather?"}]',
        expected_output="a short report", agent=researcher)
    report = Task(
        name="report",
        description='Write the final report; delegate the capital question. '
                    '[call:delegate_work_to_coworker {"task": "What is the capital of France?", '
                    '"context": "geography quiz", "coworker": "Researcher"}]',
        expected_output="the final report", agent=manager)
    return Crew(agents=[checker, researcher, manager], tasks=[check, research, report], name="research_crew",
                verbose=False)


def handle_request(crew, tenant: str, session: str) -> str:
    """One user request: one trace (returns its trace id)."""
    from opentelemetry import trace

    tracer = trace.get_tracer("instrumentation.demo")
    with instrumentation.attributes(tenant_id=tenant, engagement_id=f"eng-{tenant}", flow="research",
                                    feature="weather_report", user_id=f"user-{tenant}", session_id=session):
        with tracer.start_as_current_span("handle_request", kind=trace.SpanKind.SERVER) as span:
            crew.kickoff()
            return format(span.get_span_context().trace_id, "032x")


def run_demo(collector_endpoint: str | None = None, *, tenants: tuple[str, ...] = TENANTS,
             llm_base_url: str | None = None, service_env: dict[str, str] | None = None,
             exporter: Any = None) -> list[str]:
    """Run the workload once per tenant; returns the trace ids (one per request).

    ``collector_endpoint``: OTLP/HTTP base URL (e.g. ``http://127.0.0.1:4318``) for both
    processes; ``None`` keeps the ``OTEL_EXPORTER_OTLP_*`` environment as it is.
    """
    from instrumentation.fakellm import FakeLLMServer

    if collector_endpoint:
        os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = collector_endpoint
    os.environ.setdefault("OTEL_SERVICE_NAME", "demo-crew-app")
    instrumentation.init(service_name="demo-crew-app", exporter=exporter)
    fake = None
    if llm_base_url is None:
        fake = FakeLLMServer().start()
        llm_base_url = fake.base_url
    env = dict(service_env or {})
    if collector_endpoint:
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = collector_endpoint
    proc, service_url = start_service(llm_base_url, env)
    try:
        crew = build_crew(llm_base_url, service_url)  # imports crewai while the service starts
        _wait_http(service_url + "/health", 180, proc)
        trace_ids = [handle_request(crew, t, f"session-{t}-{i}") for i, t in enumerate(tenants)]
    finally:
        from instrumentation.bootstrap import force_flush

        force_flush(10000)
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
        if fake is not None:
            fake.stop()
    return trace_ids


def main(argv=None) -> int:
    import argparse

    ap = argparse.ArgumentParser(description="Run the sample multi-agent workload")
    ap.add_argument("--collector", default=None,
                    help="OTLP/HTTP endpoint of the collector (default: OTEL_EXPORTER_OTLP_ENDPOINT); "
                         "'capture' runs a local in-process receiver and prints the trace tree")
    args = ap.parse_args(argv)
    if args.collector == "capture":
        from instrumentation.otlp_capture import OTLPCapture, print_tree

        with OTLPCapture() as cap:
            ids = run_demo(cap.endpoint)
            spans = cap.wait_for(lambda s: any(x["name"] == "handle_request" for x in s), 30)
            time.sleep(1.0)
            spans = cap.snapshot()
            print(f"trace {ids[0]}:")
            print_tree(spans, ids[0])
        return 0
    ids = run_demo(args.collector)
    for t in ids:
        print(t)
    return 0


if __name__ == "__main__":
    sys.exit(main())
