"""CrewAI, every entry point a user calls, one request each (8 requests):

kickoff and akickoff (two agents, a tool), kickoff_async, kickoff_for_each, kickoff_for_each_async,
akickoff_for_each (one agent, two inputs),
a hierarchical crew whose manager delegates, and a crew whose tool fails. Content (goal,
backstory, task description and expected output, inputs, tool arguments and results) carries
the canary. Agents use LiteLLM and CrewAI's native OpenAI provider.
"""
import asyncio
import contextlib
import hashlib
import os
import sys

from crewai import LLM, Agent, Crew, Process, Task
from crewai.tools import tool

BASE = os.environ["FAKE_LLM_URL"]
VIA_LITELLM = LLM(model="openai/gpt-4o-mini", base_url=BASE, api_key="x", is_litellm=True)
NATIVE = LLM(model="gpt-4o-mini", base_url=BASE, api_key="x")


@tool("lookup_city")
def lookup_city(city: str) -> str:
    """Look up facts about a city."""
    return f"{city} has a river. zqcanary-tool-output"


@tool("broken_tool")
def broken_tool(query: str) -> str:
    """A tool that always fails."""
    raise ValueError(f"cannot handle {query}")


def agents():
    researcher = Agent(role="Researcher", goal="Find facts zqcanary-goal", backstory="Careful. zqcanary-backstory",
                       llm=VIA_LITELLM, tools=[lookup_city], allow_delegation=False, max_iter=3)
    writer = Agent(role="Writer", goal="Write it up zqcanary-goal", backstory="Terse. zqcanary-backstory",
                   llm=NATIVE, allow_delegation=False, max_iter=3)
    return researcher, writer


def sequential_crew() -> Crew:
    researcher, writer = agents()
    research = Task(description='Research {topic} zqcanary-description [call:lookup_city {"city": "zqcanary-tool-input"}]',
                    expected_output="facts zqcanary-expected-output", agent=researcher)
    report = Task(name="report", description="Write a report on {topic} zqcanary-description",
                  expected_output="a report zqcanary-expected-output", agent=writer)
    return Crew(agents=[researcher, writer], tasks=[research, report], name="city_crew")


def light_crew() -> Crew:
    """One agent, one task: for the entry points that run the crew once per input."""
    researcher, _ = agents()
    task = Task(name="brief", description="Summarise {topic} zqcanary-description",
                expected_output="a line zqcanary-expected-output", agent=researcher)
    return Crew(agents=[researcher], tasks=[task], name="brief_crew")


def hierarchical_crew() -> Crew:
    researcher, writer = agents()
    task = Task(name="delegated",
                description='Get the facts zqcanary-description [call:delegate_work_to_coworker '
                            '{"task": "Find the river zqcanary-delegation", "context": "geography zqcanary-context", '
                            '"coworker": "Researcher"}]',
                expected_output="facts zqcanary-expected-output")
    return Crew(agents=[researcher, writer], tasks=[task], process=Process.hierarchical, manager_llm=VIA_LITELLM,
                name="managed_crew")


def failing_tool_crew() -> Crew:
    agent = Agent(role="Tester", goal="Try the tool zqcanary-goal", backstory="zqcanary-backstory", llm=VIA_LITELLM,
                  tools=[broken_tool], allow_delegation=False, max_iter=3)
    task = Task(name="try_tool", description='Use the tool [call:broken_tool {"query": "zqcanary-tool-input"}]',
                expected_output="anything", agent=agent)
    return Crew(agents=[agent], tasks=[task], name="fragile_crew")


def digest(result) -> str:
    return hashlib.sha256(str(result.raw).encode()).hexdigest()[:12]


def show(label, results):
    results = results if isinstance(results, list) else [results]
    print(label, [digest(r) for r in results], flush=True)


def main():
    inputs = {"topic": "Paris zqcanary-input"}
    many = [{"topic": "Paris zqcanary-input"}, {"topic": "Lyon zqcanary-input"}]
    with contextlib.redirect_stdout(sys.stderr):  # CrewAI's console output is not the app's output
        steps = [
            ("kickoff", lambda: sequential_crew().kickoff(inputs=inputs)),
            ("akickoff", lambda: asyncio.run(sequential_crew().akickoff(inputs=inputs))),
            ("kickoff_async", lambda: asyncio.run(light_crew().kickoff_async(inputs=inputs))),
            ("kickoff_for_each", lambda: light_crew().kickoff_for_each(inputs=many)),
            ("kickoff_for_each_async", lambda: asyncio.run(light_crew().kickoff_for_each_async(inputs=many))),
            ("akickoff_for_each", lambda: asyncio.run(light_crew().akickoff_for_each(inputs=many))),
            ("hierarchical", lambda: hierarchical_crew().kickoff()),
            ("failing_tool", lambda: failing_tool_crew().kickoff()),
        ]
        for label, run in steps:
            results = run()
            with contextlib.redirect_stdout(sys.__stdout__):
                show(label, results)


main()
