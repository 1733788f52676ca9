"""Hostile clients at the connection level, against a real collector on loopback: slowloris, stalled
gRPC streams, header floods, connection floods, large concurrent bodies. Each test asserts the
refusal (or the close) AND that a normal client sending meanwhile was served: every request
answered 200 / OK, p99 under 1 s. The collector runs with short timeouts so this stays fast; the
figures measured are printed and written to .pytest_cache/hostile_connections.json."""

from __future__ import annotations

import json
import select
import selectors
import socket
import threading
import time
from pathlib import Path

import grpc
import h2.config
import h2.connection
import h2.events
import httpx
import pytest

from support.harness import CONFIG_TEMPLATE, CollectorProcess
from support.hostile_clients import EXPORT, PB, NormalClient, latency_budget
from support.otlp_load import make_request

# `alone`: the assertions measure how fast others are served (pyproject.toml's markers)
pytestmark = [pytest.mark.timeout(180), pytest.mark.alone]
READ_HEADER_TIMEOUT, READ_TIMEOUT, GRPC_READ_TIMEOUT = 3.0, 5.0, 2.0
HTTP_MAX_CONNECTIONS, GRPC_MAX_CONNECTIONS = 600, 100
FIGURES = Path(__file__).resolve().parent.parent / ".pytest_cache" / "hostile_connections.json"

RECEIVERS = f"""receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:{{grpc_port}}
        read_timeout: {GRPC_READ_TIMEOUT}s
        max_connections: {GRPC_MAX_CONNECTIONS}
        max_concurrent_streams: 10
      http:
        endpoint: 127.0.0.1:{{http_port}}
        max_request_body_size_mib: {{max_body_mib}}
        read_header_timeout: {READ_HEADER_TIMEOUT}s
        read_timeout: {READ_TIMEOUT}s
        idle_timeout: 5s
        max_connections: {HTTP_MAX_CONNECTIONS}
"""


def _config() -> str:
    start = CONFIG_TEMPLATE.index("receivers:")
    end = CONFIG_TEMPLATE.index("processors:")
    return CONFIG_TEMPLATE[:start] + RECEIVERS + CONFIG_TEMPLATE[end:]


@pytest.fixture(scope="module")
def collector(tmp_path_factory):
    process = CollectorProcess(tmp_path_factory.mktemp("hostile-conn"), max_body_mib=64, config_text=_config()).start()
    process.latency_budget = latency_budget(process)
    _record("baseline", latency_budget_s=round(process.latency_budget, 3))
    yield process
    process.stop()


def _record(name: str, **figures) -> None:
    print(f"\n{name}: {figures}")
    FIGURES.parent.mkdir(exist_ok=True)
    data = json.loads(FIGURES.read_text()) if FIGURES.exists() else {}
    data[name] = figures
    FIGURES.write_text(json.dumps(data, indent=1))


def _other_endpoints_serve(collector) -> None:
    assert httpx.get(collector.health_url, timeout=5).status_code == 200
    assert collector.query("SELECT 1 AS one")[0]["one"] == 1


# --- raw sockets ----------------------------------------------------------------------------

def _connect_many(port: int, count: int, first_bytes: bytes = b"") -> list[socket.socket]:
    sockets = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        if first_bytes:
            sock.sendall(first_bytes)
        sockets.append(sock)
    return sockets


def _wait_closed(sockets: list[socket.socket], timeout: float, began: float) -> tuple[dict[int, float], dict[int, bytes]]:
    """Read every socket until the server closes it (or `timeout`): when each closed, seconds after
    `began`, and what the server said before closing."""
    selector = selectors.DefaultSelector()
    said: dict[int, bytes] = {}
    for index, sock in enumerate(sockets):
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ, index)
        said[index] = b""
    closed: dict[int, float] = {}
    deadline = time.monotonic() + timeout
    while len(closed) < len(sockets) and time.monotonic() < deadline:
        for key, _ in selector.select(timeout=0.2):
            index = key.data
            try:
                data = key.fileobj.recv(65536)
            except (ConnectionResetError, BrokenPipeError):
                data = b""
            except BlockingIOError:
                continue
            if data:
                said[index] += data
            else:
                closed[index] = time.monotonic() - began
                selector.unregister(key.fileobj)
    selector.close()
    return closed, said


