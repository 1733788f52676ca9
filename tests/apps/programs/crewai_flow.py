"""CrewAI Flows: a Flow whose @start and @listen steps each run a crew, started with kickoff()
and with kickoff_async() (2 requests). Each run must be one trace: the Flow's invoke_workflow
span over both crews."""
import asyncio
import contextlib
import hashlib
import os
import sys

from crewai import LLM, Agent, Crew, Task
from crewai.flow.flow import Flow, listen, start

BASE = os.environ["FAKE_LLM_URL"]
LLM_ = LLM(model="openai/gpt-4o-mini", base_url=BASE, api_key="x", is_litellm=True)


def crew(name: str, topic: str) -> Crew:
    agent = Agent(role=f"{name} agent", goal="Answer zqcanary-goal", backstory="zqcanary-backstory", llm=LLM_,
                  allow_delegation=False, max_iter=2)
    task = Task(description=f"Answer about {topic} zqcanary-description", expected_output="zqcanary-expected-output",
                agent=agent)
    return Crew(agents=[agent], tasks=[task], name=name)


class ResearchFlow(Flow):
    @start()
    def research(self):
        return crew("research_crew", "rivers zqcanary-input").kickoff().raw

    @listen(research)
    def write(self, findings):
        return crew("writing_crew", "a summary").kickoff(inputs={"findings": findings}).raw


def digest(text) -> str:
    return hashlib.sha256(str(text).encode()).hexdigest()[:12]


with contextlib.redirect_stdout(sys.stderr):  # CrewAI's console panels are not the app's output
    first = ResearchFlow().kickoff()
    second = asyncio.run(ResearchFlow().kickoff_async())
print("kickoff", digest(first))
print("kickoff_async", digest(second))
