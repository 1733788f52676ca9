"""Our `otlp` and `otlphttp` exporters -> a real otelcol whose OTLP receiver keeps its DEFAULT limits
(4 MiB per gRPC message) -> its file exporter. A 9 MiB batch arrives whole, split into requests the
receiver accepts; a permanent refusal (no bearer token) is dropped and counted, not retried forever.
"""

from __future__ import annotations

import json
import time

import httpx
from google.protobuf import json_format
from support.harness import CollectorProcess
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span
from support.peers import Otelcol, otelcol_binary, otelcol_config  # noqa: F401 (fixture)

MIB = 1024 * 1024
BIG_SPANS = 60
ATTRIBUTE_BYTES = 150_000  # 60 x 150 kB: a 9 MiB batch, over twice the receiver's 4 MiB

# Two receivers with otelcol's default limits, one per protocol, each to its own file, no batching
# in between: each line of a file is one request as our exporter sent it.
SINK = """
receivers:
  otlp/grpc:
    protocols:
      grpc:
        endpoint: 127.0.0.1:{grpc}
  otlp/http:
    protocols:
      http:
        endpoint: 127.0.0.1:{http}
exporters:
  file/grpc:
    path: {out}/grpc.jsonl
  file/http:
    path: {out}/http.jsonl
"""
SINK_PIPELINES = """    traces/grpc:
      receivers: [otlp/grpc]
      exporters: [file/grpc]
    traces/http:
      receivers: [otlp/http]
      exporters: [file/http]
"""

OUR_EXPORTERS = """
  otlp:
    endpoint: {grpc}
    tls: {{insecure: true}}
    compression: gzip
    retry_on_failure: {{initial_interval: 100ms, max_interval: 1s}}
  otlphttp:
    endpoint: http://{http}
    compression: gzip
    retry_on_failure: {{initial_interval: 100ms, max_interval: 1s}}
"""


def big_request() -> ExportTraceServiceRequest:
    """One OTLP request of BIG_SPANS spans in 3 traces, each span with a 150 kB attribute."""
    spans = []
    for number in range(BIG_SPANS):
        trace_id = bytes([number % 3 + 1]) * 16
        spans.append(Span(
            trace_id=trace_id, span_id=(number + 1).to_bytes(8, "big"), name="chat gpt-4o-mini", kind=Span.SPAN_KIND_CLIENT,
            start_time_unix_nano=time.time_ns() - 1_000_000, end_time_unix_nano=time.time_ns(),
            attributes=[
                KeyValue(key="gen_ai.operation.name", value=AnyValue(string_value="chat")),
                KeyValue(key="gen_ai.request.model", value=AnyValue(string_value="gpt-4o-mini")),
                KeyValue(key="span.number", value=AnyValue(int_value=number)),
                KeyValue(key="gen_ai.prompt", value=AnyValue(string_value=f"{number:06d}" + "x" * ATTRIBUTE_BYTES)),
            ],
        ))
    resource = Resource(attributes=[KeyValue(key="service.name", value=AnyValue(string_value="big-batch"))])
    return ExportTraceServiceRequest(resource_spans=[ResourceSpans(resource=resource, scope_spans=[ScopeSpans(spans=spans)])])


def read_requests(path) -> list[ExportTraceServiceRequest]:
    """The requests otelcol's file exporter wrote (OTLP/JSON, one request per line)."""
    if not path.exists():
        return []
    return [json_format.Parse(line, ExportTraceServiceRequest()) for line in path.read_text().splitlines() if line.strip()]


def span_numbers(requests: list[ExportTraceServiceRequest]) -> list[int]:
    return sorted(
        attribute.value.int_value
        for request in requests for resource_spans in request.resource_spans
        for scope_spans in resource_spans.scope_spans for span in scope_spans.spans
        for attribute in span.attributes if attribute.key == "span.number"
    )


