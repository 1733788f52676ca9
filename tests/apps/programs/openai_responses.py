"""The OpenAI Responses API: create, a stream of typed events, the streaming helper, async, a failure."""
import asyncio
import os

import openai

BASE = os.environ["FAKE_LLM_URL"]
client = openai.OpenAI(base_url=BASE, api_key="sk-fake", max_retries=0)

r = client.responses.create(model="gpt-4o-mini", instructions="Be brief. zqcanary-system", input="Hi zqcanary-prompt")
print("create:", r.output_text)

stream = client.responses.create(model="gpt-4o-mini", input=[{"role": "user", "content": "Hi zqcanary-prompt"}], stream=True)
kinds = [event.type for event in stream]
print("stream:", kinds[0], kinds[-1], len(kinds), "events")

with client.responses.stream(model="gpt-4o-mini", input="Hi zqcanary-prompt") as events:
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    final = events.get_final_response()
print("stream helper:", text == final.output_text, final.output_text)

try:
    client.responses.create(model="gpt-4o-mini", input="[fail:500] zqcanary-prompt")
except openai.APIStatusError as exc:
    print("failed:", type(exc).__name__, exc.status_code)


async def main():
    aclient = openai.AsyncOpenAI(base_url=BASE, api_key="sk-fake", max_retries=0)
    r = await aclient.responses.create(model="gpt-4o-mini", input="Hi zqcanary-prompt async")
    print("acreate:", r.output_text)
    stream = await aclient.responses.create(model="gpt-4o-mini", input="Hi zqcanary-prompt", stream=True)
    n = 0
    async for _ in stream:
        n += 1
    print("astream:", n, "events")

asyncio.run(main())
