"""otel-collector.yaml: otelcol's format, env substitution, and errors that name file, line and key."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from collector.component import ComponentId
from collector.config import ConfigError, expand_env, load_config

REPO = Path(__file__).resolve().parent.parent

VALID = """\
extensions:
  file_storage:
    directory: /tmp/q
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: ${env:GRPC_ENDPOINT:-127.0.0.1:4317}
        max_recv_msg_size_mib: ${env:MAX_MIB}
processors:
  batch:
    timeout: 1s
exporters:
  clickhouse:
    endpoint: chdb:///tmp/x
    password: ${env:CH_PASSWORD}
    sending_queue: {storage: file_storage}
  otlp/tempo:
    endpoint: tempo:4317
    tls: {insecure: true}
service:
  extensions: [file_storage]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [clickhouse, otlp/tempo]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "otel-collector.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def error_for(tmp_path: Path, text: str) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text), environ={"MAX_MIB": "8", "CH_PASSWORD": "s3cret"})
    return caught.value


def test_shipped_config_is_valid():
    config = load_config(REPO / "otel-collector.yaml", environ={})
    assert [str(c) for c in config.pipelines[0].exporters] == ["clickhouse"]
    assert config.exporters[ComponentId("clickhouse")].config.endpoint == "chdb://./data/chdb"
    assert ComponentId("otlp", "tempo") in config.exporters


def test_env_substitution_is_typed_and_defaulted(tmp_path):
    config = load_config(write(tmp_path, VALID), environ={"MAX_MIB": "8", "CH_PASSWORD": "s3cret"})
    grpc = config.receivers[ComponentId("otlp")].config.protocols.grpc
    assert grpc.endpoint == "127.0.0.1:4317"
    assert grpc.max_recv_msg_size_mib == 8.0
    assert config.exporters[ComponentId("clickhouse")].config.password == "s3cret"
    assert config.exporters[ComponentId("otlp", "tempo")].config.endpoint == "tempo:4317"
    assert config.processors[ComponentId("batch")].config.timeout == 1.0
    assert "s3cret" not in repr(config.exporters[ComponentId("clickhouse")].config)


def test_expand_env_forms():
    env = {"A": "1", "EMPTY": ""}
    assert expand_env("x${env:A}y", env) == "x1y"
    assert expand_env("${A}", env) == "1"
    assert expand_env("${env:MISSING:-dflt}", env) == "dflt"
    assert expand_env("${env:EMPTY:-dflt}", env) == "dflt"
    assert expand_env("$${env:A}", env) == "${env:A}"


@pytest.mark.parametrize(
    "broken, line, key, says",
    [
        (VALID.replace("  clickhouse:\n    endpoint", "  clickhous:\n    endpoint"), 14, "exporters.clickhous",
         "unknown exporter type 'clickhous'; valid exporter types: clickhouse, debug, otlp, otlphttp"),
        (VALID.replace("exporters: [clickhouse, otlp/tempo]", "exporters: [clickhouse, otlp/jaeger]"), 27,
         "service.pipelines.traces.exporters[1]", "references otlp/jaeger which is not defined"),
        (VALID.replace("endpoint: chdb:///tmp/x", "endpoint: tcp://ch:9000"), 15, "exporters.clickhouse.endpoint",
         "native TCP protocol is not used"),
        (VALID.replace("endpoint: chdb:///tmp/x", "endpoint: ch.internal"), 15, "exporters.clickhouse.endpoint",
         "expected http(s)://host:8123"),
        (VALID.replace("timeout: 1s", "timeout: soon"), 12, "processors.batch.timeout", "invalid duration 'soon'"),
        (VALID.replace("timeout: 1s", "timeout: 1s\n    send_batch_size: lots"), 13, "processors.batch.send_batch_size",
         "valid integer"),
        (VALID.replace("timeout: 1s", "timout: 1s"), 12, "processors.batch.timout", "unknown key; valid keys here: send_batch_size, timeout"),
        (VALID.replace("endpoint: tempo:4317", "endpoint: tempo"), 19, "exporters.otlp/tempo.endpoint", "expected host:port"),
        (VALID.replace("sending_queue: {storage: file_storage}", "sending_queue: {storage: file_storage/x}"), 17,
         "exporters.clickhouse.sending_queue.storage", "references extension file_storage/x, which is not defined"),
        (VALID.replace("  extensions: [file_storage]\n", ""), 17, "exporters.clickhouse.sending_queue.storage",
         "not enabled in service.extensions"),
        (VALID.replace("    traces:\n", "    metrics:\n"), 24, "service.pipelines.metrics", "unsupported signal 'metrics'"),
        (VALID.replace("    traces:\n", "    logs:\n"), 27, "service.pipelines.logs.exporters[1]",
         "otlp/tempo does not handle logs; in a logs pipeline use clickhouse"),
        (VALID.replace("receivers:\n  otlp", "recievers:\n  otlp"), 4, "recievers", "unknown top-level section"),
    ],
)
def test_broken_config_names_file_line_key_and_what_is_valid(tmp_path, broken, line, key, says):
    error = error_for(tmp_path, broken)
    assert error.path.endswith("otel-collector.yaml")
    assert (error.line, error.key) == (line, key), str(error)
    assert says in str(error)
    assert str(error).startswith(f"{error.path}:{line}: {key}: ")


def test_yaml_syntax_error_has_a_line(tmp_path):
    error = error_for(tmp_path, "receivers:\n  otlp: [\n")
    assert error.line is not None and "invalid YAML" in str(error)


def test_validate_command(tmp_path):
    good = write(tmp_path, VALID)
    env = {"MAX_MIB": "8", "CH_PASSWORD": "x", "PATH": "/usr/bin:/bin"}
    ok = subprocess.run([sys.executable, "-m", "collector.cli", "validate", "-c", str(good)],
                        capture_output=True, text=True, timeout=60, env=env)
    assert ok.returncode == 0 and "valid" in ok.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text(VALID.replace("timeout: 1s", "timeout: soon"))
    out = subprocess.run([sys.executable, "-m", "collector.cli", "validate", "-c", str(bad)],
                         capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 2
    assert f"{bad}:12: processors.batch.timeout: invalid duration 'soon'" in out.stderr


def test_local_url_dials_wildcard_listeners_through_loopback():
    from collector.confighelpers import local_url

    assert local_url("0.0.0.0:4318") == "http://127.0.0.1:4318"
    assert local_url("[::]:13134", "/v1/query") == "http://127.0.0.1:13134/v1/query"
    assert local_url(":13133", "/") == "http://127.0.0.1:13133/"
    assert local_url("collector.internal:4318") == "http://collector.internal:4318"
