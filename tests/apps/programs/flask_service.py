"""A Flask app with the README's WSGI middleware, calling LiteLLM per request, served either by
gunicorn (pre-fork, two sync workers: ``flask_service.py gunicorn``; or preloaded with threaded
workers: ``gunicorn-preload-gthread``) or by Flask's own threaded
server (``flask_service.py flask``). A client sends four requests, each with the tenant in a
``baggage`` header as a gateway in front of the service would (one fails at the provider: 502),
then stops the server with SIGTERM: gunicorn's graceful stop (the master stops its workers), or
the end of the Flask process."""
import os
import signal
import socket
import subprocess
import sys
import time

import litellm
from flask import Flask, jsonify, request

from instrumentation.http import TraceContextWSGIMiddleware

BASE = os.environ["FAKE_LLM_URL"]

app = Flask(__name__)
app.wsgi_app = TraceContextWSGIMiddleware(app.wsgi_app)  # the README's line


@app.post("/ask")
def ask():
    question = request.get_json()["q"]
    try:
        r = litellm.completion(model="openai/gpt-4o-mini", api_base=BASE, api_key="x", num_retries=0,
                               messages=[{"role": "user", "content": f"{question} zqcanary-prompt"}])
    except (litellm.exceptions.APIError, litellm.exceptions.InternalServerError) as exc:
        return jsonify(answer=f"provider failed: {type(exc).__name__}"), 502
    return jsonify(answer=r.choices[0].message.content.splitlines()[-1])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(kind: str, port: int) -> subprocess.Popen:
    if kind == "gunicorn":  # what a user runs: `gunicorn -w 2 flask_service:app` (sync workers, pre-fork)
        cmd = [sys.executable, "-m", "gunicorn", "--workers", "2", "--worker-class", "sync",
               "--bind", f"127.0.0.1:{port}", "--graceful-timeout", "30", "--log-level", "warning",
               "flask_service:app"]
    elif kind == "gunicorn-preload-gthread":  # the app imported once in the master, threaded workers
        cmd = [sys.executable, "-m", "gunicorn", "--workers", "2", "--worker-class", "gthread", "--threads", "4",
               "--preload", "--bind", f"127.0.0.1:{port}", "--graceful-timeout", "30", "--log-level", "warning",
               "flask_service:app"]
    else:
        cmd = [sys.executable, __file__, "serve", str(port)]
    return subprocess.Popen(cmd)


def main(kind: str) -> None:
    import httpx

    port = free_port()
    server = start_server(kind, port)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.2)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:
            for i, q in enumerate(("one", "two", "three", "[fail:500]")):
                response = client.post("/ask", json={"q": q}, headers={"baggage": f"tenant.id=tenant-{i}"})
                print(q, "->", response.status_code, response.json()["answer"])
    finally:  # the server goes down whatever happened above (a leftover child would hold our stdout)
        server.send_signal(signal.SIGTERM)
        print("server exit:", server.wait(120))


if __name__ == "__main__":
    if sys.argv[1:2] == ["serve"]:
        app.run(host="127.0.0.1", port=int(sys.argv[2]), threaded=True)
    else:
        main(sys.argv[1] if len(sys.argv) > 1 else "gunicorn")
