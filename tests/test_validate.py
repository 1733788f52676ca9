"""`genaitrace validate` catches, before `run` would, every config mistake found by trying configs
as an attacker or a tired operator would write them. Each refusal names the file, the line and
the dotted key; `validate` builds every component as `run` does, binding no port."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from collector.cli import app
from collector.component import ComponentId
from collector.config import ConfigError, load_config

REPO = Path(__file__).resolve().parent.parent

# Line numbers in the cases below refer to this text (line 1 = `extensions:`).
BASE = """\
extensions:
  file_storage:
    directory: {data}/queue
  bearertokenauth:
    token: ${env:GT_TOKEN}
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:4317
        auth: {authenticator: bearertokenauth}
      http:
        endpoint: 127.0.0.1:4318
processors:
  batch:
    timeout: 1s
exporters:
  clickhouse:
    endpoint: chdb://{data}/chdb
    password: ${env:GT_CH_PASSWORD:-}
    sending_queue: {storage: file_storage}
  otlp/tempo:
    endpoint: tempo:4317
    tls: {insecure: true}
    sending_queue: {storage: file_storage}
  debug: {}
service:
  extensions: [file_storage, bearertokenauth]
  telemetry:
    metrics: {address: 127.0.0.1:8888}
    logs: {level: info}
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [clickhouse, otlp/tempo]
"""
ENV = {"GT_TOKEN": "t0ken-1234"}


def _config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "otel-collector.yaml"
    path.write_text(textwrap.dedent(text).replace("{data}", str(tmp_path / "data")))
    return path


def _edit(old: str, new: str) -> str:
    assert old in BASE, old
    return BASE.replace(old, new, 1)


def _validate(tmp_path: Path, text: str, env: dict | None = None):
    """`genaitrace validate` in this process: (exit code, stdout, stderr)."""
    path = _config(tmp_path, text)
    import os

    saved = dict(os.environ)
    os.environ.update(ENV if env is None else env)
    try:
        result = CliRunner().invoke(app, ["validate", "-c", str(path)])
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return result.exit_code, result.stdout, result.stderr.replace("\n", " "), path


def test_base_config_is_valid(tmp_path):
    code, out, err, _ = _validate(tmp_path, BASE)
    assert code == 0, err
    assert "valid" in out and "warning" not in err


# (broken config, line, dotted key, what the message says)
CASES = {
    "duplicate key in a component": (
        _edit("    timeout: 1s\n", "    timeout: 1s\n    timeout: 5s\n"), 17, "processors.batch.timeout",
        "duplicate key: first at line 16, again at line 17"),
    "duplicate component": (
        _edit("  debug: {}\n", "  debug: {}\n  debug: {verbosity: detailed}\n"), 27, "exporters.debug",
        "duplicate key: first at line 26, again at line 27"),
    "duplicate top-level section": (
        BASE + "processors:\n  batch: {}\n", 37, "processors", "first at line 14, again at line 37"),
    "URL scheme on a gRPC exporter endpoint": (
        _edit("endpoint: tempo:4317", "endpoint: http://tempo:4317"), 23, "exporters.otlp/tempo.endpoint",
        "expected host:port without a URL scheme; write 'tempo:4317'"),
    "URL scheme on the gRPC receiver": (
        _edit("endpoint: 127.0.0.1:4317", "endpoint: https://127.0.0.1:4317"), 10, "receivers.otlp.protocols.grpc.endpoint",
        "without a URL scheme"),
    "authenticator not enabled in service.extensions": (
        _edit("extensions: [file_storage, bearertokenauth]", "extensions: [file_storage]"), 11,
        "receivers.otlp.protocols.grpc.auth.authenticator",
        "references extension bearertokenauth, which is not enabled in service.extensions"),
    "authenticator not defined": (
        _edit("auth: {authenticator: bearertokenauth}", "auth: {authenticator: bearertokenauth/acme}"), 11,
        "receivers.otlp.protocols.grpc.auth.authenticator",
        "references extension bearertokenauth/acme, which is not defined; defined: file_storage, bearertokenauth"),
    "authenticator that is not one": (
        _edit("auth: {authenticator: bearertokenauth}", "auth: {authenticator: file_storage}"), 11,
        "receivers.otlp.protocols.grpc.auth.authenticator",
        "extension file_storage is not an authenticator; authenticator types: bearertokenauth"),
    "sqlquery's authenticator not enabled": (
        _edit("  bearertokenauth:\n", "  sqlquery:\n    endpoint: 0.0.0.0:13134\n    exporter: clickhouse\n"
              "    auth: {authenticator: bearertokenauth}\n  bearertokenauth:\n")
        .replace("extensions: [file_storage, bearertokenauth]", "extensions: [file_storage, sqlquery]")
        .replace("        auth: {authenticator: bearertokenauth}\n", ""), 7, "extensions.sqlquery.auth.authenticator",
        "references extension bearertokenauth, which is not enabled in service.extensions"),
    "non-loopback sqlquery without auth": (
        _edit("  bearertokenauth:\n", "  sqlquery:\n    endpoint: 0.0.0.0:13134\n    exporter: clickhouse\n  bearertokenauth:\n")
        .replace("extensions: [file_storage, bearertokenauth]", "extensions: [file_storage, bearertokenauth, sqlquery]"),
        4, "extensions.sqlquery.auth", "endpoint 0.0.0.0:13134 is reachable from other hosts but no `auth` is set"),
    "ingest workers with the debug exporter": (
        _edit("exporters: [clickhouse, otlp/tempo]", "exporters: [clickhouse, debug]")
        .replace("service:\n", "service:\n  ingest_workers: 2\n"), 26, "exporters.debug",
        "the debug exporter has no sending queue, and service.ingest_workers > 1"),
    "unknown service.telemetry key": (
        _edit("  telemetry:\n", "  telemetry:\n    traces: {level: basic}\n"), 30, "service.telemetry.traces",
        "unknown key; valid keys here: logs, metrics"),
    "misspelt telemetry metrics key": (
        _edit("metrics: {address: 127.0.0.1:8888}", "metrics: {adress: 127.0.0.1:8888}"), 30,
        "service.telemetry.metrics.adress", "unknown key; valid keys here: address, level"),
    "bad telemetry log level": (
        _edit("logs: {level: info}", "logs: {level: verbose}"), 31, "service.telemetry.logs.level",
        "Input should be 'debug', 'info', 'warn', 'warning' or 'error'"),
    "bad telemetry metrics address": (
        _edit("metrics: {address: 127.0.0.1:8888}", "metrics: {address: http://0.0.0.0:8888}"), 30,
        "service.telemetry.metrics.address", "without a URL scheme"),
    "connectors": (
        _edit("service:\n", "connectors:\n  count: {}\nservice:\n"), 27, "connectors",
        "connectors (count, spanmetrics, ...) are not supported yet"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_refused_with_file_line_key(tmp_path, case):
    text, line, key, says = CASES[case]
    with pytest.raises(ConfigError) as caught:
        load_config(_config(tmp_path, text), environ=ENV)
    error = caught.value
    assert (error.line, error.key) == (line, key), str(error)
    assert says in str(error)
    assert str(error).startswith(f"{tmp_path / 'otel-collector.yaml'}:{line}: {key}: ")
    code, out, err, path = _validate(tmp_path, text)  # and the command says the same, exit code 2
    assert code == 2 and f"{path}:{line}: {key}: " in err and says in err and "Traceback" not in err + out


# --- unset variables: an error in a credential, naming the variable; a warning elsewhere -------

CREDENTIALS = {
    "password": (_edit("password: ${env:GT_CH_PASSWORD:-}", "password: ${env:GT_CH_PASSWORD}"), 20,
                 "exporters.clickhouse.password", "GT_CH_PASSWORD"),
    "token": (BASE, 5, "extensions.bearertokenauth.token", "GT_TOKEN"),
    "authorization header inside a longer string": (
        _edit("    tls: {insecure: true}\n", "    tls: {insecure: true}\n    headers: {authorization: \"Bearer ${env:GT_TEMPO}\"}\n"),
        25, "exporters.otlp/tempo.headers.authorization", "GT_TEMPO"),
    "x-api-key header": (
        _edit("    tls: {insecure: true}\n", "    tls: {insecure: true}\n    headers:\n      X-Api-Key: ${GT_KEY}\n"),
        26, "exporters.otlp/tempo.headers.X-Api-Key", "GT_KEY"),
    "tenant token": (
        _edit("    token: ${env:GT_TOKEN}\n", "    token: ${env:GT_TOKEN}\n    tenants:\n      acme: {token: \"${env:GT_ACME}\"}\n"),
        7, "extensions.bearertokenauth.tenants.acme.token", "GT_ACME"),
    "TLS key file": (
        _edit("    tls: {insecure: true}\n", "    tls: {key_file: \"${env:GT_TLS_DIR}/client.key\", cert_file: /x.crt}\n"),
        24, "exporters.otlp/tempo.tls.key_file", "GT_TLS_DIR"),
}


@pytest.mark.parametrize("case", list(CREDENTIALS))
def test_unset_variable_in_a_credential_is_an_error_naming_it(tmp_path, case):
    text, line, key, variable = CREDENTIALS[case]
    env = {"GT_TOKEN": "t0ken-1234"} if variable != "GT_TOKEN" else {}
    with pytest.raises(ConfigError) as caught:
        load_config(_config(tmp_path, text), environ=env)
    error = caught.value
    assert (error.line, error.key) == (line, key), str(error)
    assert f"environment variable {variable} is not set, and this is a credential" in str(error)
    code, _out, err, path = _validate(tmp_path, text, env)
    assert code == 2 and f"{path}:{line}: {key}: environment variable {variable}" in err


def test_explicit_empty_default_and_set_variables_are_fine(tmp_path):
    config = load_config(_config(tmp_path, BASE), environ={"GT_TOKEN": "abc", "GT_CH_PASSWORD": "pw"})
    assert config.exporters[ComponentId("clickhouse")].config.password == "pw"
    config = load_config(_config(tmp_path, BASE), environ={"GT_TOKEN": "abc"})  # ${env:GT_CH_PASSWORD:-}
    assert config.exporters[ComponentId("clickhouse")].config.password == ""
    assert config.warnings == []


def test_unset_variable_elsewhere_is_empty_with_a_warning(tmp_path):
    text = _edit("    directory: {data}/queue", "    directory: {data}/queue${env:GT_QUEUE_SUFFIX}")
    config = load_config(_config(tmp_path, text), environ=ENV)
    assert str(config.extensions[ComponentId("file_storage")].config.directory).endswith("/queue")
    assert config.warnings == [f"{tmp_path / 'otel-collector.yaml'}:3: extensions.file_storage.directory: "
                               "environment variable GT_QUEUE_SUFFIX is not set; using an empty string"]
    code, _out, err, _ = _validate(tmp_path, text)
    assert code == 0 and "GT_QUEUE_SUFFIX is not set" in err


# --- YAML details -------------------------------------------------------------------------------

def test_merge_keys_work_and_explicit_keys_win(tmp_path):
    text = _edit("    password: ${env:GT_CH_PASSWORD:-}\n",
                 "    password: ${env:GT_CH_PASSWORD:-}\n    retry_on_failure: &retry {initial_interval: 2s, max_interval: 9s}\n")
    text = text.replace("    tls: {insecure: true}\n", "    tls: {insecure: true}\n    retry_on_failure:\n      <<: *retry\n      max_interval: 20s\n")
    config = load_config(_config(tmp_path, text), environ=ENV)
    retry = config.exporters[ComponentId("otlp", "tempo")].config.retry_on_failure
    assert (retry.initial_interval, retry.max_interval) == (2.0, 20.0)
    # a merged key given twice explicitly is still a duplicate
    twice = text.replace("      max_interval: 20s\n", "      max_interval: 20s\n      max_interval: 21s\n")
    with pytest.raises(ConfigError, match="max_interval: duplicate key: first at line 28, again at line 29"):
        load_config(_config(tmp_path, twice), environ=ENV)


def test_alias_bomb_is_refused_quickly(tmp_path):
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
        f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n" for i in range(8))
    with pytest.raises(ConfigError, match="expands to more than"):
        load_config(_config(tmp_path, bomb), environ={})


# --- validate builds what run builds -------------------------------------------------------------

def test_validate_builds_components_and_reports_factory_failures(tmp_path):
    """A setting every model accepts but the component refuses when built (a price file that is
    not there) fails `validate` as it would fail `run`, located at the component's key."""
    text = _edit("  batch:\n", f"  genai_cost:\n    price_file: {tmp_path}/missing-prices.json\n  batch:\n").replace(
        "processors: [batch]", "processors: [genai_cost, batch]")
    load_config(_config(tmp_path, text), environ=ENV)  # the typed config alone accepts it
    code, out, err, path = _validate(tmp_path, text)
    assert code == 2, out
    assert f"{path}:15: processors.genai_cost: " in err and "missing-prices.json" in err
    assert "Traceback" not in err + out


