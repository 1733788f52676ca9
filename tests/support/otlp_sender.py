"""A separate process that makes spans with the real OpenTelemetry SDK and sends them with the
SDK's own OTLP exporter. Prints the trace id.

    python tests/support/otlp_sender.py grpc 127.0.0.1:4317 service-name
    python tests/support/otlp_sender.py http http://127.0.0.1:4318/v1/traces service-name
"""

import sys

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Link, SpanKind, Status, StatusCode


def main(protocol: str, endpoint: str, service: str) -> None:
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter(endpoint=endpoint, insecure=True)
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter(endpoint=endpoint)
    provider = TracerProvider(resource=Resource.create({"service.name": service, "deployment.environment": "test", "tenant.id": "acme"}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    tracer = provider.get_tracer("tests.sender", "2.1.0")
    with tracer.start_as_current_span("invoke_workflow research_crew", kind=SpanKind.INTERNAL,
                                      attributes={"gen_ai.operation.name": "invoke_workflow"}) as root:
        with tracer.start_as_current_span("invoke_agent researcher", attributes={"gen_ai.agent.name": "researcher"}) as agent:
            link = Link(root.get_span_context(), {"link.reason": "follows"})
            with tracer.start_as_current_span(
                "chat gpt-4o-mini", kind=SpanKind.CLIENT, links=[link],
                attributes={
                    "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
                    "gen_ai.request.model": "gpt-4o-mini", "gen_ai.usage.input_tokens": 1200,
                    "gen_ai.usage.output_tokens": 300, "gen_ai.request.temperature": 0.25,
                    "gen_ai.request.stream": False, "gen_ai.response.finish_reasons": ["stop", "length"],
                },
            ) as llm:
                llm.add_event("gen_ai.content.prompt", {"gen_ai.prompt": "hello", "index": 3})
            with tracer.start_as_current_span("execute_tool search", attributes={"gen_ai.tool.name": "search"}) as tool:
                tool.set_status(Status(StatusCode.ERROR, "search backend timed out"))
            agent.set_status(Status(StatusCode.OK))
    print(format(root.get_span_context().trace_id, "032x"), flush=True)
    provider.shutdown()


if __name__ == "__main__":
    main(*sys.argv[1:4])
