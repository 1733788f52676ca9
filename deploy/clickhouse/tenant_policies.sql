-- Tenant isolation for genaitrace on a ClickHouse server managed with SQL (access_management=1).
-- The same model as users.d/genaitrace.xml, for servers whose users live in SQL rather than XML.
--
-- Apply as an admin:  clickhouse-client --multiquery < tenant_policies.sql
-- Passwords are not in this file: the users are created unable to log in (HOST NONE) and enabled
-- with a password from a secret at apply time, e.g.
--   clickhouse-client -q "ALTER USER tenant_acme IDENTIFIED WITH sha256_password BY '$(cat /run/secrets/acme)' HOST ANY"
--
-- Tenant of a span = the span's `tenant.id` attribute, else its resource's: the expression the
-- genai views use; the collector's bearertokenauth stamps both from the sender's token.

CREATE ROLE IF NOT EXISTS genaitrace_reader;
GRANT SELECT ON otel.* TO genaitrace_reader;

CREATE SETTINGS PROFILE IF NOT EXISTS genaitrace_readonly SETTINGS readonly = 2, max_execution_time = 60, max_result_rows = 1000000, result_overflow_mode = 'break';
CREATE SETTINGS PROFILE IF NOT EXISTS genaitrace_tenant SETTINGS readonly = 1, max_execution_time = 60, max_result_rows = 1000000, result_overflow_mode = 'break';

-- Grafana (all tenants, read-only) and the collector's writer see every row: once a table has row
-- policies, a user that none applies to sees nothing.
CREATE USER IF NOT EXISTS genaitrace_writer IDENTIFIED WITH no_password HOST NONE;
GRANT SELECT, INSERT, CREATE DATABASE, CREATE TABLE, CREATE VIEW, ALTER TABLE, ALTER UPDATE ON otel.* TO genaitrace_writer;
CREATE USER IF NOT EXISTS grafana IDENTIFIED WITH no_password HOST NONE SETTINGS PROFILE 'genaitrace_readonly';
GRANT genaitrace_reader TO grafana;
CREATE ROW POLICY IF NOT EXISTS all_rows ON otel.otel_traces FOR SELECT USING 1 TO grafana, genaitrace_writer;
CREATE ROW POLICY IF NOT EXISTS all_rows ON otel.otel_traces_trace_id_ts FOR SELECT USING 1 TO grafana, genaitrace_writer;
CREATE ROW POLICY IF NOT EXISTS all_rows ON otel.genai_daily FOR SELECT USING 1 TO grafana, genaitrace_writer;
CREATE ROW POLICY IF NOT EXISTS all_rows ON otel.genai_daily_local FOR SELECT USING 1 TO grafana, genaitrace_writer;
CREATE ROW POLICY IF NOT EXISTS all_rows ON otel.genai_calls FOR SELECT USING 1 TO grafana, genaitrace_writer;
CREATE ROW POLICY IF NOT EXISTS all_rows ON otel.genai_calls_local FOR SELECT USING 1 TO grafana, genaitrace_writer;
CREATE ROW POLICY IF NOT EXISTS all_rows ON otel.genai_trace_totals FOR SELECT USING 1 TO grafana, genaitrace_writer;
CREATE ROW POLICY IF NOT EXISTS all_rows ON otel.genai_trace_totals_local FOR SELECT USING 1 TO grafana, genaitrace_writer;
CREATE ROW POLICY IF NOT EXISTS all_rows ON otel.otel_logs FOR SELECT USING 1 TO grafana, genaitrace_writer;

-- One block per tenant (copy, then replace `acme` everywhere in it). On a cluster the `_local`
-- tables are what each shard reads; a single node has none of them, and a policy on them is inert.
CREATE USER IF NOT EXISTS tenant_acme IDENTIFIED WITH no_password HOST NONE SETTINGS PROFILE 'genaitrace_tenant';
GRANT genaitrace_reader TO tenant_acme;
CREATE ROW POLICY IF NOT EXISTS tenant_acme ON otel.otel_traces FOR SELECT USING if(SpanAttributes['tenant.id'] != '', SpanAttributes['tenant.id'], ResourceAttributes['tenant.id']) = 'acme' TO tenant_acme;
CREATE ROW POLICY IF NOT EXISTS tenant_acme ON otel.genai_daily FOR SELECT USING tenant = 'acme' TO tenant_acme;
CREATE ROW POLICY IF NOT EXISTS tenant_acme ON otel.genai_daily_local FOR SELECT USING tenant = 'acme' TO tenant_acme;
CREATE ROW POLICY IF NOT EXISTS tenant_acme ON otel.genai_calls FOR SELECT USING tenant = 'acme' TO tenant_acme;
CREATE ROW POLICY IF NOT EXISTS tenant_acme ON otel.genai_calls_local FOR SELECT USING tenant = 'acme' TO tenant_acme;
CREATE ROW POLICY IF NOT EXISTS tenant_acme ON otel.genai_trace_totals FOR SELECT USING tenant = 'acme' TO tenant_acme;
CREATE ROW POLICY IF NOT EXISTS tenant_acme ON otel.genai_trace_totals_local FOR SELECT USING tenant = 'acme' TO tenant_acme;
CREATE ROW POLICY IF NOT EXISTS tenant_acme ON otel.otel_logs FOR SELECT USING if(LogAttributes['tenant.id'] != '', LogAttributes['tenant.id'], ResourceAttributes['tenant.id']) = 'acme' TO tenant_acme;
CREATE ROW POLICY IF NOT EXISTS tenant_acme ON otel.otel_traces_trace_id_ts FOR SELECT USING 0 TO tenant_acme;

CREATE USER IF NOT EXISTS tenant_globex IDENTIFIED WITH no_password HOST NONE SETTINGS PROFILE 'genaitrace_tenant';
GRANT genaitrace_reader TO tenant_globex;
CREATE ROW POLICY IF NOT EXISTS tenant_globex ON otel.otel_traces FOR SELECT USING if(SpanAttributes['tenant.id'] != '', SpanAttributes['tenant.id'], ResourceAttributes['tenant.id']) = 'globex' TO tenant_globex;
CREATE ROW POLICY IF NOT EXISTS tenant_globex ON otel.genai_daily FOR SELECT USING tenant = 'globex' TO tenant_globex;
CREATE ROW POLICY IF NOT EXISTS tenant_globex ON otel.genai_daily_local FOR SELECT USING tenant = 'globex' TO tenant_globex;
CREATE ROW POLICY IF NOT EXISTS tenant_globex ON otel.genai_calls FOR SELECT USING tenant = 'globex' TO tenant_globex;
CREATE ROW POLICY IF NOT EXISTS tenant_globex ON otel.genai_calls_local FOR SELECT USING tenant = 'globex' TO tenant_globex;
CREATE ROW POLICY IF NOT EXISTS tenant_globex ON otel.genai_trace_totals FOR SELECT USING tenant = 'globex' TO tenant_globex;
CREATE ROW POLICY IF NOT EXISTS tenant_globex ON otel.genai_trace_totals_local FOR SELECT USING tenant = 'globex' TO tenant_globex;
CREATE ROW POLICY IF NOT EXISTS tenant_globex ON otel.otel_logs FOR SELECT USING if(LogAttributes['tenant.id'] != '', LogAttributes['tenant.id'], ResourceAttributes['tenant.id']) = 'globex' TO tenant_globex;
CREATE ROW POLICY IF NOT EXISTS tenant_globex ON otel.otel_traces_trace_id_ts FOR SELECT USING 0 TO tenant_globex;
