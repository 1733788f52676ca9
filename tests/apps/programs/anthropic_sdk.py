"""The Anthropic SDK used directly: messages.create, a stream (iterated, then its final message), async."""
import asyncio
import os

import anthropic

ROOT = os.environ["FAKE_LLM_ROOT"]
KW = dict(model="claude-3-5-haiku-latest", max_tokens=200, system="Be brief. zqcanary-system",
          messages=[{"role": "user", "content": "Hi zqcanary-prompt"}])

client = anthropic.Anthropic(base_url=ROOT, api_key="sk-ant-fake", max_retries=0)
r = client.messages.create(**KW)
print("create:", r.content[0].text, r.stop_reason)

with client.messages.stream(**KW) as stream:
    text = "".join(stream.text_stream)
    final = stream.get_final_message()
print("stream:", text, final.stop_reason)

events = list(client.messages.create(**KW, stream=True))
print("raw stream events:", [e.type for e in events])


async def main():
    aclient = anthropic.AsyncAnthropic(base_url=ROOT, api_key="sk-ant-fake", max_retries=0)
    r = await aclient.messages.create(**KW)
    print("acreate:", r.content[0].text)

asyncio.run(main())
