"""The sqlquery endpoint's configuration and the reader identity of the deploy files.

- `genaitrace validate` refuses a `sqlquery` reachable from other hosts without an authenticator,
  naming file, line and key; the shipped deploy configs validate and use auth and the reader user.
- deploy/clickhouse/users.d's `genaitrace_reader`, loaded by ClickHouse itself (chdb with the real
  users.d, as in test_row_policies): only SELECT on the otel database, a readonly profile whose
  constraints admit exactly what the endpoint sets per query; config.d empties user_files_path.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from collector.extensions.sqlquery import QueryLimits, SQLQueryConfig, is_loopback

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "deploy"

BASE = """\
extensions:
{auth_ext}  sqlquery:
    endpoint: "{endpoint}"
    exporter: clickhouse
{auth}receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:4318
exporters:
  clickhouse:
    endpoint: chdb://{data}
service:
  extensions: [{extensions}]
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [clickhouse]
"""


def _validate(tmp_path, endpoint: str, with_auth: bool, env: dict | None = None, path: Path | None = None):
    if path is None:
        path = tmp_path / "c.yaml"
        path.write_text(BASE.format(
            endpoint=endpoint, data=tmp_path / "data",
            auth_ext="  bearertokenauth:\n    token: abc\n" if with_auth else "",
            auth="    auth: {authenticator: bearertokenauth}\n" if with_auth else "",
            extensions="bearertokenauth, sqlquery" if with_auth else "sqlquery"))
    return subprocess.run([sys.executable, "-m", "collector.cli", "validate", "-c", str(path)], capture_output=True,
                          text=True, timeout=120, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})})


@pytest.mark.parametrize("endpoint", ["0.0.0.0:13134", "[::]:13134", ":13134", "10.1.2.3:13134", "collector:13134"])
def test_network_endpoint_without_auth_is_refused_with_file_line_key(tmp_path, endpoint):
    result = _validate(tmp_path, endpoint, with_auth=False)
    assert result.returncode != 0
    assert f"{tmp_path / 'c.yaml'}:2: extensions.sqlquery" in result.stderr + result.stdout, result.stderr
    assert "auth" in result.stderr + result.stdout


@pytest.mark.parametrize("endpoint", ["127.0.0.1:13134", "localhost:13134", "[::1]:13134", "127.0.0.2:13134"])
def test_loopback_endpoint_needs_no_auth(tmp_path, endpoint):
    result = _validate(tmp_path, endpoint, with_auth=False)
    assert result.returncode == 0, result.stderr


def test_network_endpoint_with_auth_is_valid(tmp_path):
    assert _validate(tmp_path, "0.0.0.0:13134", with_auth=True).returncode == 0


def test_loopback_classification():
    assert is_loopback("127.0.0.1:1") and is_loopback("[::1]:1") and is_loopback("localhost:1")
    assert not is_loopback("0.0.0.0:1") and not is_loopback(":1") and not is_loopback("example.com:1")
    with pytest.raises(ValueError):
        SQLQueryConfig(endpoint="0.0.0.0:13134")


@pytest.mark.parametrize("config", ["collector/otel-collector.yaml", "scale-out/collector/collector-1.yaml",
                                    "scale-out/collector/collector-2.yaml", "scale-out/collector/collector-3.yaml"])
def test_deploy_configs_put_sqlquery_behind_auth_and_the_reader(tmp_path, config):
    import yaml

    env = {"GENAITRACE_SQL_TOKEN": "t", "CLICKHOUSE_READER_PASSWORD": "r", "CLICKHOUSE_PASSWORD": "w"}
    result = _validate(tmp_path, "", False, env, DEPLOY / config)
    assert result.returncode == 0, result.stderr
    sqlquery = yaml.safe_load((DEPLOY / config).read_text())["extensions"]["sqlquery"]
    assert sqlquery["auth"]["authenticator"].startswith("bearertokenauth")
    assert sqlquery["username"] == "genaitrace_reader"


SCRIPT = textwrap.dedent(r"""
    import json, sys, chdb
    work = sys.argv[1]
    conn = chdb.connect(f"file:{work}/db?config-file={work}/config.xml")
    rows = lambda sql: json.loads(conn.query(sql, "JSONCompact").bytes() or b'{"data": []}')["data"]
    out = {
        "grants": rows("SELECT access_type, database, table FROM system.grants WHERE user_name = 'genaitrace_reader' ORDER BY access_type"),
        "user": rows("SELECT name, default_roles_all FROM system.users WHERE name = 'genaitrace_reader'"),
        "profile": rows("SELECT setting_name, value, min, max, writability FROM system.settings_profile_elements "
                        "WHERE profile_name = 'genaitrace_sqlquery' ORDER BY setting_name"),
        "policies": rows("SELECT table, select_filter FROM system.row_policies WHERE short_name = 'genaitrace_reader' ORDER BY table"),
    }
    print("RESULT" + json.dumps(out))
