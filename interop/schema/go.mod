// Pins the contrib clickhouseexporter whose DDL (internal/sqltemplates/*.sql) tests/interop/
// test_contrib_schema.py compares with collector/storage/schema.py. Only downloaded, never built.
// v0.165.1 is the newest served; the otelcol build (interop/otelcol) stays at v0.161.0 because
// loadbalancingexporter is not served past it.
module github.com/genaitrace/genaitrace/interop/schema

go 1.26.0

require github.com/open-telemetry/opentelemetry-collector-contrib/exporter/clickhouseexporter v0.165.1
