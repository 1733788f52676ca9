"""A script that reads the first chunk of a LiteLLM stream and keeps the stream in a variable until it
exits (the span would end only when the stream is collected, after the exporters shut down)."""
import os
import litellm
BASE = os.environ["FAKE_LLM_URL"]
stream = litellm.completion(model="openai/gpt-4o-mini", api_base=BASE, api_key="x", stream=True,
                            messages=[{"role": "user", "content": "Tell me a story zqcanary-prompt"}])
first = next(stream)
print("kept a stream open until exit")
