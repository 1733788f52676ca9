"""The SQL endpoint under attack: a real collector process, plain HTTP clients on 127.0.0.1.

One collector with `bearertokenauth` (a shared admin token and two tenant tokens) and `sqlquery`
behind it. A canary file and a canary environment variable of the collector must never appear in
any answer. Each attack must be refused with a clear error while a normal query and an OTLP
ingest are served meanwhile; tenants read only their rows; a client that hangs up gets its query
killed; a hostile query stays within its memory limit.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid

import httpx
import pytest

from support.harness import CONFIG_TEMPLATE, SQL_RESULT_LIMITS, CollectorProcess
from support.otlp_load import make_request

# `alone`: the assertions measure how fast others are served (pyproject.toml's markers)
pytestmark = [pytest.mark.timeout(300), pytest.mark.alone]

ADMIN, ACME, GLOBEX = "admin-" + uuid.uuid4().hex, "acme-" + uuid.uuid4().hex, "globex-" + uuid.uuid4().hex
CANARY_FILE_TEXT = "CANARYFILE" + uuid.uuid4().hex
CANARY_ENV_TEXT = "CANARYENV" + uuid.uuid4().hex
SECRETS = (CANARY_FILE_TEXT, CANARY_ENV_TEXT, ADMIN, ACME, GLOBEX)


@pytest.fixture(scope="module")
def collector(tmp_path_factory):
    work = tmp_path_factory.mktemp("sqlattacks")
    canary = work / "canary.txt"
    canary.write_text(CANARY_FILE_TEXT + "\n")
    config = (CONFIG_TEMPLATE
              .replace("extensions:\n  health_check:",
                       "extensions:\n  bearertokenauth:\n    token: ${{env:GT_ADMIN_TOKEN}}\n    tenants:\n"
                       "      acme: {{token: \"${{env:GT_ACME_TOKEN}}\"}}\n"
                       "      globex: {{token: \"${{env:GT_GLOBEX_TOKEN}}\"}}\n  health_check:")
              # the harness raises the result limits for the reliability tests; the attacks run
              # against the endpoint's default result limits, with a time and memory limit of their own
              .replace(SQL_RESULT_LIMITS,
                       "    auth: {{authenticator: bearertokenauth}}\n"
                       "    limits: {{max_execution_time: 10s, max_memory_usage_mib: 256}}\n"))
    assert "max_result_rows" not in config
    process = CollectorProcess(work, config_text=config, extensions="bearertokenauth, health_check, file_storage, sqlquery",
                               env={"GT_ADMIN_TOKEN": ADMIN, "GT_ACME_TOKEN": ACME, "GT_GLOBEX_TOKEN": GLOBEX,
                                    "GT_CANARY_SECRET": CANARY_ENV_TEXT})
    process.canary = canary
    process.start()
    for tenant, token in (("acme", ACME), ("globex", GLOBEX)):
        request, _ = make_request(3, tenant=tenant, attrs={"marker": f"{tenant}-row"})
        for span in request.resource_spans[0].scope_spans[0].spans:
            span.name = f"{tenant}-span"
        assert _ingest(process, request, token).status_code == 200
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and _rows(process, "SELECT count() AS n FROM otel.otel_traces", ADMIN)[0]["n"] < 6:
        time.sleep(0.2)
    yield process
    process.stop()


def _ingest(collector, request, token):
    return httpx.post(collector.http_url, content=request.SerializeToString(), timeout=10,
                      headers={"content-type": "application/x-protobuf", "authorization": f"Bearer {token}"})


def _sql(collector, sql, token=ADMIN, parameters=None, timeout=60):
    headers = {"authorization": f"Bearer {token}"} if token else {}
    return httpx.post(collector.query_url, json={"sql": sql, "parameters": parameters}, headers=headers, timeout=timeout)


def _rows(collector, sql, token=ADMIN):
    response = _sql(collector, sql, token)
    assert response.status_code == 200, response.text
    body = response.json()
    return [dict(zip(body["columns"], row)) for row in body["rows"]]


def _no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"a secret leaked: {text[:300]}"


def _served_meanwhile(collector) -> None:
    """A normal query and an ingest are answered while the attack was made."""
    assert _rows(collector, "SELECT count() AS n FROM otel.otel_traces")[0]["n"] >= 6
    request, _ = make_request(1, tenant="acme")
    assert _ingest(collector, request, ACME).status_code == 200


ATTACKS = [
    # files and the environment (the finding: the check itself read the file)
    "SELECT toUInt8(file('{canary}'))",
    "SELECT file('/proc/self/environ')",
    "SELECT toUInt8(file('/proc/self/environ'))",
    "SELECT FILE('{canary}')",
    "SELECT * FROM file('{canary}', 'LineAsString')",
    "SELECT * FROM file('/proc/self/environ', 'RawBLOB')",
    "SELECT (SELECT file('{canary}'))",
    "SELECT * FROM otel.otel_traces WHERE SpanName = file('{canary}')",
    "SELECT {{f:Identifier}}('{canary}')",
    # system tables and other databases, directly and through subqueries, IN, views, merge
    "SELECT * FROM system.settings",
    "SELECT (SELECT count() FROM system.processes)",
    "SELECT (SELECT groupArray(name) FROM system.disks)",
    "SELECT * FROM system.users",
    "SELECT 1 IN system.users",
    "SELECT * FROM otel.otel_traces WHERE SpanName IN (SELECT name FROM system.settings)",
    "SELECT * FROM system.query_log",
    "SELECT * FROM INFORMATION_SCHEMA.TABLES",
    "SELECT * FROM default.anything",
    "SELECT * FROM merge('system', '.*')",
    "SELECT * FROM merge('otel', '.*')",
    "SELECT * FROM view(SELECT * FROM system.processes)",
    "SELECT * FROM {{t:Identifier}}",
    "SELECT getServerSetting('user_files_path')",
    "SELECT dictGet('any', 'x', 1)",
    "SELECT joinGet('otel.otel_traces', 'SpanName', 1)",
    # table functions that reach outside
    "SELECT * FROM url('http://127.0.0.1:1/', 'LineAsString')",
    "SELECT * FROM remote('127.0.0.1', system.one)",
    "SELECT * FROM s3('http://127.0.0.1:1/b/k', 'CSV')",
    "SELECT * FROM mysql('127.0.0.1:1', 'd', 't', 'u', 'p')",
    "SELECT * FROM postgresql('127.0.0.1:1', 'd', 't', 'u', 'p')",
    "SELECT * FROM executable('cat /etc/passwd', 'LineAsString', 'x String')",
    "SELECT * FROM input('x String')",
    "SELECT * FROM Python(config)",
    # writes, files, settings, several statements
    "SELECT count() FROM otel.otel_traces INTO OUTFILE '/tmp/genaitrace-sql-attack.txt'",
    "SELECT 1 FORMAT TabSeparated",
    "SELECT 1 SETTINGS readonly = 0",
    "SELECT * FROM (SELECT 1 SETTINGS max_execution_time = 100000)",
    "SELECT 1 SETTINGS additional_table_filters = {{'otel.otel_traces': '1'}}",
    "SELECT 1; SELECT file('{canary}')",
    "SELECT 1 -- \n; DROP TABLE otel.otel_traces",
    "INSERT INTO otel.otel_traces (SpanName) VALUES ('x')",
    "DROP TABLE otel.otel_traces",
    "SET readonly = 0",
    "SYSTEM SHUTDOWN",
    "KILL QUERY WHERE 1",
    "CREATE DICTIONARY d (k UInt64) PRIMARY KEY k SOURCE(FILE(path '{canary}' format 'CSV')) LAYOUT(FLAT()) LIFETIME(0)",
    "SELECT 1 AS `a\n TableIdentifier otel.otel_traces`, file('{canary}')",
    # resource exhaustion
    "SELECT count() FROM numbers(1e12)",
    "SELECT count() FROM numbers_mt(1000000000000)",
    "SELECT length(repeat('x', 1000000000))",
    "SELECT length(groupArray(number)) FROM numbers(500000000)",
    # 10^12 joined rows: stopped by the time limit on any machine (10^10 took 15 s on one idle core,
    # so close to the 10 s limit that a fast run answered it)
    "SELECT count() FROM numbers(1000000) AS a, numbers(1000000) AS b",
    "SELECT number FROM numbers(10000000)",
    "SELECT sleepEachRow(1) FROM numbers(100)",
    "SELECT toUInt8(SpanName) FROM otel.otel_traces",
]


@pytest.mark.parametrize("attack", ATTACKS)
def test_attack_is_refused_with_a_clear_error_and_others_are_served(collector, attack):
    sql = attack.format(canary=collector.canary)
    parameters = {"t": "system.users", "f": "file"}
    for token in (ADMIN, ACME):
        began = time.monotonic()
        response = _sql(collector, sql, token, parameters)
        elapsed = time.monotonic() - began
        _no_secret(response.text)
        assert response.status_code in (400, 403), (sql, response.status_code, response.text)
        error = response.json()["error"]
        assert error and "Traceback" not in error, error
        assert elapsed < 15, (sql, elapsed)
    _served_meanwhile(collector)
    assert not os.path.exists("/tmp/genaitrace-sql-attack.txt")


def test_error_text_carries_no_row_data_from_other_tenants(collector):
    response = _sql(collector, "SELECT toUInt8(SpanName) FROM otel.otel_traces WHERE toUInt8(SpanName) > 0", ACME)
    assert response.status_code == 400
    assert "globex" not in response.text and "acme-span" not in response.text, response.text


@pytest.mark.parametrize("sql", [
    "SELECT count() FROM otel.otel_traces",
    "SELECT SpanName FROM otel.otel_traces WHERE TraceId = {t:String} LIMIT 1",
    "WITH x AS (SELECT 1 AS a) SELECT a FROM x",
    "SELECT number FROM numbers(3)",
    "SELECT name FROM system.columns WHERE database = 'otel' AND table = 'otel_traces' LIMIT 3",
    "SELECT 1 UNION ALL SELECT 2",
    "SELECT 'it''s -- not a comment', 'SETTINGS readonly=0'",
])
def test_normal_queries_are_served(collector, sql):
    for token in (ADMIN, ACME):
        response = _sql(collector, sql, token, {"t": "00"})
        assert response.status_code == 200, (sql, response.text)


@pytest.mark.parametrize("parameters", [
    {"p": "') UNION ALL SELECT file('{canary}') --"},
    {"p": "x", "$p$": "SELECT file('{canary}')"},
    {"p": "x", "p) FROM file('{canary}') --": "1"},
])
def test_parameters_are_bound_by_the_engine_never_spliced_into_the_text(collector, parameters):
    parameters = {key.format(canary=collector.canary): value.format(canary=collector.canary) for key, value in parameters.items()}
    for sql in ("SELECT '%(p)s' AS a", "SELECT {p:String} AS a", "SELECT $p$ AS a"):
        response = _sql(collector, sql, ACME, parameters)
        _no_secret(response.text)
        assert response.status_code in (200, 400, 403), response.text
    _served_meanwhile(collector)


def test_no_token_or_a_wrong_token_is_refused(collector):
    assert _sql(collector, "SELECT 1", None).status_code == 401
    assert _sql(collector, "SELECT 1", "Bearer nope").status_code == 401


@pytest.mark.parametrize("sql", [
    "SELECT DISTINCT SpanName FROM otel.otel_traces",
    "SELECT DISTINCT SpanName FROM otel_traces",
    "SELECT DISTINCT SpanName FROM (SELECT * FROM otel.otel_traces)",
    "SELECT DISTINCT SpanName FROM otel.otel_traces WHERE TraceId IN (SELECT TraceId FROM otel.otel_traces)",
    "WITH t AS (SELECT SpanName FROM otel.otel_traces) SELECT DISTINCT SpanName FROM t",
    "SELECT DISTINCT tenant AS SpanName FROM otel.genai_calls",
    "SELECT DISTINCT tenant AS SpanName FROM otel.genai_daily",
    "SELECT DISTINCT tenant AS SpanName FROM otel.genai_traces(from_ts = now() - INTERVAL 1 DAY, to_ts = now() + INTERVAL 1 DAY)",
    "SELECT DISTINCT tenant AS SpanName FROM genai_subtree_costs(from_ts = now() - INTERVAL 1 DAY, to_ts = now() + INTERVAL 1 DAY)",
    "SELECT DISTINCT SpanName FROM otel.otel_traces_trace_id_ts AS l JOIN otel.otel_traces AS t ON l.TraceId = t.TraceId",
    "SELECT DISTINCT tenant AS SpanName FROM otel.genai_daily_mv",
    "SELECT DISTINCT tenant AS SpanName FROM otel.genai_calls_mv",
    "SELECT DISTINCT tenant AS SpanName FROM otel.genai_trace_totals",
    "SELECT DISTINCT tenant AS SpanName FROM otel.genai_session_traces",
    "SELECT DISTINCT SpanName FROM otel.otel_traces WHERE SpanName IN (SELECT SpanName FROM otel.otel_traces)",
    "SELECT DISTINCT arrayJoin([SpanName, ResourceAttributes['tenant.id']]) AS SpanName FROM otel.otel_traces",
])
def test_a_tenant_reads_only_its_rows(collector, sql):
    for tenant, token, other in (("acme", ACME, "globex"), ("globex", GLOBEX, "acme")):
        response = _sql(collector, sql, token)
        assert response.status_code == 200, response.text
        assert other not in response.text, (tenant, sql, response.text)
    names = {row["SpanName"] for row in _rows(collector, "SELECT DISTINCT SpanName FROM otel.otel_traces", ACME)}
    assert "acme-span" in names and "globex-span" not in names, names
    admin = {row["SpanName"] for row in _rows(collector, "SELECT DISTINCT SpanName FROM otel.otel_traces", ADMIN)}
    assert {"acme-span", "globex-span"} <= admin


def test_a_tenant_cannot_read_store_wide_system_tables(collector):
    for sql in ("SELECT sum(rows) FROM system.parts", "SELECT total_rows FROM system.tables"):
        assert _sql(collector, sql, ACME).status_code == 403
        assert _sql(collector, sql, ADMIN).status_code == 200


def _hang_up(collector, sql: str) -> None:
    body = json.dumps({"sql": sql}).encode()
    with socket.create_connection(("127.0.0.1", collector.query_port)) as sock:
        sock.sendall(b"POST /v1/query HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     + f"Authorization: Bearer {ADMIN}\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
        time.sleep(1.0)


def test_hangup_kills_the_query(collector):
    """Both query sessions busy with endless queries whose clients hang up: a normal query is
    served as soon as one is killed (the queries alone would run for max_execution_time, 10 s)."""
    sql = "SELECT count() FROM numbers_mt(1900000000) WHERE sipHash64(number, 1) = 7"  # ~10 s on 2 cores
    hangups = [threading.Thread(target=_hang_up, args=(collector, sql)) for _ in range(2)]
    for thread in hangups:
        thread.start()
    for thread in hangups:
        thread.join()
    hung_up = time.monotonic()
    while (response := _sql(collector, "SELECT 1 AS one")).status_code == 503 and time.monotonic() - hung_up < 9:
        pass  # both sessions still busy: the endpoint says so at once
    assert response.status_code == 200, response.text
    took = time.monotonic() - hung_up
    print(f"\nnormal query served {took:.2f}s after the clients hung up")
    assert took < 3, took
    assert "killed its query" in collector.log()


def _rss_mib(pid: int) -> float:
    total = 0
    for child in [pid] + _children(pid):
        try:
            with open(f"/proc/{child}/status") as status:
                total += next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
        except (OSError, StopIteration):
            pass
    return total / 1024


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


def test_hostile_queries_stay_within_memory_and_do_not_stall_inserts(collector):
    pid = collector.proc.pid
    baseline = []
    for _ in range(20):
        request, _ = make_request(5, tenant="acme")
        began = time.monotonic()
        assert _ingest(collector, request, ACME).status_code == 200
        baseline.append(time.monotonic() - began)
        time.sleep(0.05)
    before = _rss_mib(pid)
    peak = [before]
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], _rss_mib(pid))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    hostile = ["SELECT length(groupArray(number)) FROM numbers(2000000000)",
               "SELECT count() FROM (SELECT number, toString(number) AS s FROM numbers(3000000000) ORDER BY s DESC)",
               "SELECT uniqExact(number) FROM numbers_mt(3000000000)"]
    results = []
    workers = [threading.Thread(target=lambda q=q: results.append(_sql(collector, q).status_code)) for q in hostile]
    for worker in workers:
        worker.start()
    time.sleep(0.5)
    latencies = []
    # at least a few samples: on a quiet machine the limits may stop every hostile query within 0.5 s
    while (any(w.is_alive() for w in workers) and len(latencies) < 40) or len(latencies) < 5:
        request, _ = make_request(5, tenant="acme")
        began = time.monotonic()
        assert _ingest(collector, request, ACME).status_code == 200
        began_query = time.monotonic()
        response = _sql(collector, "SELECT 1 AS one")
        assert response.status_code in (200, 503), response.text  # 503: both sessions busy with hostile queries
        latencies.append((began_query - began, time.monotonic() - began_query))
        time.sleep(0.1)
    for worker in workers:
        worker.join(60)
    stop.set()
    sampler.join()
    print(f"\nRSS before {before:.0f} MiB, peak {peak[0]:.0f} MiB; answers {results}; ingest idle max {max(baseline) * 1000:.0f} ms; "
          f"ingest p_max {max(l[0] for l in latencies) * 1000:.0f} ms, small query max {max(l[1] for l in latencies) * 1000:.0f} ms")
    assert all(status in (400, 503) for status in results), results
    assert peak[0] - before < 1024, (before, peak[0])
    # On a loaded machine the idle latency itself varies: the hostile queries may add under 1 s to it.
    assert max(l[0] for l in latencies) < max(1.0, max(baseline) + 1.0)


CHECK_SCRIPT = r"""
import os, sys, threading
from chdb.cc_backend import ChdbClient
from collector.storage.readonly_sql import (ALLOWED_SYSTEM_TABLES, ALLOWED_TABLE_FUNCTIONS, QueryRefused, Scope,
                                            canonical_sql, check_ast)
fifo = sys.argv[2]
session = ChdbClient(chdb_path=sys.argv[1])
scope = Scope("otel", frozenset(ALLOWED_SYSTEM_TABLES), frozenset(ALLOWED_TABLE_FUNCTIONS))
threading.Timer(20, lambda: os._exit(3)).start()  # a read of the FIFO would block: fail, do not hang
for sql in (f"SELECT toUInt8(file('{fifo}'))", f"SELECT (SELECT file('{fifo}')) + 1", f"SELECT * FROM file('{fifo}')"):
    canonical = canonical_sql(session, sql)
    try:
        check_ast(session, canonical, None, scope)
    except QueryRefused as exc:
        print("REFUSED", exc)
os._exit(0)
"""


def test_the_check_never_evaluates_the_query(tmp_path):
    """The check parses with the engine (formatQuery, EXPLAIN AST) and never evaluates: a FIFO
    that nobody writes to would block any read of it, so a check that read file() would hang."""
    import subprocess
    import sys

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    proc = subprocess.run([sys.executable, "-c", CHECK_SCRIPT, str(tmp_path / "db"), str(fifo)], capture_output=True,
                          text=True, timeout=60, cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                          env={**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(os.path.abspath(__file__)))})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("REFUSED") == 3, proc.stdout