def _close_all(sockets) -> None:
    for sock in sockets:
        try:
            sock.close()
        except OSError:
            pass


# --- HTTP -----------------------------------------------------------------------------------

HALF_HEADERS = b"POST /v1/traces HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-protobuf\r\n"


def test_slowloris_half_sent_headers_are_closed_and_others_served(collector):
    """500 connections that send part of their request headers and stop; ten of them keep
    trickling a header byte every half second (an absolute deadline, not an idle one)."""
    with NormalClient(collector) as normal:
        began = time.monotonic()
        hostile = _connect_many(collector.http_port, 500, HALF_HEADERS)
        trickle_stop = threading.Event()

        def trickle() -> None:
            while not trickle_stop.wait(0.5):
                for sock in hostile[:10]:
                    try:
                        sock.send(b"X")
                    except OSError:
                        pass

        trickler = threading.Thread(target=trickle, daemon=True)
        trickler.start()
        try:
            closed, said = _wait_closed(hostile, READ_HEADER_TIMEOUT + 10, began)
        finally:
            trickle_stop.set()
            trickler.join(5)
            _close_all(hostile)
        _other_endpoints_serve(collector)
    assert len(closed) == 500, f"{500 - len(closed)} half-sent connections still open"
    assert all(said[i].startswith(b"HTTP/1.1 408") for i in closed), {said[i][:40] for i in closed}
    latest = max(closed.values())
    assert latest < READ_HEADER_TIMEOUT + 3, latest
    normal.assert_served(collector.latency_budget)
    _record("slowloris_500_half_sent_headers", closed=len(closed), first_closed_s=round(min(closed.values()), 2),
            last_closed_s=round(latest, 2), read_header_timeout_s=READ_HEADER_TIMEOUT,
            normal_requests=len(normal.latencies), normal_p99_s=round(normal.p99(), 4))


def test_slow_body_is_closed_after_read_timeout(collector):
    """Headers complete, body promised and never sent: closed once `read_timeout` has passed."""
    request = HALF_HEADERS + b"Content-Length: 100000\r\n\r\n" + b"\x0a" * 100
    with NormalClient(collector) as normal:
        began = time.monotonic()
        hostile = _connect_many(collector.http_port, 100, request)
        try:
            closed, said = _wait_closed(hostile, READ_TIMEOUT + 10, began)
        finally:
            _close_all(hostile)
    assert len(closed) == 100
    assert all(said[i].startswith(b"HTTP/1.1 408") for i in closed)
    assert READ_TIMEOUT - 0.5 < min(closed.values()) and max(closed.values()) < READ_TIMEOUT + 3, closed
    normal.assert_served(collector.latency_budget)
    _record("slow_body_100", closed=len(closed), last_closed_s=round(max(closed.values()), 2),
            normal_p99_s=round(normal.p99(), 4))


