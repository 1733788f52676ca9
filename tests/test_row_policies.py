"""ClickHouse side of tenancy: deploy/clickhouse/users.d/genaitrace.xml and tenant_policies.sql.

What runs here is the embedded engine (chdb), which loads the real users.d file through a
`--config-file` exactly as clickhouse-server merges users.d: the users, profiles and row policies
are parsed and registered by ClickHouse itself, and each tenant's policy filter is then evaluated
by ClickHouse against the real `otel_traces` / `genai_daily` schema with rows of several tenants.

Not provable here (chdb cannot log in as another user: no server listener, impersonation off):
that a server applies the policy at login. The policy objects are the server's own, so the gap is
ClickHouse's enforcement itself, not our filters.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "deploy" / "clickhouse"

SCRIPT = textwrap.dedent(r"""
    import json, sys, chdb
    from collector.storage.schema import SchemaOptions, logs_statements, schema_statements
    from collector.storage import genai_views, session_views
    work = sys.argv[1]
    conn = chdb.connect(f"file:{work}/db?config-file={work}/config.xml")
    q = lambda sql: conn.query(sql, "JSONCompact")
    out = {}
    rows = lambda sql: json.loads(q(sql).bytes() or b'{"data": []}')["data"]
    options = SchemaOptions(database="otel", traces_table_name="otel_traces")
    for statement in (schema_statements(options) + logs_statements(options) + genai_views.statements(options)
                      + session_views.statements(options)):
        q(statement)
    def span(name, span_tenant, resource_tenant):
        attrs = {"gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": "10"}
        if span_tenant:
            attrs["tenant.id"] = span_tenant
        res = {"service.name": "svc"}
        if resource_tenant:
            res["tenant.id"] = resource_tenant
        lit = lambda d: "map(" + ", ".join(f"'{k}', '{v}'" for k, v in d.items()) + ")"
        return (f"INSERT INTO otel.otel_traces (Timestamp, TraceId, SpanId, SpanName, ServiceName, SpanAttributes, ResourceAttributes) "
                f"VALUES (now64(9), lower(hex(randomString(16))), lower(hex(randomString(8))), '{name}', 'svc', {lit(attrs)}, {lit(res)})")
    q(span("acme-1", "acme", "acme"))
    q(span("acme-2", "", "acme"))                 # tenant only on the resource
    q(span("globex-1", "globex", "globex"))
    q(span("globex-claims-in-resource", "globex", "acme"))  # span attribute wins, as in the views
    q(span("no-tenant", "", ""))
    for body, record_tenant, resource_tenant in (("acme-log", "acme", ""), ("globex-log", "", "globex"), ("no-tenant-log", "", "")):
        q("INSERT INTO otel.otel_logs (Timestamp, Body, LogAttributes, ResourceAttributes) VALUES "
          f"(now64(9), '{body}', map('tenant.id', '{record_tenant}'), map('tenant.id', '{resource_tenant}'))")
    out["tables"] = [r[0] for r in rows("SELECT name FROM system.tables WHERE database = 'otel' AND engine LIKE '%MergeTree'")]
    out["users"] = rows("SELECT name, storage FROM system.users ORDER BY name")
    out["policies"] = rows("SELECT short_name, database, table, select_filter, apply_to_list FROM system.row_policies ORDER BY short_name, table")
    out["profiles"] = rows("SELECT profile_name, setting_name, value FROM system.settings_profile_elements WHERE profile_name LIKE 'genaitrace%' ORDER BY profile_name, setting_name")
    out["grants"] = rows("SELECT name, default_database FROM system.users")
    visible = {}
    for policy in out["policies"]:
        name, db, table, flt = policy[0], policy[1], policy[2], policy[3]
        if table == "otel_traces":
            visible[name] = [r[0] for r in rows(f"SELECT SpanName FROM otel.otel_traces WHERE {flt} ORDER BY SpanName")]
        if table in ("genai_daily", "genai_calls", "genai_trace_totals"):
            visible[f"{name}:{table}"] = [r[0] for r in rows(f"SELECT DISTINCT tenant FROM otel.{table} WHERE {flt} ORDER BY tenant")]
        if table == "otel_logs":
            visible[name + ":logs"] = [r[0] for r in rows(f"SELECT Body FROM otel.otel_logs WHERE {flt} ORDER BY Body")]
    out["visible"] = visible
    parsed = []
    text = "\n".join(l for l in sys.stdin.read().splitlines() if not l.strip().startswith("--"))
    for statement in text.split(";"):
        body = statement.strip()
        if body:
            escaped = body.replace("\\", "\\\\").replace("'", "\\'")
            parsed.append(rows(f"SELECT formatQuery('{escaped}')")[0][0])
    out["sql_parsed"] = parsed
    print("RESULT" + json.dumps(out))
