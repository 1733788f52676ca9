"""The OpenAI SDK's other ways to call: the streaming helper (events, final completion), raw and
streaming responses, structured output parsing, tool calls, embeddings; the Responses API (create,
a stream of typed events, its streaming helper, a failure); sync and async."""
import asyncio
import json
import os

import openai
from pydantic import BaseModel

BASE = os.environ["FAKE_LLM_URL"]
MSGS = [{"role": "system", "content": "Be brief. zqcanary-system"}, {"role": "user", "content": "Hi zqcanary-prompt"}]
TOOLS = [{"type": "function", "function": {"name": "lookup", "description": "Look up zqcanary-tool",
                                           "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}}]


class Answer(BaseModel):
    text: str


client = openai.OpenAI(base_url=BASE, api_key="sk-fake", max_retries=0)

with client.chat.completions.stream(model="gpt-4o-mini", messages=MSGS) as stream:
    kinds = sorted({event.type for event in stream})
    final = stream.get_final_completion()
print("stream helper:", kinds, final.choices[0].message.content)

raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MSGS)
print("raw:", raw.status_code, raw.parse().choices[0].message.content)

with client.chat.completions.with_streaming_response.create(model="gpt-4o-mini", messages=MSGS) as response:
    body = json.loads(b"".join(response.iter_bytes()))
print("streaming response:", response.status_code, body["choices"][0]["message"]["content"])

try:
    parsed = client.beta.chat.completions.parse(model="gpt-4o-mini", messages=MSGS, response_format=Answer)
    print("parse:", parsed.choices[0].message.parsed)
except Exception as exc:  # the fake answers in prose: the SDK's own error, the same both runs
    print("parse failed:", type(exc).__name__)

r = client.chat.completions.create(model="gpt-4o-mini", messages=MSGS, tools=TOOLS, n=1)
print("tools:", r.choices[0].finish_reason)

e = client.embeddings.create(model="text-embedding-3-small", input=["zqcanary-embed one", "zqcanary-embed two"])
print("embeddings:", len(e.data), len(e.data[0].embedding))

r = client.responses.create(model="gpt-4o-mini", instructions="Be brief. zqcanary-system", input="Hi zqcanary-prompt")
print("responses:", r.output_text)

stream = client.responses.create(model="gpt-4o-mini", input=[{"role": "user", "content": "Hi zqcanary-prompt"}], stream=True)
kinds = [event.type for event in stream]
print("responses stream:", kinds[0], kinds[-1], len(kinds), "events")

with client.responses.stream(model="gpt-4o-mini", input="Hi zqcanary-prompt") as events:
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    final = events.get_final_response()
print("responses stream helper:", text == final.output_text, final.output_text)

try:
    client.responses.create(model="gpt-4o-mini", input="[fail:500] zqcanary-prompt")
except openai.APIStatusError as exc:
    print("responses failed:", type(exc).__name__, exc.status_code)


async def main():
    aclient = openai.AsyncOpenAI(base_url=BASE, api_key="sk-fake", max_retries=0)
    async with aclient.chat.completions.stream(model="gpt-4o-mini", messages=MSGS) as stream:
        n = 0
        async for _ in stream:
            n += 1
        final = await stream.get_final_completion()
    print("async stream helper:", n > 0, final.choices[0].message.content)
    raw = await aclient.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MSGS)
    print("async raw:", raw.status_code, (await raw.parse()).choices[0].message.content if asyncio.iscoroutine(raw.parse()) else raw.parse().choices[0].message.content)
    e = await aclient.embeddings.create(model="text-embedding-3-small", input="zqcanary-embed async")
    print("async embeddings:", len(e.data))
    r = await aclient.responses.create(model="gpt-4o-mini", input="Hi zqcanary-prompt async")
    print("async responses:", r.output_text)
    stream = await aclient.responses.create(model="gpt-4o-mini", input="Hi zqcanary-prompt", stream=True)
    n = 0
    async for _ in stream:
        n += 1
    print("async responses stream:", n, "events")

asyncio.run(main())
