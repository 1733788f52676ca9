"""CrewAI without a Crew, and CrewAI's native providers (6 requests):

`Agent.kickoff` (an agent that calls a tool, no crew), `await Agent.kickoff_async` and `akickoff`,
a Flow whose step calls `Agent.kickoff` (inside the Flow's event loop it returns a coroutine),
CrewAI's `LLM.call` used as a plain client, and a crew whose agent uses CrewAI's native Anthropic
provider (the Anthropic SDK underneath, which traces itself) with planning on (a planner LLM call
before the tasks). Content (goal, backstory, messages, task text, tool I/O) carries the canary.
"""
import asyncio
import os
import sys

from crewai import LLM, Agent, Crew, Task
from crewai.flow.flow import Flow, start
from crewai.tools import tool

BASE = os.environ["FAKE_LLM_URL"]
ROOT = os.environ["FAKE_LLM_ROOT"]
OPENAI_NATIVE = LLM(model="gpt-4o-mini", base_url=BASE, api_key="x")
ANTHROPIC_NATIVE = LLM(model="anthropic/claude-haiku-4-5", base_url=ROOT, api_key="sk-ant-fake", max_tokens=200)


@tool("lookup_city")
def lookup_city(city: str) -> str:
    """Look up facts about a city."""
    return f"{city} has a river. zqcanary-tool-output"


def analyst(llm) -> Agent:
    return Agent(role="Analyst", goal="Answer briefly zqcanary-goal", backstory="Precise. zqcanary-backstory",
                 llm=llm, tools=[lookup_city], allow_delegation=False, max_iter=3)



async def kickoff_async() -> bool:
    out = await analyst(OPENAI_NATIVE).kickoff_async("And Lyon? zqcanary-prompt")
    again = await analyst(OPENAI_NATIVE).akickoff("And Nice? zqcanary-prompt")
    return bool(out.raw) and bool(again.raw)


class AskFlow(Flow):
    @start()
    def ask(self):
        return analyst(OPENAI_NATIVE).kickoff("What about Lille? zqcanary-prompt").raw


# CrewAI's console panels (random ids, printed from its event bus's threads, whenever they run)
# are not the app's output: they go to stderr, the app's own lines to stdout.
OUT, sys.stdout = sys.stdout, sys.stderr


TOOL_CALL = '[call:lookup_city {"city": "Paris zqcanary-tool-input"}]'
print("agent kickoff:", bool(analyst(OPENAI_NATIVE).kickoff(f"What is Paris known for? {TOOL_CALL} zqcanary-prompt").raw),
      file=OUT)
print("agent kickoff_async, akickoff:", asyncio.run(kickoff_async()), file=OUT)
print("flow with agent kickoff:", bool(AskFlow().kickoff()), file=OUT)
print("llm call:", bool(OPENAI_NATIVE.call([{"role": "user", "content": "Say hi zqcanary-prompt"}])), file=OUT)

claude_analyst = analyst(ANTHROPIC_NATIVE)
crew = Crew(agents=[claude_analyst], name="planned_crew", planning=True, planning_llm=OPENAI_NATIVE,
            tasks=[Task(name="answer", description="Describe {city} zqcanary-description",
                        expected_output="one line zqcanary-expected-output", agent=claude_analyst)])
print("planned crew:", bool(crew.kickoff(inputs={"city": "Nice zqcanary-input"}).raw), file=OUT)