def _send_and_read_answer(port: int, head: bytes, extra: bytes = b"", chunk: int = 1 << 16) -> bytes:
    """Send `head` + `extra` while reading; the server may answer and close before all is sent."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    payload = memoryview(head + extra)
    answer = b""
    try:
        sock.setblocking(False)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            readable, writable, _ = select.select([sock], [sock] if payload else [], [], 0.5)
            if writable:
                try:
                    payload = payload[sock.send(payload[:chunk]):]
                except (BlockingIOError, InterruptedError):
                    pass
                except (BrokenPipeError, ConnectionResetError):
                    payload = memoryview(b"")
            if readable:
                try:
                    data = sock.recv(65536)
                except (BlockingIOError, InterruptedError):
                    continue
                except ConnectionResetError:
                    break
                if not data:
                    break
                answer += data
    finally:
        sock.close()
    return answer


def _repeat_while_normal_client_sends(normal: NormalClient, attack, attackers: int = 4, min_requests: int = 10) -> list:
    """Run `attack` from `attackers` threads, over and over, until the normal client has sent
    `min_requests` requests (at most 60 s): the attack and the normal traffic overlap."""
    answers: list = []
    deadline = time.monotonic() + 60

    def attacker() -> None:
        while normal.sent() < min_requests and time.monotonic() < deadline:
            answers.append(attack())

    threads = [threading.Thread(target=attacker) for _ in range(attackers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(90)
    return answers


def test_a_32_mib_header_is_refused_with_431(collector):
    head = HALF_HEADERS + b"X-Huge: "
    huge = b"a" * (32 * 1024 * 1024) + b"\r\n\r\n"
    with NormalClient(collector) as normal:
        answers = _repeat_while_normal_client_sends(
            normal, lambda: _send_and_read_answer(collector.http_port, head, huge).split(b"\r\n")[0])
        _other_endpoints_serve(collector)
    assert answers and set(answers) == {b"HTTP/1.1 431 Request Header Fields Too Large"}, set(answers)
    normal.assert_served(collector.latency_budget)
    _record("header_32_mib", refused_431=len(answers), normal_requests=normal.sent(), normal_p99_s=round(normal.p99(), 4))


def test_ten_thousand_headers_are_refused_with_431(collector):
    headers = b"".join(b"X-H-%d: v\r\n" % i for i in range(10_000))
    request = HALF_HEADERS + headers + b"Content-Length: 0\r\n\r\n"
    with NormalClient(collector) as normal:
        answers = _repeat_while_normal_client_sends(
            normal, lambda: _send_and_read_answer(collector.http_port, request).split(b"\r\n")[0])
    assert answers and set(answers) == {b"HTTP/1.1 431 Request Header Fields Too Large"}, set(answers)
    normal.assert_served(collector.latency_budget)
    _record("headers_10000", refused_431=len(answers), normal_requests=normal.sent(), normal_p99_s=round(normal.p99(), 4))


def test_connection_flood_beyond_the_cap(collector):
    """Twice `max_connections` idle connections: the oldest that are not working on a request are
    closed to make room, and the normal client, which keeps sending, keeps its place."""
    with NormalClient(collector) as normal:
        began = time.monotonic()
        hostile = _connect_many(collector.http_port, 2 * HTTP_MAX_CONNECTIONS)
        try:
            opened = time.monotonic() - began
            closed, _ = _wait_closed(hostile, READ_HEADER_TIMEOUT - 0.5, began)
            evicted_quickly = len(closed)
            _other_endpoints_serve(collector)
            closed, _ = _wait_closed(hostile, READ_HEADER_TIMEOUT + 5, began)
        finally:
            _close_all(hostile)
    # Room is made as connections are accepted, before any read deadline could have closed them
    # (how many in that time depends on the machine's speed; 600 on an idle one).
    assert evicted_quickly >= HTTP_MAX_CONNECTIONS // 2, evicted_quickly
    assert "closed the oldest one not working on a request" in collector.log()
    assert len(closed) == len(hostile)
    normal.assert_served(collector.latency_budget)
    _record("http_connection_flood_1200_cap_600", opened_in_s=round(opened, 2), evicted_at_once=evicted_quickly,
            all_closed_by_s=round(max(closed.values()), 2), normal_p99_s=round(normal.p99(), 4))


def test_in_flight_bytes_cap_refuses_with_429(tmp_path):
    """Large bodies that hold the endpoint's in-flight budget: the next large one gets 429 with
    Retry-After at once (not buffered), small requests still pass."""
    config = _config().replace("        idle_timeout: 5s\n", "        idle_timeout: 5s\n        max_in_flight_bytes_mib: 20\n")
    collector = CollectorProcess(tmp_path, max_body_mib=8, config_text=config).start()
    collector.latency_budget = latency_budget(collector)
    holders = []
    try:
        with NormalClient(collector) as normal:
            for _ in range(2):  # 2 x 8 MiB declared, bodies trickling in: 16 of 20 MiB held
                holders += _connect_many(collector.http_port, 1, HALF_HEADERS + b"Content-Length: 8388608\r\n\r\nxx")
            time.sleep(0.3)
            answer = _send_and_read_answer(collector.http_port, HALF_HEADERS + b"Content-Length: 8388608\r\n\r\n",
                                           b"\0" * (8 * 1024 * 1024))
            time.sleep(1)
        assert answer.startswith(b"HTTP/1.1 429"), answer[:300]
        assert b"retry-after: 1" in answer.lower()
        normal.assert_served(collector.latency_budget)
        assert "max_in_flight_bytes_mib" in collector.log()
        _record("in_flight_cap", answer=answer.split(b"\r\n")[0].decode(), normal_p99_s=round(normal.p99(), 4))
    finally:
        _close_all(holders)
        collector.stop()


def _json_body(megabytes: int, tag: str) -> bytes:
    request, _ = make_request(500, attrs={"gen_ai.prompt": "p" * 4000})
    for span in request.resource_spans[0].scope_spans[0].spans:
        span.name = tag
    from collector.pdata import encode_otlp_json

    document = json.loads(encode_otlp_json(request))
    one = len(json.dumps(document))
    document["resourceSpans"] = document["resourceSpans"] * (megabytes * 1024 * 1024 // one + 1)
    return json.dumps(document).encode()


@pytest.fixture(scope="module")
def default_timeouts_collector(tmp_path_factory):
    """The receiver's default timeouts (a 40 MiB upload on a busy CI machine may take longer than
    the short read_timeout of the module's collector), every processor, and the debug exporter:
    this measures the receiver and the processors."""
    process = CollectorProcess(tmp_path_factory.mktemp("hostile-large"), max_body_mib=64,
                               exporters_yaml="\n  debug: {}\n", exporter_ids="debug", extensions="health_check").start()
    process.latency_budget = latency_budget(process)
    yield process
    process.stop()


@pytest.fixture(scope="module")
def clickhouse_collector(tmp_path_factory):
    """The same with the test pipeline's ClickHouse exporter and its disk queue: the small requests
    batched with or behind a 40 MiB one wait for its durable put and insert, not only for decoding."""
    process = CollectorProcess(tmp_path_factory.mktemp("hostile-large-ch"), max_body_mib=64).start()
    process.latency_budget = latency_budget(process)
    yield process
    process.stop()


@pytest.mark.timeout(600)  # four 40 MiB OTLP/JSON decodes: protobuf's JSON mapping is slow Python
def test_four_concurrent_40_mib_json_bodies_do_not_stall_others(default_timeouts_collector):
    _four_40_mib_uploads_beside_normal_clients(default_timeouts_collector, "json_4x40_mib")


@pytest.mark.timeout(600)
def test_four_40_mib_bodies_stored_in_clickhouse_do_not_stall_others(clickhouse_collector):
    spans = _four_40_mib_uploads_beside_normal_clients(clickhouse_collector, "json_4x40_mib_clickhouse")
    deadline, stored = time.monotonic() + 120, -1
    while time.monotonic() < deadline and stored != 4 * spans:  # acknowledged = on disk; the insert follows
        time.sleep(1)
        stored = clickhouse_collector.query("SELECT count() AS n FROM otel.otel_traces WHERE SpanName = 'bigjson'")[0]["n"]
    assert stored == 4 * spans


def _four_40_mib_uploads_beside_normal_clients(collector, record: str) -> int:
    """Four concurrent 40 MiB OTLP/JSON uploads while normal HTTP and gRPC clients keep sending;
    returns the spans in one upload."""
    body = _json_body(40, "bigjson")
    answers: list[int] = []

    def upload() -> None:
        try:
            answers.append(httpx.post(collector.http_url, content=body, headers={"content-type": "application/json"},
                                      timeout=120).status_code)
        except httpx.HTTPError as exc:
            answers.append(repr(exc))

    with NormalClient(collector) as normal, NormalClient(collector, "grpc") as normal_grpc:
        began = time.monotonic()
        uploads = [threading.Thread(target=upload) for _ in range(4)]
        for thread in uploads:
            thread.start()
        for thread in uploads:
            thread.join(150)
        took = time.monotonic() - began
    assert answers == [200] * 4, answers
    normal.assert_served(collector.latency_budget)
    normal_grpc.assert_served(collector.latency_budget)
    _record(record, body_mib=round(len(body) / 2**20, 1), uploads_took_s=round(took, 1),
            normal_http_p99_s=round(normal.p99(), 4), normal_http_max_s=round(max(normal.latencies), 3),
            normal_grpc_p99_s=round(normal_grpc.p99(), 4), normal_requests=len(normal.latencies) + len(normal_grpc.latencies))
    return sum(len(scope["spans"]) for resource in json.loads(body)["resourceSpans"] for scope in resource["scopeSpans"])


# --- gRPC -----------------------------------------------------------------------------------

def _stalled_grpc_connection(port: int, streams: int) -> tuple[socket.socket, h2.connection.H2Connection]:
    """An HTTP/2 connection with `streams` Export calls that send headers and 5 of a message's
    bytes (a length prefix promising 256) and then nothing."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    for _ in range(streams):
        stream = conn.get_next_available_stream_id()
        conn.send_headers(stream, [(":method", "POST"), (":scheme", "http"), (":path", EXPORT),
                                   (":authority", "127.0.0.1"), ("content-type", "application/grpc"), ("te", "trailers")])
        conn.send_data(stream, b"\x00\x00\x00\x01\x00")
    sock.sendall(conn.data_to_send())
    return sock, conn