def test_large_batch_arrives_whole_and_split_below_the_default_receiver_limit(tmp_path, otelcol_binary):
    out = tmp_path / "out"
    out.mkdir()
    sink = Otelcol(otelcol_binary, tmp_path / "sink", otelcol_config(SINK, SINK_PIPELINES), out=out)
    with sink:
        exporters = OUR_EXPORTERS.format(grpc=sink.grpc_endpoint, http=f"127.0.0.1:{sink.ports['http']}")
        with CollectorProcess(tmp_path / "ours", exporters_yaml=exporters, exporter_ids="otlp, otlphttp", max_body_mib=64,
                              extensions="health_check, file_storage") as ours:
            request = big_request()
            assert request.ByteSize() > 2 * 4 * MIB
            answer = httpx.post(ours.http_url, content=request.SerializeToString(),
                                headers={"Content-Type": "application/x-protobuf"}, timeout=60)
            assert answer.status_code == 200, answer.text

            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                if all(len(span_numbers(read_requests(out / f"{p}.jsonl"))) >= BIG_SPANS for p in ("grpc", "http")):
                    break
                time.sleep(0.5)
            time.sleep(1)  # a duplicate, if any, would arrive now
            failed = ours.metric("otelcol_exporter_send_failed_spans_total")
        refused = sink.metric("otelcol_receiver_refused_spans_total")
        accepted = sink.metric("otelcol_receiver_accepted_spans_total")

    for protocol in ("grpc", "http"):
        requests = read_requests(out / f"{protocol}.jsonl")
        sizes = [r.ByteSize() for r in requests]
        # Everything, once: every span number exactly once.
        assert span_numbers(requests) == list(range(BIG_SPANS)), protocol
        # Split: more than one request, each within the receiver's default 4 MiB.
        assert len(requests) >= 3 and max(sizes) <= 4 * MIB, (protocol, sizes)
        print(f"\n{protocol}: {BIG_SPANS} spans ({request.ByteSize() / MIB:.1f} MiB) arrived in {len(requests)} requests"
              f" of {', '.join(f'{size / MIB:.2f}' for size in sizes)} MiB")
    assert (failed, refused, accepted) == (0, 0, 2 * BIG_SPANS)


SECURED_SINK = """
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:{grpc}
        auth:
          authenticator: bearertokenauth
      http:
        endpoint: 127.0.0.1:{http}
        auth:
          authenticator: bearertokenauth
exporters:
  file:
    path: {out}/secured.jsonl
"""


def test_permanent_refusal_is_dropped_and_counted_not_retried_forever(tmp_path, otelcol_binary):
    out = tmp_path / "out"
    out.mkdir()
    config = otelcol_config(SECURED_SINK, "    traces:\n      receivers: [otlp]\n      exporters: [file]\n",
                            extensions={"bearertokenauth": "    token: the-right-token\n"})
    sink = Otelcol(otelcol_binary, tmp_path / "sink", config, out=out)
    with sink:
        exporters = OUR_EXPORTERS.format(grpc=sink.grpc_endpoint, http=f"127.0.0.1:{sink.ports['http']}")
        with CollectorProcess(tmp_path / "ours", exporters_yaml=exporters, exporter_ids="otlp, otlphttp",
                              extensions="health_check, file_storage") as ours:
            request = big_request()
            del request.resource_spans[0].scope_spans[0].spans[3:]
            for span in request.resource_spans[0].scope_spans[0].spans:
                del span.attributes[3]  # small spans
            answer = httpx.post(ours.http_url, content=request.SerializeToString(),
                                headers={"Content-Type": "application/x-protobuf"}, timeout=30)
            assert answer.status_code == 200
            # Each exporter drops the 3 spans once (UNAUTHENTICATED / 401 are permanent) ...
            deadline = time.monotonic() + 30
            while ours.metric("otelcol_exporter_send_failed_spans_total") < 6 and time.monotonic() < deadline:
                time.sleep(0.2)
            time.sleep(3)
            # ... and does not try again: the count stays, the queues are empty.
            assert ours.metric("otelcol_exporter_send_failed_spans_total", exporter="otlp") == 3
            assert ours.metric("otelcol_exporter_send_failed_spans_total", exporter="otlphttp") == 3
            assert ours.metric("otelcol_exporter_queue_size") == 0
            assert "401" in ours.log() or "UNAUTHENTICATED" in ours.log()
    assert not (out / "secured.jsonl").exists() or not (out / "secured.jsonl").read_text().strip()
