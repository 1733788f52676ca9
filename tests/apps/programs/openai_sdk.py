"""The OpenAI SDK used directly: sync and async, streamed with and without include_usage, a failure."""
import asyncio
import os

import openai

BASE = os.environ["FAKE_LLM_URL"]
MSGS = [{"role": "system", "content": "Be brief. zqcanary-system"}, {"role": "user", "content": "Hi zqcanary-prompt"}]

client = openai.OpenAI(base_url=BASE, api_key="sk-fake", max_retries=0)
r = client.chat.completions.create(model="gpt-4o-mini", messages=MSGS)
print("create:", r.choices[0].message.content)

stream = client.chat.completions.create(model="gpt-4o-mini", messages=MSGS, stream=True)
chunks = list(stream)
print("stream:", len(chunks), "chunks", "".join(c.choices[0].delta.content or "" for c in chunks if c.choices))
print("stream usage seen by the app:", [c.usage for c in chunks if c.usage])

with client.chat.completions.create(model="gpt-4o-mini", messages=MSGS, stream=True,
                                    stream_options={"include_usage": True}) as stream:
    chunks = list(stream)
print("stream with usage:", len(chunks), "chunks; usage chunk:", sum(1 for c in chunks if c.usage and not c.choices))

try:
    client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "[fail:500] zqcanary"}])
except openai.APIStatusError as exc:
    print("failed:", type(exc).__name__, exc.status_code)


async def main():
    aclient = openai.AsyncOpenAI(base_url=BASE, api_key="sk-fake", max_retries=0)
    r = await aclient.chat.completions.create(model="gpt-4o-mini", messages=MSGS)
    print("acreate:", r.choices[0].message.content)
    stream = await aclient.chat.completions.create(model="gpt-4o-mini", messages=MSGS, stream=True)
    n = 0
    async for _ in stream:
        n += 1
    print("astream:", n, "chunks")

asyncio.run(main())
