"""LiteLLM, synchronous: completion, completion(stream=True), a failing call, embedding, and the
Responses API (`litellm.responses`, plain and streamed)."""
import os

import litellm

BASE = os.environ["FAKE_LLM_URL"]
MSGS = [{"role": "system", "content": "You are terse. zqcanary-system"},
        {"role": "user", "content": "Say hello zqcanary-prompt"}]

r = litellm.completion(model="openai/gpt-4o-mini", api_base=BASE, api_key="x", messages=MSGS)
print("completion:", r.choices[0].message.content)

text, n = "", 0
for chunk in litellm.completion(model="openai/gpt-4o-mini", api_base=BASE, api_key="x", messages=MSGS, stream=True):
    n += 1
    text += chunk.choices[0].delta.content or "" if chunk.choices else ""
print("stream:", n, "chunks:", text)

try:
    litellm.completion(model="openai/gpt-4o-mini", api_base=BASE, api_key="x", num_retries=0, max_retries=0,
                       messages=[{"role": "user", "content": "[fail:500] zqcanary-failing"}])
except Exception as exc:
    print("failed:", type(exc).__name__)

e = litellm.embedding(model="openai/text-embedding-3-small", api_base=BASE, api_key="x",
                      input=["zqcanary-embedding one", "zqcanary-embedding two"])
print("embedding:", len(e.data), len(e.data[0]["embedding"]))

r = litellm.responses(model="openai/gpt-4o-mini", api_base=BASE, api_key="x", input="Hi zqcanary-prompt",
                      instructions="Be brief. zqcanary-system")
print("responses:", r.output[0].content[0].text)

events = [e.type for e in litellm.responses(model="openai/gpt-4o-mini", api_base=BASE, api_key="x",
                                            input="Hi zqcanary-prompt", stream=True)]
print("responses stream:", events[0], events[-1])
