"""A crew using CrewAI's task options (2 requests): a structured output (``output_pydantic``,
through CrewAI's native OpenAI provider and through LiteLLM), a guardrail that rejects the first
answer (the agent retries), an agent that reasons before acting (``reasoning=True``: a planning
call), a task with the previous task as context, task and step callbacks."""
import os
import sys

from crewai import LLM, Agent, Crew, Task
from pydantic import BaseModel

BASE = os.environ["FAKE_LLM_URL"]
# CrewAI converts a LiteLLM answer to the model with instructor, whose client reads these
os.environ["OPENAI_API_KEY"], os.environ["OPENAI_BASE_URL"] = "x", BASE
NATIVE = LLM(model="gpt-4o-mini", base_url=BASE, api_key="x")
VIA_LITELLM = LLM(model="openai/gpt-4o-mini", base_url=BASE, api_key="x", is_litellm=True)
OUT, sys.stdout = sys.stdout, sys.stderr  # CrewAI's console panels are not the app's output


class Facts(BaseModel):
    city: str
    facts: list[str]


attempts = []


def at_least_second_try(output):
    attempts.append(1)
    return (len(attempts) > 1, output.raw if len(attempts) > 1 else "try again, zqcanary-guardrail")


def crew(llm, name):
    analyst = Agent(role="Analyst", goal="List facts zqcanary-goal", backstory="zqcanary-backstory", llm=llm,
                    allow_delegation=False, max_iter=2, reasoning=True, max_reasoning_attempts=1)
    gather = Task(name="gather", description="Facts about {city} zqcanary-description",
                  expected_output="facts zqcanary-expected-output", agent=analyst, output_pydantic=Facts,
                  callback=lambda output: None)
    check = Task(name="check", description="Check the facts zqcanary-description", expected_output="ok",
                 agent=analyst, context=[gather], guardrail=at_least_second_try, guardrail_max_retries=2)
    return Crew(agents=[analyst], tasks=[gather, check], name=name, step_callback=lambda step: None)


for llm, name in ((NATIVE, "native_crew"), (VIA_LITELLM, "litellm_crew")):
    attempts.clear()
    result = crew(llm, name).kickoff(inputs={"city": "Paris zqcanary-input"})
    structured = result.tasks_output[0].pydantic
    print(name, type(structured).__name__, bool(result.raw), "guardrail attempts:", len(attempts), file=OUT)
