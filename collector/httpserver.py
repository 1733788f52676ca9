"""A small threaded HTTP server for the collector's side endpoints (health, read-only SQL).

The OTLP receiver has its own asyncio server; these endpoints are low-traffic and synchronous.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

from collector.confighelpers import split_host_port

# handler(method, path, headers, body) -> (status, content_type, body)
Handler = Callable[[str, str, dict, bytes], tuple[int, str, bytes]]

MAX_BODY = 1024 * 1024


def start_http_server(endpoint: str, name: str, handle: Handler) -> ThreadingHTTPServer:
    class RequestHandler(BaseHTTPRequestHandler):
        def _dispatch(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                status, content_type, body = 413, "text/plain", b"request too large"
            else:
                payload = self.rfile.read(length) if length else b""
                headers = {k.lower(): v for k, v in self.headers.items()}
                status, content_type, body = handle(method, self.path, headers, payload)
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            self._dispatch("GET")

        def do_POST(self) -> None:  # noqa: N802
            self._dispatch("POST")

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(split_host_port(endpoint), RequestHandler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name=name, daemon=True).start()
    return server


def stop_http_server(server: ThreadingHTTPServer | None) -> None:
    if server is not None:
        server.shutdown()
        server.server_close()
