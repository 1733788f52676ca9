"""Provider SDK streams the app stops reading early, as a chat UI's "stop" button does: the
Anthropic SDK's stream helper left inside its `with` block, its raw event stream left after the
first event, and an OpenAI SDK stream left after a few chunks (then closed)."""
import os

import anthropic
import openai

ROOT, BASE = os.environ["FAKE_LLM_ROOT"], os.environ["FAKE_LLM_URL"]
PROMPT = "Tell me a long story zqcanary-prompt [chunk_delay:5]"

claude = anthropic.Anthropic(base_url=ROOT, api_key="sk-ant-fake", max_retries=0)
with claude.messages.stream(model="claude-haiku-4-5", max_tokens=300,
                            messages=[{"role": "user", "content": PROMPT}]) as stream:
    for n, text in enumerate(stream.text_stream, 1):
        if n == 3:
            break
print("anthropic helper: left after 3 texts")

events = claude.messages.create(model="claude-haiku-4-5", max_tokens=300, stream=True,
                                messages=[{"role": "user", "content": PROMPT}])
for event in events:
    print("anthropic raw: first event", event.type)
    break
events.close()

gpt = openai.OpenAI(base_url=BASE, api_key="x", max_retries=0)
chunks = gpt.chat.completions.create(model="gpt-4o-mini", stream=True, messages=[{"role": "user", "content": PROMPT}])
for n, chunk in enumerate(chunks, 1):
    if n == 4:
        break
chunks.close()
print("openai: left after 4 chunks")
