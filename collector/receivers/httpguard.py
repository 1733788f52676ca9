"""Connection hygiene for the OTLP/HTTP endpoint: what Go's http.Server and otelcol's confighttp
enforce, on top of uvicorn's HTTP/1.1 protocol (uvicorn has a keep-alive timeout but no header or
request read deadline, no header caps and no connection cap).

Per connection, measured from its first byte (from the accept for a new connection):
  - `read_header_timeout`: the request line and headers must be complete by then;
  - `read_timeout`: the whole request, body included, must be received by then;
  - `idle_timeout`: a keep-alive connection waiting for its next request is closed after this
    (uvicorn's own keep-alive timer);
  - `max_header_bytes` / `max_header_count`: request line plus headers, and the number of header
    fields; over either the answer is 431 and the connection is closed.
A late request gets 408 and the connection is closed: a half-sent request never holds a socket.

Per endpoint, `max_connections`: when a new connection would exceed it, the connection that has not
started a request for the longest time and is not working on one (still waiting for request
headers, or idle between requests, with no bytes of a request waiting unread) is closed to make room: a slow or idle client cannot lock others
out by holding sockets, and a client that keeps sending requests is the last to be chosen. When every
connection is busy with a request, the new one gets 429 with Retry-After and is closed.
Every such refusal is logged, at most one line per reason per interval.
"""

from __future__ import annotations

import array
import asyncio
import fcntl
import termios
import time
from dataclasses import dataclass

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from collector.ratelimited_log import RateLimitedLog


@dataclass(frozen=True)
class HttpLimits:
    read_header_timeout: float
    read_timeout: float
    idle_timeout: float
    max_header_bytes: int
    max_header_count: int
    max_connections: int


_LINGER_S = 0.5
_LINGER_MAX_BYTES = 1024 * 1024  # read and dropped while lingering; then reading stops


class _Refused(Exception):
    """Raised from a parser callback to stop parsing a request that was already answered."""


# A connection's phase: NEW (accepted, nothing read), HEADERS (reading request line and headers),
# BODY (reading the body), BUSY (request complete, the app is working or answering), IDLE (between
# requests). Only NEW, HEADERS and IDLE connections may be closed to make room for others.
NEW, HEADERS, BODY, BUSY, IDLE = "new", "headers", "body", "busy", "idle"
_EVICTABLE = (NEW, HEADERS, IDLE)


class ConnectionTable:
    """The open connections of one HTTP endpoint, oldest first, and the cap on their number."""

    def __init__(self, limits: HttpLimits, log: RateLimitedLog, name: str):
        self.limits, self.log, self.name = limits, log, name
        # Insertion order = when the connection last started a request (or was accepted), oldest first.
        self.open: dict["GuardedHttpProtocol", None] = {}
        self.closed_by_timeout = 0
        self.evicted = 0
        self.refused = 0

    def admit(self, connection: "GuardedHttpProtocol") -> bool:
        if len(self.open) >= self.limits.max_connections:
            victim = next((c for c in self.open if c.phase in _EVICTABLE and not c.has_unread_input()), None)
            if victim is None:
                self.refused += 1
                self.log.warning("http-conn-refused", "receiver %s: %d HTTP connections open, all busy with requests "
                                 "(max_connections); refused a connection from %s with 429",
                                 self.name, len(self.open), connection.peer)
                return False
            self.evicted += 1
            self.log.warning("http-conn-evicted", "receiver %s: %d HTTP connections open (max_connections); closed the "
                             "oldest one not working on a request (%s, %s) to admit %s",
                             self.name, len(self.open), victim.peer, victim.phase, connection.peer)
            victim.close()  # leaves the table now, not when the loop reports the close
        self.open[connection] = None
        return True

    def touch(self, connection: "GuardedHttpProtocol") -> None:
        """`connection` started a request: it becomes the newest."""
        if self.open.pop(connection, 0) is None:
            self.open[connection] = None

    def remove(self, connection: "GuardedHttpProtocol") -> None:
        self.open.pop(connection, None)