def test_validate_binds_no_port(tmp_path):
    """The receiver's ports are taken by someone else: `validate` still passes (it binds nothing)
    while `run` refuses to start."""
    with socket.socket() as grpc_sock, socket.socket() as http_sock:
        grpc_sock.bind(("127.0.0.1", 0))
        http_sock.bind(("127.0.0.1", 0))
        grpc_sock.listen()
        http_sock.listen()
        text = BASE.replace("127.0.0.1:4317", f"127.0.0.1:{grpc_sock.getsockname()[1]}").replace(
            "127.0.0.1:4318", f"127.0.0.1:{http_sock.getsockname()[1]}")
        code, out, err, _ = _validate(tmp_path, text)
        assert code == 0, err


def test_validate_command_as_a_process(tmp_path):
    """The installed entry point: exit 2 and one located line, no traceback."""
    path = _config(tmp_path, _edit("endpoint: tempo:4317", "endpoint: http://tempo:4317"))
    out = subprocess.run([sys.executable, "-m", "collector.cli", "validate", "-c", str(path)],
                         capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin", **ENV})
    assert out.returncode == 2
    assert f"{path}:23: exporters.otlp/tempo.endpoint: invalid endpoint 'http://tempo:4317'" in out.stderr.replace("\n", " ")
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize("config", [REPO / "otel-collector.yaml", *sorted((REPO / "deploy").rglob("collector*.yaml")),
                                    *sorted((REPO / "deploy").rglob("otel-collector*.yaml"))], ids=lambda p: str(p.relative_to(REPO)))
def test_shipped_configs_validate(tmp_path, config):
    import os

    # Credentials without a default must be set (validate refuses them unset), as compose does.
    required = re.findall(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}", config.read_text())
    env = {**os.environ, "GENAITRACE_DATA": str(tmp_path), **{name: f"test-{name.lower()}" for name in required}}
    out = subprocess.run([sys.executable, "-m", "collector.cli", "validate", "-c", str(config)], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr


def test_build_starts_no_thread_and_binds_nothing(tmp_path):
    """What `validate` runs: every component of the default pipeline constructed, none started."""
    import threading

    from collector.service import Service

    text = _edit("  batch:\n", "  memory_limiter: {limit_mib: 4096, spike_limit_mib: 512}\n  redaction: {}\n"
                 "  genai_normalizer: {}\n  genai_cost: {}\n  genai_metrics: {}\n  batch:\n").replace(
        "processors: [batch]", "processors: [memory_limiter, redaction, genai_normalizer, genai_cost, genai_metrics, batch]")
    config = load_config(_config(tmp_path, text), environ=ENV)
    before = set(threading.enumerate())
    service = Service(config)
    service.build()
    assert set(threading.enumerate()) == before
    assert len(service.processors) == 6 and set(service.receivers) == {ComponentId("otlp")}
    assert not (tmp_path / "data").exists()  # no queue file, no store opened


def test_validate_reads_token_files(tmp_path):
    """A token file that is not there (or empty) stops `validate`, as it would stop `run`."""
    text = _edit("    token: ${env:GT_TOKEN}\n", f"    filename: {tmp_path}/absent.token\n")
    code, out, err, path = _validate(tmp_path, text)
    assert code == 2, out
    assert f"{path}:4: extensions.bearertokenauth: bearertokenauth: cannot read token file {tmp_path}/absent.token" in err
    (tmp_path / "empty.token").write_text("\n")
    code, _out, err, _ = _validate(tmp_path, text.replace("absent.token", "empty.token"))
    assert code == 2 and "the token for token is empty" in err


LISTENER_CASES = {
    "two receivers' protocols on one port": (
        _edit("endpoint: 127.0.0.1:4318", "endpoint: 127.0.0.1:4317"), 13, "receivers.otlp.protocols.http.endpoint",
        "port 4317 is also where receivers.otlp.protocols.grpc.endpoint listens (127.0.0.1:4317)"),
    "the metrics port under a wildcard receiver": (
        _edit("endpoint: 127.0.0.1:4318", "endpoint: 0.0.0.0:8888"), 30, "service.telemetry.metrics.address",
        "port 8888 is also where receivers.otlp.protocols.http.endpoint listens (0.0.0.0:8888)"),
    "an extension listed twice": (
        _edit("extensions: [file_storage, bearertokenauth]", "extensions: [file_storage, bearertokenauth, file_storage]"),
        28, "service.extensions[2]", "file_storage is listed twice (first at service.extensions[0])"),
    "a processor listed twice in a pipeline": (
        _edit("processors: [batch]", "processors: [batch, batch]"), 35, "service.pipelines.traces.processors[1]",
        "batch is listed twice"),
}


@pytest.mark.parametrize("case", list(LISTENER_CASES))
def test_conflicts_run_would_hit_are_refused(tmp_path, case):
    text, line, key, says = LISTENER_CASES[case]
    with pytest.raises(ConfigError) as caught:
        load_config(_config(tmp_path, text), environ=ENV)
    assert (caught.value.line, caught.value.key) == (line, key), str(caught.value)
    assert says in str(caught.value)


def test_same_port_on_different_hosts_is_fine(tmp_path):
    text = _edit("endpoint: 127.0.0.1:4318", "endpoint: 127.0.0.2:4317")
    assert load_config(_config(tmp_path, text), environ=ENV).receivers


def test_errors_never_quote_a_credential(tmp_path):
    """An error about settings that hold a token quotes the settings, without the token."""
    text = _edit("    token: ${env:GT_TOKEN}\n", "    token: ${env:GT_TOKEN}\n    tenants:\n"
                 "      acme: {token: acme-s3cret-value, filename: /run/acme.token}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(_config(tmp_path, text), environ=ENV)
    assert caught.value.key == "extensions.bearertokenauth.tenants.acme" and "set exactly one of" in str(caught.value)
    assert "acme-s3cret-value" not in str(caught.value) and "'token': '<hidden>'" in str(caught.value)
    code, out, err, _ = _validate(tmp_path, text)
    assert code == 2 and "acme-s3cret-value" not in err + out


def test_run_reports_a_factory_failure_like_validate(tmp_path):
    text = _edit("  batch:\n", f"  genai_cost:\n    price_file: {tmp_path}/missing-prices.json\n  batch:\n").replace(
        "processors: [batch]", "processors: [genai_cost, batch]")
    path = _config(tmp_path, text)
    out = subprocess.run([sys.executable, "-m", "collector.cli", "run", "-c", str(path)], capture_output=True, text=True,
                         timeout=60, env={"PATH": "/usr/bin:/bin", **ENV})
    assert out.returncode == 2
    assert f"{path}:15: processors.genai_cost: " in out.stderr.replace("\n", " ") and "Traceback" not in out.stderr
