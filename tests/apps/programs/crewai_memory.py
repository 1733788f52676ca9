"""A crew with memory on (CrewAI's embedder through the OpenAI-compatible fake, its storage in the
working directory) and a structured task output: two kickoffs, the second recalls the first."""
import os

from crewai import LLM, Agent, Crew, Task
from pydantic import BaseModel

BASE = os.environ["FAKE_LLM_URL"]
LLM_ = LLM(model="openai/gpt-4o-mini", base_url=BASE, api_key="x", is_litellm=True)
os.environ.setdefault("CREWAI_STORAGE_DIR", os.path.join(os.getcwd(), "crew_storage"))
# CrewAI's memory has an embedder and an LLM of its own (analysing what to remember), configured
# from the environment: both go to the fake, as nothing in a test may leave the machine.
os.environ["EMBEDDINGS_OPENAI_API_BASE"] = BASE
os.environ["EMBEDDINGS_OPENAI_MODEL_NAME"] = "text-embedding-3-small"
os.environ["OPENAI_API_BASE"] = os.environ["OPENAI_BASE_URL"] = BASE


class Note(BaseModel):
    text: str


def crew() -> Crew:
    agent = Agent(role="Archivist", goal="Remember facts zqcanary-goal", backstory="zqcanary-backstory",
                  llm=LLM_, allow_delegation=False, max_iter=2)
    task = Task(name="note", description="Note a fact about {topic} zqcanary-description",
                expected_output="one fact zqcanary-expected-output", agent=agent)
    return Crew(agents=[agent], tasks=[task], name="memory_crew", memory=True,
                embedder={"provider": "openai", "config": {"model": "text-embedding-3-small", "api_key": "x",
                                                          "api_base": BASE}})


for topic in ("rivers zqcanary-input", "bridges zqcanary-input"):
    try:
        result = crew().kickoff(inputs={"topic": topic})
        print("kickoff:", bool(result.raw))
    except Exception as exc:  # the same in both runs: printed, not hidden
        print("kickoff failed:", type(exc).__name__)
