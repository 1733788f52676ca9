"""A FastAPI service as it is deployed: ``uvicorn --workers 2`` (a supervisor spawning two worker
processes), then ``gunicorn -k uvicorn.workers.UvicornWorker -w 2`` (pre-fork, ASGI workers),
the README's middleware, a LiteLLM call per request; a client sends four requests to each, then
stops the server with SIGTERM (4 requests each; the argument picks one)."""
import os
import signal
import socket
import subprocess
import sys
import time

import litellm
from fastapi import FastAPI

from instrumentation.http import TraceContextASGIMiddleware

BASE = os.environ["FAKE_LLM_URL"]
app = FastAPI()
app.add_middleware(TraceContextASGIMiddleware)


@app.get("/ask/{topic}")
async def ask(topic: str):
    r = await litellm.acompletion(model="openai/gpt-4o-mini", api_base=BASE, api_key="x",
                                  messages=[{"role": "user", "content": f"{topic} zqcanary-prompt"}])
    return {"answer": r.choices[0].message.content.splitlines()[-1]}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_and_ask(cmd: list[str], port: int, label: str) -> None:
    import httpx

    server = subprocess.Popen(cmd)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:  # the port accepts once the server listens
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:
            for topic in ("rivers", "bridges", "lakes", "hills"):
                print(label, topic, client.get(f"/ask/{topic}").status_code)
    finally:  # the server goes down whatever happened above (a leftover child would hold our stdout)
        server.send_signal(signal.SIGTERM)
        print(label, "exit:", server.wait(120))


if __name__ == "__main__":
    servers = sys.argv[1:] or ["uvicorn", "gunicorn"]
    if "uvicorn" in servers:
        port = free_port()
        serve_and_ask([sys.executable, "-m", "uvicorn", "uvicorn_workers:app", "--workers", "2", "--port", str(port),
                       "--log-level", "warning"], port, "uvicorn")
    if "gunicorn" in servers:
        port = free_port()
        serve_and_ask([sys.executable, "-m", "gunicorn", "-k", "uvicorn.workers.UvicornWorker", "-w", "2", "--bind",
                       f"127.0.0.1:{port}", "--log-level", "warning", "uvicorn_workers:app"], port, "gunicorn")
