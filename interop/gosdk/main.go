// Command gosdk-sender makes a small GenAI trace with the OpenTelemetry Go SDK and sends it with the
// SDK's own OTLP exporter, as a Go application would. It prints the trace id.
//
//	gosdk-sender grpc 127.0.0.1:4317 service-name
//	gosdk-sender http 127.0.0.1:4318 service-name
package main

import (
	"context"
	"fmt"
	"os"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

func newExporter(ctx context.Context, protocol, endpoint string) (sdktrace.SpanExporter, error) {
	switch protocol {
	case "grpc":
		return otlptracegrpc.New(ctx, otlptracegrpc.WithEndpoint(endpoint), otlptracegrpc.WithInsecure())
	case "http":
		return otlptracehttp.New(ctx, otlptracehttp.WithEndpoint(endpoint), otlptracehttp.WithInsecure())
	}
	return nil, fmt.Errorf("protocol must be grpc or http, not %q", protocol)
}

func run(protocol, endpoint, service string) error {
	ctx := context.Background()
	exporter, err := newExporter(ctx, protocol, endpoint)
	if err != nil {
		return err
	}
	res := resource.NewWithAttributes("", attribute.String("service.name", service), attribute.String("tenant.id", "acme"))
	// A synchronous span processor: every span is exported before the program exits, so a failed
	// export is an exit code here, not a lost span.
	provider := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exporter), sdktrace.WithResource(res))
	tracer := provider.Tracer("interop.gosdk", trace.WithInstrumentationVersion("1.0.0"))

	ctx, agent := tracer.Start(ctx, "invoke_agent planner", trace.WithAttributes(
		attribute.String("gen_ai.operation.name", "invoke_agent"), attribute.String("gen_ai.agent.name", "planner")))
	_, chat := tracer.Start(ctx, "chat gpt-4o-mini", trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(
		attribute.String("gen_ai.operation.name", "chat"),
		attribute.String("gen_ai.provider.name", "openai"),
		attribute.String("gen_ai.request.model", "gpt-4o-mini"),
		attribute.String("gen_ai.response.model", "gpt-4o-mini-2024-07-18"),
		attribute.Int("gen_ai.usage.input_tokens", 1000),
		attribute.Int("gen_ai.usage.output_tokens", 500),
	))
	chat.End()
	agent.End()
	fmt.Println(agent.SpanContext().TraceID().String())
	return provider.Shutdown(context.Background())
}

func main() {
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: gosdk-sender grpc|http HOST:PORT SERVICE")
		os.Exit(64)
	}
	if err := run(os.Args[1], os.Args[2], os.Args[3]); err != nil {
		fmt.Fprintln(os.Stderr, "gosdk-sender:", err)
		os.Exit(1)
	}
}