""")


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    work = tmp_path_factory.mktemp("rowpolicies")
    (work / "users.d").mkdir()
    shutil.copy(DEPLOY / "users.d" / "genaitrace.xml", work / "users.d" / "genaitrace.xml")
    # The server's own users.xml (a minimal one); users.d beside it is merged in, as on a server.
    (work / "users.xml").write_text(
        "<clickhouse><profiles><default/></profiles><quotas><default/></quotas><users><default>"
        "<password></password><networks><ip>::1</ip><ip>127.0.0.1</ip></networks><profile>default</profile>"
        "<quota>default</quota><access_management>1</access_management></default></users></clickhouse>"
    )
    (work / "config.xml").write_text(
        f"<clickhouse><user_directories><users_xml><path>{work}/users.xml</path></users_xml></user_directories></clickhouse>"
    )
    env = {**os.environ, "CLICKHOUSE_WRITER_PASSWORD": "w-secret", "CLICKHOUSE_GRAFANA_PASSWORD": "g-secret",
           "CLICKHOUSE_TENANT_ACME_PASSWORD": "a-secret", "CLICKHOUSE_TENANT_GLOBEX_PASSWORD": "x-secret"}
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(work)], input=(DEPLOY / "tenant_policies.sql").read_text(),
                          capture_output=True, text=True, timeout=120, cwd=REPO, env=env)
    line = next((l for l in proc.stdout.splitlines() if l.startswith("RESULT")), None)
    assert line, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(line[len("RESULT"):])


def test_users_from_deploy_file_are_loaded(loaded):
    names = {row[0] for row in loaded["users"]}
    assert {"grafana", "tenant_acme", "tenant_globex", "genaitrace_writer"} <= names


def test_grafana_and_tenant_profiles_are_read_only(loaded):
    settings = {(p, s): v for p, s, v in loaded["profiles"]}
    assert settings[("genaitrace_readonly", "readonly")] == "2"   # Grafana may set settings, never write
    assert settings[("genaitrace_tenant", "readonly")] == "1"     # tenants may not even change settings


def test_tenant_sees_only_its_rows(loaded):
    visible = loaded["visible"]
    assert visible["tenant_acme"] == ["acme-1", "acme-2"]
    assert visible["tenant_globex"] == ["globex-1", "globex-claims-in-resource"]
    assert not set(visible["tenant_acme"]) & set(visible["tenant_globex"])
    assert "no-tenant" not in visible["tenant_acme"] + visible["tenant_globex"]
    # Grafana and the writer see everything.
    assert len(visible["grafana"]) == 5 and len(visible["genaitrace_writer"]) == 5


def test_tenant_rollup_calls_logs_and_lookup_are_filtered(loaded):
    visible = loaded["visible"]
    for table in ("genai_daily", "genai_calls", "genai_trace_totals"):
        assert visible[f"tenant_acme:{table}"] == ["acme"] and visible[f"tenant_globex:{table}"] == ["globex"]
        assert visible[f"grafana:{table}"] == ["", "acme", "globex"]
    assert visible["tenant_acme:logs"] == ["acme-log"] and visible["tenant_globex:logs"] == ["globex-log"]
    assert len(visible["grafana:logs"]) == 3
    lookup = {(p[0], p[2]): p[3] for p in loaded["policies"]}
    assert lookup[("tenant_acme", "otel_traces_trace_id_ts")] == "0"


def test_every_table_the_schema_creates_has_a_policy_for_every_user(loaded):
    """A table no policy names is readable in full by every tenant: each stored table of the
    schema (spans, logs, lookup, rollup, calls, per-trace totals) has a policy for each user of the file."""
    users = {"tenant_acme", "tenant_globex", "grafana", "genaitrace_writer", "genaitrace_reader"}
    covered = {(p[2], p[0]) for p in loaded["policies"]}
    assert {"otel_traces", "otel_logs", "genai_daily", "genai_calls", "genai_trace_totals"} <= set(loaded["tables"])
    missing = sorted((table, user) for table in loaded["tables"] for user in users if (table, user) not in covered)
    assert not missing, missing


def test_every_policy_applies_to_its_user_only(loaded):
    for name, _db, table, _flt, apply_to in loaded["policies"]:
        assert apply_to == [name], (name, table, apply_to)


def test_sql_policies_parse(loaded):
    parsed = loaded["sql_parsed"]
    assert sum("CREATE ROW POLICY" in p for p in parsed) == 27
    assert any("tenant_acme" in p and "'acme'" in p for p in parsed)