def _grpc_statuses(sock: socket.socket, conn: h2.connection.H2Connection, expected: int, timeout: float) -> list[str]:
    """grpc-status of each stream as the server ends it (or until `timeout`)."""
    statuses: list[str] = []
    sock.settimeout(0.5)
    deadline = time.monotonic() + timeout
    while len(statuses) < expected and time.monotonic() < deadline:
        try:
            data = sock.recv(65536)
        except TimeoutError:
            continue
        except OSError:
            break
        if not data:
            break
        for event in conn.receive_data(data):
            if isinstance(event, (h2.events.ResponseReceived, h2.events.TrailersReceived)):
                status = dict((k.decode() if isinstance(k, bytes) else k, v) for k, v in event.headers).get("grpc-status")
                if status is not None:
                    statuses.append(status.decode() if isinstance(status, bytes) else status)
        pending = conn.data_to_send()
        if pending:
            sock.sendall(pending)
    return statuses


def test_stalled_grpc_streams_do_not_starve_others(collector):
    """10 connections x 10 streams that send headers and never finish their message: every normal
    gRPC call succeeds meanwhile, and each stalled stream ends with DEADLINE_EXCEEDED (4) once the
    read timeout has passed."""
    with NormalClient(collector, "grpc") as normal, NormalClient(collector) as normal_http:
        began = time.monotonic()
        stalled = [_stalled_grpc_connection(collector.grpc_port, 10) for _ in range(10)]
        try:
            statuses = [_grpc_statuses(sock, conn, 10, GRPC_READ_TIMEOUT + 10) for sock, conn in stalled]
            ended_after = time.monotonic() - began
        finally:
            _close_all(sock for sock, _ in stalled)
    flat = [status for per_connection in statuses for status in per_connection]
    assert flat == ["4"] * 100, flat
    assert ended_after < GRPC_READ_TIMEOUT + 5
    normal.assert_served(collector.latency_budget)
    normal_http.assert_served(collector.latency_budget)
    _record("grpc_100_stalled_streams_on_10_connections", ended_deadline_exceeded=len(flat),
            all_ended_by_s=round(ended_after, 2), normal_grpc_requests=len(normal.latencies),
            normal_grpc_p99_s=round(normal.p99(), 4), normal_http_p99_s=round(normal_http.p99(), 4))


