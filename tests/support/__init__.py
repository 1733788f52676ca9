"""What the tests share: collector processes and peers, load senders and hostile clients, seed data,
in-process sinks, instrumentation fixtures. Tests import it as `support.<module>` (tests/ is on
sys.path through tests/conftest.py), e.g. `from support.harness import CollectorProcess`.

- harness: a real collector process (CollectorProcess), free_port, CONFIG_TEMPLATE
- otlp_load: OTLP requests (make_request) and senders over gRPC and HTTP, stored-row counts
- otlp_sender: a separate process sending spans with the OpenTelemetry SDK's own exporters
- hostile_clients: a well-behaved client to time next to hostile ones
- fault_injection: a collector entry point with faults injected (CollectorProcess(launcher=...))
- peers: third-party processes (otelcol, Jaeger, Go and JS SDK senders) for tests/interop
- seed_data: deterministic GenAI traces with their truth, and a shared seeded chdb store
- workload: realistic multi-agent OTLP batches, deterministic for a seed (the benchmark's workload too)
- sinks: in-process consumers and OTLP/HTTP destinations that record what reaches them
- instrumentation_fixtures: app-side fixtures (fake LLM, OTLP capture, child processes)
- grafana: the ClickHouse data source's macro expansion, as the dashboards use it
- reference_columns: the plain OTLP -> otel_traces reference conversion, and spans hitting every edge
- contrib_ddl: the contrib clickhouseexporter's DDL (Go module cache) and a CREATE TABLE parser
"""
