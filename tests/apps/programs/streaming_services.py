"""Chat services that stream, as chat UIs call them (5 requests):

FastAPI under uvicorn with the README's middleware: a server-sent-events endpoint streaming a
LiteLLM stream (read to its end by one client; left after the first event by another, as a
"stop" button does), a sync ``def`` endpoint (FastAPI's thread pool) and a background task that
calls the LLM after the response is sent. Flask under gunicorn (one sync worker) with the README's
WSGI middleware: a streamed response (``stream_with_context``) over a LiteLLM stream. Ids and user
text are in the paths; the services are stopped with SIGTERM.
"""
import os
import signal
import socket
import subprocess
import sys
import time

import litellm
from flask import Flask, Response, stream_with_context

from instrumentation.http import TraceContextWSGIMiddleware

BASE = os.environ["FAKE_LLM_URL"]
KW = dict(model="openai/gpt-4o-mini", api_base=BASE, api_key="x", num_retries=0)


def ask(text: str) -> list[dict]:
    return [{"role": "user", "content": f"{text} zqcanary-prompt"}]


flask_app = Flask(__name__)
flask_app.wsgi_app = TraceContextWSGIMiddleware(flask_app.wsgi_app)  # the README's line


@flask_app.get("/stream/<int:doc>")
def flask_stream(doc):
    def words():
        for chunk in litellm.completion(**KW, messages=ask(f"doc {doc}"), stream=True):
            yield chunk.choices[0].delta.content or ""
    return Response(stream_with_context(words()), mimetype="text/plain")


def serve_fastapi(port: int) -> None:
    import uvicorn
    from fastapi import BackgroundTasks, FastAPI
    from fastapi.responses import StreamingResponse

    from instrumentation.http import TraceContextASGIMiddleware

    app = FastAPI()
    app.add_middleware(TraceContextASGIMiddleware)

    @app.post("/chat/{conversation}/stream")
    async def chat_stream(conversation: str):
        async def events():
            stream = await litellm.acompletion(**KW, messages=ask(f"chat {conversation}"), stream=True)
            async for chunk in stream:
                yield f"data: {chunk.choices[0].delta.content or ''}\n\n"
            yield "data: [DONE]\n\n"
        return StreamingResponse(events(), media_type="text/event-stream")

    @app.get("/items/{item}/summary")
    def summary(item: str):  # a sync endpoint: FastAPI runs it in its thread pool
        r = litellm.completion(**KW, messages=ask(f"summarise {item}"))
        return {"summary": r.choices[0].message.content.splitlines()[-1]}

    def remember(note: str) -> None:
        litellm.completion(**KW, messages=ask(f"remember {note}"))

    @app.post("/notes/{note}")
    async def notes(note: str, background: BackgroundTasks):
        background.add_task(remember, note)
        return {"queued": True}

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(port: int) -> None:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)


def main() -> None:
    import httpx

    api_port, flask_port = free_port(), free_port()
    servers = [subprocess.Popen([sys.executable, __file__, "fastapi", str(api_port)]),
               subprocess.Popen([sys.executable, "-m", "gunicorn", "--workers", "1", "--bind",
                                 f"127.0.0.1:{flask_port}", "--log-level", "warning", "streaming_services:flask_app"])]
    try:
        wait_for(api_port)
        wait_for(flask_port)
        with httpx.Client(base_url=f"http://127.0.0.1:{api_port}", timeout=120) as client:
            with client.stream("POST", "/chat/ada%20asks%20about%20rivers/stream") as response:
                events = [line for line in response.iter_lines() if line.startswith("data: ")]
            print("sse:", response.status_code, len(events) > 2, events[-1])
            with client.stream("POST", "/chat/c-2/stream") as response:
                first = next(line for line in response.iter_lines() if line.startswith("data: "))
            print("sse left after:", first.startswith("data: "))
            r = client.get("/items/7/summary")
            print("sync endpoint:", r.status_code, bool(r.json()["summary"]))
            print("background:", client.post("/notes/call%20me").json())
        with httpx.Client(base_url=f"http://127.0.0.1:{flask_port}", timeout=120) as client:
            r = client.get("/stream/9")
            print("flask stream:", r.status_code, "Final Answer" in r.text)
        time.sleep(1)  # the background task's call ends after its response was sent
    finally:  # the servers go down whatever happened above (a leftover child would hold our stdout)
        for server in servers:
            server.send_signal(signal.SIGTERM)
        print("servers exit:", sorted(server.wait(120) for server in servers))


if __name__ == "__main__":
    if sys.argv[1:2] == ["fastapi"]:
        serve_fastapi(int(sys.argv[2]))
    else:
        main()
