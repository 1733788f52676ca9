"""Load generator: sends pre-encoded OTLP protobuf requests over gRPC or HTTP, closed loop.

Runs as its own process (so its CPU is not the target's), `concurrency` threads each with one
request in flight, until `duration` seconds or `max_requests` requests, whichever comes first.
Every loop is bounded in count and time; targets are loopback only. Prints one JSON line:
requests, spans acknowledged, errors by kind, ack latency percentiles, own CPU seconds.

    python -m bench.loadgen --protocol grpc --target 127.0.0.1:4317 --payloads p.bin --duration 20
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import struct
import sys
import threading
import time

EXPORT_METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


def read_payloads(path: str) -> list[tuple[bytes, int]]:
    """File: repeated [u32 spans][u32 length][bytes]."""
    out = []
    with open(path, "rb") as fh:
        data = fh.read()
    pos = 0
    while pos < len(data):
        spans, size = struct.unpack_from("<II", data, pos)
        pos += 8
        out.append((data[pos:pos + size], spans))
        pos += size
    return out


def write_payloads(path: str, payloads: list[tuple[bytes, int]]) -> None:
    with open(path, "wb") as fh:
        for body, spans in payloads:
            fh.write(struct.pack("<II", spans, len(body)))
            fh.write(body)


def _check_loopback(host: str) -> None:
    if host not in ("127.0.0.1", "localhost", "::1") and not host.startswith("127."):
        raise SystemExit(f"refusing to send load to non-loopback host {host!r}")


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, max(0, int(round(q * (len(sorted_values) - 1)))))
    return sorted_values[index]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--protocol", choices=["grpc", "http"], required=True)
    ap.add_argument("--target", required=True, help="host:port (loopback only)")
    ap.add_argument("--path", default="/v1/traces")
    ap.add_argument("--payloads", required=True)
    ap.add_argument("--duration", type=float, default=20.0)
    ap.add_argument("--max-requests", type=int, default=200_000)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--connections", type=int, default=8, help="gRPC connections the requests in flight share")
    ap.add_argument("--timeout", type=float, default=30.0)
    ap.add_argument("--start-at", type=float, default=0.0, help="time.time() to start at (aligns several loadgens)")
    ap.add_argument("--rate", type=float, default=0.0,
                    help="spans/s to offer (requests paced to it, at most --concurrency in flight); 0: as fast as acked")
    args = ap.parse_args(argv)

    host, _, port = args.target.rpartition(":")
    _check_loopback(host)
    payloads = read_payloads(args.payloads)
    lock = threading.Lock()
    state = {"requests": 0, "spans": 0, "errors": {}, "latencies": []}
    budget = [args.max_requests]

    # --rate: request n may start at began + n * (spans per request / rate); a target slower than
    # the rate falls behind the schedule and is offered only what `concurrency` allows.
    interval = (sum(spans for _, spans in payloads) / len(payloads)) / args.rate if args.rate > 0 else 0.0
    issued = [0]

    def take() -> bool:
        with lock:
            if budget[0] <= 0:
                return False
            budget[0] -= 1
            slot = began + issued[0] * interval
            issued[0] += 1
        if interval:
            time.sleep(max(0.0, slot - time.monotonic()))
        return True

    def record(latency: float, spans: int, error: str | None) -> None:
        with lock:
            state["requests"] += 1
            state["latencies"].append(latency)
            if error is None:
                state["spans"] += spans
            else:
                state["errors"][error] = state["errors"].get(error, 0) + 1

    if args.start_at:
        time.sleep(max(0.0, args.start_at - time.time()))
    began = time.monotonic()
    deadline = began + args.duration

    if args.protocol == "grpc":
        import grpc

        # Several connections, as several instrumented apps have (a collector with ingest workers
        # gets connections spread over its processes); a local subchannel pool per channel keeps
        # gRPC from sharing one connection between them.
        options = [("grpc.max_send_message_length", 64 << 20), ("grpc.max_receive_message_length", 64 << 20),
                   ("grpc.use_local_subchannel_pool", 1)]
        calls = [grpc.insecure_channel(args.target, options=options).unary_unary(
                     EXPORT_METHOD, request_serializer=None, response_deserializer=None)
                 for _ in range(max(1, min(args.connections, args.concurrency)))]

        def worker(index: int) -> None:
            call = calls[index % len(calls)]
            i = index
            while time.monotonic() < deadline and take():
                body, spans = payloads[i % len(payloads)]
                i += 1
                t0 = time.perf_counter()
                try:
                    call(body, timeout=args.timeout)
                    error = None
                except grpc.RpcError as exc:
                    error = f"grpc:{exc.code().name}"
                    time.sleep(0.05)
                record(time.perf_counter() - t0, spans, error)
    else:
        def worker(index: int) -> None:
            conn = http.client.HTTPConnection(host, int(port), timeout=args.timeout)
            headers = {"Content-Type": "application/x-protobuf"}
            i = index
            while time.monotonic() < deadline and take():
                body, spans = payloads[i % len(payloads)]
                i += 1
                t0 = time.perf_counter()
                try:
                    conn.request("POST", args.path, body=body, headers=headers)
                    response = conn.getresponse()
                    response.read()
                    error = None if response.status == 200 else f"http:{response.status}"
                except (OSError, http.client.HTTPException) as exc:
                    error = f"http:{type(exc).__name__}"
                    conn.close()
                    conn = http.client.HTTPConnection(host, int(port), timeout=args.timeout)
                if error:
                    time.sleep(0.05)
                record(time.perf_counter() - t0, spans, error)
            conn.close()

    threads = [threading.Thread(target=worker, args=(n,), daemon=True) for n in range(args.concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(args.duration + args.timeout + 5)
    elapsed = time.monotonic() - began
    lat = sorted(state["latencies"])
    cpu = os.times()
    print(json.dumps({
        "protocol": args.protocol,
        "requests": state["requests"],
        "spans_acked": state["spans"],
        "errors": state["errors"],
        "elapsed_s": elapsed,
        "started_unix": time.time() - elapsed,
        "ack_p50_ms": percentile(lat, 0.50) * 1e3,
        "ack_p99_ms": percentile(lat, 0.99) * 1e3,
        "ack_max_ms": (lat[-1] if lat else 0.0) * 1e3,
        "cpu_s": cpu.user + cpu.system,
    }))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