def _raw_response(status: str, message: str, retry_after: int | None = None) -> bytes:
    body = message.encode()
    head = [f"HTTP/1.1 {status}", "content-type: text/plain; charset=utf-8", f"content-length: {len(body)}",
            "connection: close"]
    if retry_after is not None:
        head.append(f"retry-after: {retry_after}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def guarded_protocol(table: ConnectionTable) -> type:
    """uvicorn's httptools protocol class bound to one endpoint's limits and connection table."""
    return type("GuardedHttpProtocol", (GuardedHttpProtocol,), {"table": table})


class GuardedHttpProtocol(HttpToolsProtocol):
    table: ConnectionTable  # set by guarded_protocol()

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.phase = NEW
        self.peer = "?"
        self._deadline_timer: asyncio.TimerHandle | None = None
        self._request_began = 0.0
        self._header_bytes = 0
        self._header_count = 0
        self._refused = False
        self._dropped = 0

    # --- asyncio.Protocol ---

    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.peer = "%s:%s" % self.client if self.client else "?"
        if not self.table.admit(self):
            self._refuse("429 Too Many Requests", "too many connections; retry later", retry_after=1)
            return
        self._begin_request()

    def connection_lost(self, exc) -> None:
        self.table.remove(self)
        self._cancel_deadline()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            self._dropped += len(data)
            if self._dropped > _LINGER_MAX_BYTES and not self.transport.is_closing():
                self.transport.pause_reading()  # a client still pushing megabytes costs nothing more
            return
        if self.phase == IDLE:
            self._begin_request()
        if self.phase in (NEW, HEADERS):
            self.phase = HEADERS
            self._header_bytes += len(data)
        try:
            super().data_received(data)
        except _Refused:  # pragma: no cover - httptools wraps callback errors; kept for safety
            return
        if self.phase == HEADERS and self._header_bytes > self.table.limits.max_header_bytes and not self._refused:
            self._refuse("431 Request Header Fields Too Large",
                         f"request header larger than {self.table.limits.max_header_bytes} bytes")

    def send_400_response(self, msg: str) -> None:
        if not self._refused:  # a refusal already answered; the parser error is its echo
            super().send_400_response(msg)

    def has_unread_input(self) -> bool:
        """Whether the client has sent bytes the loop has not handed to this protocol yet. Under a
        flood of connections a client's request can wait in the kernel while the connection still
        looks NEW or IDLE here: it is sending, not silent, and closing it would reset it."""
        try:
            pending = array.array("i", [0])
            fcntl.ioctl(self.transport.get_extra_info("socket").fileno(), termios.FIONREAD, pending)
            return pending[0] > 0
        except (AttributeError, OSError):  # closed meanwhile, or no socket: nothing to protect
            return False

    def close(self) -> None:
        self.table.remove(self)
        self._refused = True
        if not self.transport.is_closing():
            self.transport.close()

    # --- httptools callbacks ---

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_count = 0

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        if self._header_count > self.table.limits.max_header_count:
            self._refuse("431 Request Header Fields Too Large",
                         f"more than {self.table.limits.max_header_count} request header fields")
            raise _Refused()
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self.phase = BODY
        remaining = self._request_began + self.table.limits.read_timeout - time.monotonic()
        self._arm_deadline(max(0.0, remaining), "read_timeout")
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self.phase = BUSY
        self._cancel_deadline()
        super().on_message_complete()

    def on_response_complete(self) -> None:
        if self.phase == BUSY:
            self.phase = IDLE  # uvicorn's keep-alive timer (idle_timeout) runs from here
        super().on_response_complete()

    # --- deadlines and refusals ---

    def _begin_request(self) -> None:
        if self.phase == IDLE:
            self.phase = HEADERS
            self.table.touch(self)
        self._request_began = time.monotonic()
        self._header_bytes = 0
        self._arm_deadline(self.table.limits.read_header_timeout, "read_header_timeout")

    def _arm_deadline(self, seconds: float, which: str) -> None:
        self._cancel_deadline()
        self._deadline_timer = self.loop.call_later(seconds, self._deadline_passed, which)

    def _cancel_deadline(self) -> None:
        if self._deadline_timer is not None:
            self._deadline_timer.cancel()
            self._deadline_timer = None

    def _deadline_passed(self, which: str) -> None:
        self._deadline_timer = None
        if self.transport.is_closing() or self.phase not in (NEW, HEADERS, BODY):
            return
        self.table.closed_by_timeout += 1
        self.table.log.warning(f"http-{which}", "receiver %s: closed an HTTP connection from %s: request not received "
                               "within %s (%s)", self.table.name, self.peer, which, self.phase)
        self._refuse("408 Request Timeout", f"request not received within {which}")

    def _refuse(self, status: str, message: str, retry_after: int | None = None) -> None:
        if self._refused:
            return
        if not status.startswith(("408", "429")):
            self.table.log.warning(f"http-{status[:3]}", "receiver %s: refused an HTTP request from %s with %s: %s",
                                   self.table.name, self.peer, status, message)
        if self.cycle is not None and self.cycle.response_started:
            self.close()
            return
        # Answer, stop sending, and read (and drop) what the client is still sending for a moment
        # before closing: closing with unread data makes the kernel send a reset, which can reach
        # the client before it read the answer (Go's server does the same).
        self._refused = True
        self.transport.write(_raw_response(status, message, retry_after))
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(_LINGER_S, self.close)