def test_grpc_connection_flood_beyond_the_cap(collector):
    """Raw TCP connections that never start HTTP/2: those over `max_connections` are closed at
    once, the rest when the handshake deadline passes; a client already connected is served
    throughout, and new clients connect again afterwards."""
    with NormalClient(collector, "grpc") as normal:
        time.sleep(0.3)  # the normal client's channel is connected before the flood
        began = time.monotonic()
        hostile = _connect_many(collector.grpc_port, GRPC_MAX_CONNECTIONS + 100)
        try:
            at_once, _ = _wait_closed(hostile, GRPC_READ_TIMEOUT - 0.5, began)
            closed, _ = _wait_closed(hostile, GRPC_READ_TIMEOUT + 10, began)
        finally:
            _close_all(hostile)
        _other_endpoints_serve(collector)
    assert len(at_once) >= 90, len(at_once)
    assert len(closed) == len(hostile)
    normal.assert_served(collector.latency_budget)
    ok, _ = _fresh_grpc_call(collector)
    assert ok
    _record("grpc_connection_flood_200_cap_100", closed_at_once=len(at_once),
            all_closed_by_s=round(max(closed.values()), 2), normal_grpc_p99_s=round(normal.p99(), 4))


def _fresh_grpc_call(collector) -> tuple[bool, str]:
    with grpc.insecure_channel(collector.grpc_endpoint) as channel:
        call = channel.unary_unary(EXPORT, request_serializer=lambda b: b, response_deserializer=lambda b: b)
        try:
            call(make_request(1)[0].SerializeToString(), timeout=10)
            return True, "OK"
        except grpc.RpcError as exc:
            return False, exc.code().name