""")


@pytest.fixture(scope="module")
def reader(tmp_path_factory):
    work = tmp_path_factory.mktemp("reader")
    (work / "users.xml").write_text(
        "<clickhouse><profiles><default/></profiles><quotas><default/></quotas><users><default>"
        "<password></password><networks><ip>::1</ip></networks><profile>default</profile>"
        "<quota>default</quota><access_management>1</access_management></default></users></clickhouse>")
    (work / "users.d").mkdir()
    (work / "users.d" / "genaitrace.xml").write_text((DEPLOY / "clickhouse" / "users.d" / "genaitrace.xml").read_text())
    (work / "config.xml").write_text(
        f"<clickhouse><user_directories><users_xml><path>{work}/users.xml</path></users_xml></user_directories></clickhouse>")
    env = {**os.environ, "CLICKHOUSE_WRITER_PASSWORD": "w", "CLICKHOUSE_GRAFANA_PASSWORD": "g", "CLICKHOUSE_READER_PASSWORD": "r",
           "CLICKHOUSE_TENANT_ACME_PASSWORD": "a", "CLICKHOUSE_TENANT_GLOBEX_PASSWORD": "x"}
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(work)], capture_output=True, text=True, timeout=120,
                          cwd=REPO, env=env)
    line = next((l for l in proc.stdout.splitlines() if l.startswith("RESULT")), None)
    assert line, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(line[len("RESULT"):])


def test_reader_may_only_select_the_otel_database(reader):
    assert reader["user"], "genaitrace_reader is not defined in users.d"
    grants = {(access, database) for access, database, _table in reader["grants"]}
    assert grants == {("SELECT", "otel"), ("KILL QUERY", None)}, grants


def test_reader_profile_is_readonly_and_admits_what_the_endpoint_sets(reader):
    profile = {name: (value, lo, hi, writability) for name, value, lo, hi, writability in reader["profile"]}
    assert profile["readonly"][0] == "2"   # the endpoint sets limits in the query, then readonly=1
    assert profile["allow_ddl"][0] == "0"
    for name, value in QueryLimits().settings().items():
        if name in profile and profile[name][2] is not None:
            assert float(value) <= float(profile[name][2]), (name, value, profile[name])


def test_reader_sees_every_row_of_the_filtered_tables(reader):
    assert {table: flt for table, flt in reader["policies"]} == {
        table: "1" for table in ("otel_traces", "otel_traces_trace_id_ts", "otel_logs", "genai_daily", "genai_daily_local",
                                 "genai_calls", "genai_calls_local", "genai_trace_totals", "genai_trace_totals_local")}


def test_server_user_files_path_is_an_empty_directory():
    root = ET.parse(DEPLOY / "clickhouse" / "config.d" / "genaitrace.xml").getroot()
    path = root.findtext("user_files_path")
    assert path and path.rstrip("/") not in ("/", "/var/lib/clickhouse", "/var/lib/clickhouse/user_files")
    assert root.findtext("dictionaries_config") in ("", None)
