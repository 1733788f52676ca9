"""A small HTTP/1.1 server for the collector's side endpoints (health, read-only SQL).

The OTLP receiver has its own server; these endpoints are low-traffic, but they face the same
clients, so they keep confighttp's connection hygiene:

- a waiting connection costs no thread (asyncio), and the number of open connections is capped
  (`max_connections`; one over the cap gets 503 and is closed at once);
- the request line and headers must arrive within `read_header_timeout`, the body within
  `read_timeout`, and a keep-alive connection is closed after `idle_timeout` without a request,
  so half-sent requests (slowloris) are closed instead of piling up;
- headers are capped in bytes and in count (431), the body in bytes (413);
- handlers run on a small thread pool (`max_concurrent_requests`), and a cancellable handler is
  told when its client hangs up (the SQL endpoint then kills its query).

Log lines about clients (refusals, timeouts) are rate-limited: a flood cannot flood the log.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import resource
import threading
import time
from dataclasses import dataclass
from http import HTTPStatus
from typing import Callable

from collector.confighelpers import split_host_port

log = logging.getLogger(__name__)

# handler(method, path, headers, body) -> (status, content_type, body); a cancellable handler also
# gets a threading.Event set when the client disconnects before the answer is ready.
Handler = Callable[..., tuple[int, str, bytes]]

MAX_BODY = 1024 * 1024


@dataclass(frozen=True)
class ServerLimits:
    max_connections: int = 1024
    max_concurrent_requests: int = 8
    read_header_timeout_s: float = 5.0
    read_timeout_s: float = 15.0
    idle_timeout_s: float = 30.0
    write_timeout_s: float = 15.0
    max_header_bytes: int = 16 * 1024
    max_header_count: int = 64
    max_body_bytes: int = MAX_BODY


class RateLimitedLog:
    """At most one line per `interval_s` per kind; the next line says how many were suppressed."""

    def __init__(self, logger: logging.Logger, interval_s: float = 10.0):
        self._log, self._interval = logger, interval_s
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}
        self._lock = threading.Lock()

    def warning(self, kind: str, message: str, *args) -> None:
        now = time.monotonic()
        with self._lock:
            if now - self._last.get(kind, -1e9) < self._interval:
                self._suppressed[kind] = self._suppressed.get(kind, 0) + 1
                return
            self._last[kind] = now
            suppressed = self._suppressed.pop(kind, 0)
        suffix = f" ({suppressed} similar lines suppressed)" if suppressed else ""
        self._log.warning(message + suffix, *args)


class _Refusal(Exception):
    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status, self.reason = status, reason


class SideHTTPServer:
    def __init__(self, endpoint: str, name: str, handle: Handler, limits: ServerLimits, cancellable: bool):
        self.name, self._handle, self.limits, self._cancellable = name, handle, limits, cancellable
        self._host, self._port = split_host_port(endpoint)
        self._loop = asyncio.new_event_loop()
        self._pool = concurrent.futures.ThreadPoolExecutor(limits.max_concurrent_requests, thread_name_prefix=f"{name}-req")
        self._busy = asyncio.Semaphore(limits.max_concurrent_requests)
        self._open = 0
        self._clients_log = RateLimitedLog(log)
        self._server = None
        self._thread = threading.Thread(target=self._loop.run_forever, name=name, daemon=True)

    def start(self) -> None:
        self._server = self._loop.run_until_complete(asyncio.start_server(
            self._serve, self._host, self._port, limit=self.limits.max_header_bytes, backlog=512))
        self._thread.start()

    def stop(self) -> None:
        async def close():
            self._server.close()
            # Open connections end with the server (Server.wait_closed waits for them otherwise).
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        try:
            asyncio.run_coroutine_threadsafe(close(), self._loop).result(timeout=5)
        except (concurrent.futures.TimeoutError, RuntimeError):
            pass
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._pool.shutdown(wait=False, cancel_futures=True)

    # --- one connection ---

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        if self._open >= self.limits.max_connections:
            self._clients_log.warning("connections", "%s: %d connections open (max_connections); refusing %s",
                                      self.name, self._open, peer)
            await self._write(writer, 503, "text/plain", b"too many connections\n", close=True)
            return
        self._open += 1
        try:
            first = True
            while True:
                timeout = self.limits.read_header_timeout_s if first else self.limits.idle_timeout_s
                if not await self._one_request(reader, writer, timeout, peer):
                    break
                first = False
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError, asyncio.TimeoutError):
            pass
        except asyncio.CancelledError:
            pass  # the server is stopping: end quietly (asyncio logs a cancelled connection task)
        finally:
            self._open -= 1
            writer.close()

    async def _one_request(self, reader, writer, head_timeout: float, peer) -> bool:
        """Serve one request; False when the connection is to be closed."""
        try:
            method, path, version, headers = await asyncio.wait_for(self._read_head(reader), head_timeout)
            if method is None:
                return False  # the client closed the connection between requests
            length = self._content_length(headers)
            if length and headers.get("expect", "").lower() == "100-continue":
                writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")  # curl otherwise waits a second
            body = await asyncio.wait_for(reader.readexactly(length), self.limits.read_timeout_s) if length else b""
        except (asyncio.TimeoutError, TimeoutError):
            self._clients_log.warning("timeout", "%s: closed a connection from %s that sent no complete request in time",
                                      self.name, peer)
            return False
        except _Refusal as refusal:
            self._clients_log.warning("refused", "%s: refused a request from %s: %s", self.name, peer, refusal.reason)
            await self._write(writer, refusal.status, "text/plain", refusal.reason.encode() + b"\n", close=True)
            return False
        keep_alive = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
        status, content_type, payload, read_ahead = await self._run_handler(reader, method, path, headers, body)
        keep_alive = keep_alive and not read_ahead  # a byte of a pipelined request was consumed: start afresh
        await self._write(writer, status, content_type, payload, close=not keep_alive)
        return keep_alive

    async def _read_head(self, reader: asyncio.StreamReader):
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.LimitOverrunError:
            raise _Refusal(431, f"request line and headers exceed {self.limits.max_header_bytes} bytes") from None
        except asyncio.IncompleteReadError as exc:
            if not exc.partial.strip():
                return None, None, None, None
            raise
        lines = head.decode("latin-1").split("\r\n")[:-2]
        parts = lines[0].split()
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            raise _Refusal(400, "malformed request line")
        if len(lines) - 1 > self.limits.max_header_count:
            raise _Refusal(431, f"more than {self.limits.max_header_count} headers")
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep or not name.strip() or name != name.strip():
                raise _Refusal(400, "malformed header line")
            headers[name.lower()] = value.strip()
        return parts[0].upper(), parts[1], parts[2], headers

    def _content_length(self, headers: dict) -> int:
        if "transfer-encoding" in headers:
            raise _Refusal(411, "send the body with a Content-Length (chunked requests are not taken here)")
        text = headers.get("content-length", "0").strip() or "0"
        if not text.isdigit():
            raise _Refusal(400, "invalid Content-Length")
        length = int(text)
        if length > self.limits.max_body_bytes:
            raise _Refusal(413, f"request body over {self.limits.max_body_bytes} bytes")
        return length

    async def _run_handler(self, reader, method, path, headers, body) -> tuple[int, str, bytes, bool]:
        """(status, content type, body, whether a byte after the request was read)."""
        if self._busy.locked():
            self._clients_log.warning("busy", "%s: %d requests in progress (max); answering 503", self.name,
                                      self.limits.max_concurrent_requests)
            return 503, "application/json", b'{"error":"too many requests in progress; retry later"}', False
        async with self._busy:
            cancelled = threading.Event()
            args = (method, path, headers, body) + ((cancelled,) if self._cancellable else ())
            work = asyncio.ensure_future(self._loop.run_in_executor(self._pool, self._call, args))
            if not self._cancellable:
                return (*await work, False)
            hangup = asyncio.ensure_future(reader.read(1))  # b"" (EOF) when the client goes away
            done, _ = await asyncio.wait({work, hangup}, return_when=asyncio.FIRST_COMPLETED)
            gone = hangup in done and (hangup.exception() is not None or hangup.result() == b"")
            if gone:
                cancelled.set()  # the handler stops its work; its answer has no one to go to
            read_ahead = hangup in done and not gone
            if not hangup.done():
                hangup.cancel()
            return (*await work, read_ahead)

    def _call(self, args) -> tuple[int, str, bytes]:
        try:
            return self._handle(*args)
        except Exception:  # noqa: BLE001 - never a traceback to a client; the log has it
            log.exception("%s: handler failed", self.name)
            return 500, "application/json", b'{"error":"internal error (see the collector log)"}'

    async def _write(self, writer, status: int, content_type: str, body: bytes, close: bool) -> None:
        reason = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else ""
        head = (f"HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
                f"{'Connection: close' + chr(13) + chr(10) if close else ''}\r\n").encode("latin-1")
        try:
            writer.write(head + body)
            await asyncio.wait_for(writer.drain(), self.limits.write_timeout_s)
        except (ConnectionError, asyncio.TimeoutError, TimeoutError):
            pass
        if close:
            writer.close()


def raise_open_files_limit() -> None:
    """Raise the soft limit of open files to the hard one (as Go's runtime does for otelcol), so
    that max_connections per endpoint fits in it."""
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard == resource.RLIM_INFINITY or soft < hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard if hard != resource.RLIM_INFINITY else max(soft, 65536), hard))
    except (ValueError, OSError) as exc:
        log.warning("cannot raise the open files limit: %s", exc)


def start_http_server(endpoint: str, name: str, handle: Handler, limits: ServerLimits | None = None,
                      cancellable: bool = False) -> SideHTTPServer:
    raise_open_files_limit()
    server = SideHTTPServer(endpoint, name, handle, limits or ServerLimits(), cancellable)
    server.start()
    return server


def stop_http_server(server: SideHTTPServer | None) -> None:
    if server is not None:
        server.stop()
