"""Typed config fields shared by components: Go-style durations, byte sizes, endpoints."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BeforeValidator

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(value: object) -> float:
    """`"5s"`, `"200ms"`, `"1m30s"`, `"72h"` or a number of seconds -> seconds."""
    if isinstance(value, bool):
        raise ValueError("expected a duration like 5s, 200ms or 1h")
    if isinstance(value, (int, float)):
        return float(value)
    text = str(value).strip()
    if text in ("0", ""):
        return 0.0
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"invalid duration {text!r}; expected e.g. 5s, 200ms, 1m30s, 72h")
    return sum(float(n) * _UNIT_SECONDS[u] for n, u in parts)


Duration = Annotated[float, BeforeValidator(parse_duration)]


_HOST = re.compile(r"^(?:\[[0-9A-Fa-f:.]+(?:%[\w.\-]+)?\]|[A-Za-z0-9_.\-]*)$")


def parse_host_port(value: object) -> str:
    """`host:port` (host may be empty or `[::1]`) as the OTLP receivers, the otlp (gRPC) exporter
    and telemetry take it. A URL is refused: gRPC would read `http` as a name-resolver scheme and
    never connect, and a listener has no use for one."""
    text = str(value).strip()
    scheme, sep, rest = text.partition("://")
    if sep:
        raise ValueError(f"invalid endpoint {text!r}: expected host:port without a URL scheme; write {rest.rstrip('/')!r} "
                         f"(plaintext or TLS is set by the `tls` settings, not by {scheme + '://'!r})")
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536 or not _HOST.match(host):
        raise ValueError(f"invalid endpoint {text!r}; expected host:port, e.g. 0.0.0.0:4317 or [::1]:4317")
    return text


HostPort = Annotated[str, BeforeValidator(parse_host_port)]


def local_url(endpoint: str, path: str = "") -> str:
    """The URL a client on this machine dials for a server listening on `endpoint` (a wildcard
    listen address such as 0.0.0.0 or :: is reached through loopback)."""
    host, _, port = endpoint.rpartition(":")
    if host in ("", "0.0.0.0", "::", "[::]"):
        host = "127.0.0.1"
    return f"http://{host}:{port}{path}"


def split_host_port(endpoint: str) -> tuple[str, int]:
    host, _, port = endpoint.rpartition(":")
    return host.strip("[]") or "0.0.0.0", int(port)