def test_grpc_busy_answer_carries_retry_info(tmp_path):
    """Over the in-flight budget, gRPC answers RESOURCE_EXHAUSTED with RetryInfo (OTLP clients retry
    RESOURCE_EXHAUSTED only with it)."""
    from google.rpc import error_details_pb2, status_pb2

    config = _config().replace("        max_concurrent_streams: 10\n",
                               "        max_concurrent_streams: 10\n        max_recv_msg_size_mib: 1\n        max_in_flight_bytes_mib: 1\n")
    collector = CollectorProcess(tmp_path, config_text=config).start()
    try:
        big, _ = make_request(300, attrs={"gen_ai.prompt": "q" * 2000})  # ~0.7 MiB
        body = big.SerializeToString()
        results: list = []

        def send() -> None:
            with grpc.insecure_channel(collector.grpc_endpoint) as channel:
                call = channel.unary_unary(EXPORT, request_serializer=lambda b: b, response_deserializer=lambda b: b)
                try:
                    call(body, timeout=30)
                    results.append(("OK", None))
                except grpc.RpcError as exc:
                    results.append((exc.code().name, dict(exc.trailing_metadata() or ())))

        threads = [threading.Thread(target=send) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        refused = [meta for code, meta in results if code == "RESOURCE_EXHAUSTED"]
        assert refused and any(code == "OK" for code, _ in results), [code for code, _ in results]
        status = status_pb2.Status.FromString(refused[0]["grpc-status-details-bin"])
        info = error_details_pb2.RetryInfo()
        assert status.details[0].Unpack(info) and info.retry_delay.seconds >= 1
        ok, code = _fresh_grpc_call(collector)
        assert ok, code
    finally:
        collector.stop()
