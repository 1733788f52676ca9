"""The Anthropic SDK's other ways to call (6 requests): the async streaming helper, a tool-use loop
inside the app's own request span (tool_use, then the tool_result), the raw response, an async raw
event stream, a rate-limited call (429, no retries) and token counting (free: not an LLM call)."""
import asyncio
import os

import anthropic
from opentelemetry import trace

ROOT = os.environ["FAKE_LLM_ROOT"]
MODEL = "claude-haiku-4-5"
SYSTEM = "Be brief. zqcanary-system"
TOOLS = [{"name": "get_weather", "description": "Weather for a city zqcanary-tool",
          "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]
tracer = trace.get_tracer("anthropic-app")


async def async_calls():
    aclient = anthropic.AsyncAnthropic(base_url=ROOT, api_key="sk-ant-fake", max_retries=0)
    async with aclient.messages.stream(model=MODEL, max_tokens=200, system=SYSTEM,
                                       messages=[{"role": "user", "content": "Hi zqcanary-prompt"}]) as stream:
        text = "".join([t async for t in stream.text_stream])
        final = await stream.get_final_message()
    print("async stream helper:", text == final.content[0].text, final.stop_reason)
    events = [e.type async for e in await aclient.messages.create(
        model=MODEL, max_tokens=200, stream=True, messages=[{"role": "user", "content": "Hi zqcanary-prompt"}])]
    print("async raw stream:", events[0], events[-1])


client = anthropic.Anthropic(base_url=ROOT, api_key="sk-ant-fake", max_retries=0)
asyncio.run(async_calls())

with tracer.start_as_current_span("request weather"):
    messages = [{"role": "user", "content": 'Weather? [call:get_weather {"city": "Oslo"}] zqcanary-prompt'}]
    first = client.messages.create(model=MODEL, max_tokens=200, system=SYSTEM, tools=TOOLS, messages=messages)
    use = next(b for b in first.content if b.type == "tool_use")
    messages += [{"role": "assistant", "content": first.content},
                 {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id,
                                               "content": "Sunny zqcanary-tool-output"}]}]
    second = client.messages.create(model=MODEL, max_tokens=200, system=SYSTEM, tools=TOOLS, messages=messages)
print("tool loop:", first.stop_reason, use.name, second.stop_reason)

raw = client.messages.with_raw_response.create(model=MODEL, max_tokens=200,
                                               messages=[{"role": "user", "content": "Hi zqcanary-prompt"}])
print("raw:", raw.http_response.status_code, raw.parse().stop_reason)

try:
    client.messages.create(model=MODEL, max_tokens=200, messages=[{"role": "user", "content": "[fail:429] zqcanary-prompt"}])
except anthropic.RateLimitError as exc:
    print("rate limited:", exc.status_code)

counted = client.messages.count_tokens(model=MODEL, system=SYSTEM, messages=[{"role": "user", "content": "Hi zqcanary-prompt"}])
print("count tokens:", counted.input_tokens > 0)
