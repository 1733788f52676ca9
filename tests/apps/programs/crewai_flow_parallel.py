"""A CrewAI Flow as production flows are written (1 request): typed state, an async @start that runs
two crews in parallel (``asyncio.gather`` of ``kickoff_async``), a @router choosing the next step,
``or_``/``and_`` listeners, a step calling the LLM directly, and a flow started from inside
another flow's step. One trace: the outer Flow's invoke_workflow span over everything."""
import asyncio
import os
import sys

from crewai import LLM, Agent, Crew, Task
from crewai.flow.flow import Flow, and_, listen, or_, router, start
from pydantic import BaseModel

BASE = os.environ["FAKE_LLM_URL"]
LLM_ = LLM(model="openai/gpt-4o-mini", base_url=BASE, api_key="x", is_litellm=True)
NATIVE = LLM(model="gpt-4o-mini", base_url=BASE, api_key="x")
OUT, sys.stdout = sys.stdout, sys.stderr  # CrewAI's console panels are not the app's output


def crew(name: str, llm) -> Crew:
    agent = Agent(role=f"{name} agent", goal="Answer zqcanary-goal", backstory="zqcanary-backstory", llm=llm,
                  allow_delegation=False, max_iter=2)
    task = Task(name="answer", description="Answer about {topic} zqcanary-description",
                expected_output="zqcanary-expected-output", agent=agent)
    return Crew(agents=[agent], tasks=[task], name=name)


class TripState(BaseModel):
    topic: str = "rivers zqcanary-input"
    findings: list[str] = []
    route: str = ""


class SummaryFlow(Flow):
    @start()
    def summarise(self):
        return bool(NATIVE.call([{"role": "user", "content": "Summarise zqcanary-prompt"}]))


class TripFlow(Flow[TripState]):
    @start()
    async def research(self):
        results = await asyncio.gather(crew("rivers_crew", LLM_).kickoff_async(inputs={"topic": self.state.topic}),
                                       crew("bridges_crew", NATIVE).kickoff_async(inputs={"topic": "bridges"}))
        self.state.findings = [r.raw for r in results]

    @router(research)
    def choose(self):
        self.state.route = "detailed" if len(self.state.findings) == 2 else "short"
        return self.state.route

    @listen("detailed")
    def detail(self):
        return LLM_.call([{"role": "user", "content": "Detail it zqcanary-prompt"}])

    @listen("short")
    def shorten(self):
        return "short"

    @listen(or_(detail, shorten))
    def review(self):
        return SummaryFlow().kickoff()

    @listen(and_(choose, review))
    def done(self):
        return "done"


flow = TripFlow()
result = flow.kickoff()
print("flow:", result, flow.state.route, len(flow.state.findings), file=OUT)
