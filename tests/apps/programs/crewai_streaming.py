"""CrewAI with streaming on (`Crew(stream=True)`): the crew runs while the app reads its chunks,
synchronously and with `akickoff`, as a chat UI shows a crew's work as it happens (2 requests).
Agents through LiteLLM and CrewAI's native OpenAI provider; content carries the canary."""
import asyncio
import os

from crewai import LLM, Agent, Crew, Task
from crewai.tools import tool

BASE = os.environ["FAKE_LLM_URL"]


@tool("lookup_city")
def lookup_city(city: str) -> str:
    """Look up facts about a city."""
    return f"{city} has a river. zqcanary-tool-output"


def crew() -> Crew:
    researcher = Agent(role="Researcher", goal="Find facts zqcanary-goal", backstory="Careful. zqcanary-backstory",
                       llm=LLM(model="openai/gpt-4o-mini", base_url=BASE, api_key="x", is_litellm=True),
                       tools=[lookup_city], allow_delegation=False, max_iter=3)
    writer = Agent(role="Writer", goal="Write it up zqcanary-goal", backstory="Terse. zqcanary-backstory",
                   llm=LLM(model="gpt-4o-mini", base_url=BASE, api_key="x"), allow_delegation=False, max_iter=3)
    research = Task(name="research", description='Research {topic} zqcanary-description [call:lookup_city {"city": "zqcanary-tool-input"}]',
                    expected_output="facts zqcanary-expected-output", agent=researcher)
    report = Task(name="report", description="Write a report on {topic} zqcanary-description",
                  expected_output="a report zqcanary-expected-output", agent=writer)
    return Crew(agents=[researcher, writer], tasks=[research, report], name="streaming_crew", stream=True)


streaming = crew().kickoff(inputs={"topic": "rivers zqcanary-input"})
chunks = sum(1 for _ in streaming)
print("sync stream: chunks", chunks > 0, "result", bool(streaming.result.raw))


async def main() -> None:
    streaming = await crew().akickoff(inputs={"topic": "lakes zqcanary-input"})
    chunks = 0
    async for _ in streaming:
        chunks += 1
    print("async stream: chunks", chunks > 0, "result", bool(streaming.result.raw))

asyncio.run(main())
