// Makes a small GenAI trace with the OpenTelemetry JS SDK and sends it with the SDK's own OTLP
// exporter, as a Node.js application would. Prints the trace id.
//
//   node sender.js grpc  http://127.0.0.1:4317 service-name
//   node sender.js http  http://127.0.0.1:4318/v1/traces service-name   (OTLP/HTTP JSON)
//   node sender.js proto http://127.0.0.1:4318/v1/traces service-name   (OTLP/HTTP protobuf)
'use strict';

const { SpanKind, context, trace } = require('@opentelemetry/api');
const { resourceFromAttributes } = require('@opentelemetry/resources');
const { NodeTracerProvider, SimpleSpanProcessor } = require('@opentelemetry/sdk-trace-node');

const EXPORTERS = {
  grpc: () => require('@opentelemetry/exporter-trace-otlp-grpc').OTLPTraceExporter,
  http: () => require('@opentelemetry/exporter-trace-otlp-http').OTLPTraceExporter,
  proto: () => require('@opentelemetry/exporter-trace-otlp-proto').OTLPTraceExporter,
};

async function main([protocol, url, service]) {
  if (!EXPORTERS[protocol] || !url || !service) {
    console.error('usage: node sender.js grpc|http|proto URL SERVICE');
    process.exit(64);
  }
  const Exporter = EXPORTERS[protocol]();
  const exporter = new Exporter({ url });
  let failed = null;
  // Export results are otherwise only logged: remember a failure so the exit code reports it.
  const export_ = exporter.export.bind(exporter);
  exporter.export = (spans, done) => export_(spans, (result) => {
    if (result.code !== 0) failed = result.error || new Error('export failed');
    done(result);
  });
  const provider = new NodeTracerProvider({
    resource: resourceFromAttributes({ 'service.name': service, 'tenant.id': 'acme' }),
    spanProcessors: [new SimpleSpanProcessor(exporter)],
  });
  const tracer = provider.getTracer('interop.js', '1.0.0');
  const agent = tracer.startSpan('invoke_agent planner', {
    attributes: { 'gen_ai.operation.name': 'invoke_agent', 'gen_ai.agent.name': 'planner' },
  });
  // The parent is passed explicitly: no global context manager is registered here.
  const chat = tracer.startSpan('chat gpt-4o-mini', {
    kind: SpanKind.CLIENT,
    attributes: {
      'gen_ai.operation.name': 'chat',
      'gen_ai.provider.name': 'openai',
      'gen_ai.request.model': 'gpt-4o-mini',
      'gen_ai.response.model': 'gpt-4o-mini-2024-07-18',
      'gen_ai.usage.input_tokens': 1000,
      'gen_ai.usage.output_tokens': 500,
    },
  }, trace.setSpan(context.active(), agent));
  chat.end();
  agent.end();
  const traceId = agent.spanContext().traceId;
  await provider.forceFlush();
  await provider.shutdown();
  if (failed) {
    console.error(`export failed: ${failed.message || failed}`);
    process.exit(1);
  }
  console.log(traceId);
}

main(process.argv.slice(2)).catch((err) => {
  console.error(err && err.message ? err.message : err);
  process.exit(1);
});
