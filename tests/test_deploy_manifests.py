"""deploy/: the compose files and every config they mount parse, and every host:port a config
points at is a service of that compose file exposing that port (no Docker engine needed)."""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from collector.component import Kind

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "deploy"
SINGLE = DEPLOY / "docker-compose.yaml"
SCALE = DEPLOY / "scale-out" / "docker-compose.yaml"


def _compose(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def _ports(service: dict) -> set[int]:
    ports = {int(str(p)) for p in service.get("expose", [])}
    for p in service.get("ports", []):
        ports.add(int(str(p).rsplit(":", 1)[-1].split("/")[0]))
    return ports


def _mounted(compose_path: Path, service: dict, target_suffix: str = "") -> list[Path]:
    out = []
    for v in service.get("volumes", []):
        src = v.split(":")[0]
        if src.startswith("."):
            out.append((compose_path.parent / src).resolve())
    return out


@pytest.mark.parametrize("path", [SINGLE, SCALE], ids=["single", "scale-out"])
def test_compose_structure(path):
    doc = _compose(path)
    services = doc["services"]
    for name, svc in services.items():
        assert "image" in svc or "build" in svc, name
        if "build" in svc:
            ctx = (path.parent / svc["build"]["context"]).resolve()
            assert (ctx / svc["build"]["dockerfile"]).exists(), name
        deps = svc.get("depends_on", [])
        for dep in (deps if isinstance(deps, list) else deps.keys()):
            assert dep in services, f"{name} depends on unknown service {dep}"
        for v in svc.get("volumes", []):
            src = v.split(":")[0]
            if src.startswith("."):
                assert (path.parent / src).exists(), f"{name}: {src} does not exist"
            else:
                assert src in doc["volumes"], f"{name}: named volume {src} not declared"


def _endpoints(text: str) -> set[tuple[str, int]]:
    """host:port pairs in a config (URLs or bare), ignoring 0.0.0.0 / localhost listeners."""
    pairs = set()
    for host, port in re.findall(r"(?:https?://)?\b([a-z][a-z0-9-]*(?:-[a-z0-9]+)*):(\d{2,5})\b", text):
        if host not in ("localhost", "http", "https", "tcp"):
            pairs.add((host, int(port)))
    return pairs


def _check_endpoints(compose: dict, files: list[Path]):
    services = compose["services"]
    checked = 0
    for file in files:
        text = file.read_text()
        if file.suffix == ".xml":  # <host>h</host><port>p</port> pairs, and raft hostname/port
            root = ET.fromstring(text)
            pairs = set()
            for parent in root.iter():
                host = parent.findtext("host") or parent.findtext("hostname")
                port = parent.findtext("port")
                if host and port:
                    pairs.add((host, int(port)))
        else:
            pairs = _endpoints(text)
        for host, port in pairs:
            assert host in services, f"{file.name}: {host}:{port} is not a service"
            assert port in _ports(services[host]), f"{file.name}: {host} does not expose {port}"
            checked += 1
    return checked


def test_single_node_references():
    compose = _compose(SINGLE)
    files = [DEPLOY / "collector" / "otel-collector.yaml", DEPLOY / "prometheus" / "prometheus.yml",
             DEPLOY / "grafana" / "provisioning" / "datasources" / "datasources.yaml"]
    assert _check_endpoints(compose, files) >= 5
    ds = yaml.safe_load(files[2].read_text())["datasources"]
    ch = next(d for d in ds if d["uid"] == "clickhouse")["jsonData"]
    assert ch["port"] in _ports(compose["services"][ch["host"]])


def test_scale_out_references():
    compose = _compose(SCALE)
    out = DEPLOY / "scale-out"
    files = [out / "lb" / "otelcol-lb.yaml", *sorted((out / "collector").glob("*.yaml")), out / "prometheus.yml",
             out / "grafana-datasources.yaml", out / "tempo" / "tempo-distributed.yaml", out / "clickhouse" / "cluster.xml",
             *sorted((out / "clickhouse").glob("keeper-*.xml"))]
    assert _check_endpoints(compose, files) >= 25
    ds = yaml.safe_load((out / "grafana-datasources.yaml").read_text())["datasources"]
    ch = next(d for d in ds if d["uid"] == "clickhouse")["jsonData"]
    assert ch["port"] in _ports(compose["services"][ch["host"]]) and ch["traces"]["defaultTable"] == "otel_traces_dist"
    # the load balancer routes by trace id to every collector replica
    lb = yaml.safe_load((out / "lb" / "otelcol-lb.yaml").read_text())["exporters"]["loadbalancing"]
    assert lb["routing_key"] == "traceID"
    replicas = {s for s in compose["services"] if s.startswith("collector-")}
    assert {h.split(":")[0] for h in lb["resolver"]["static"]["hostnames"]} == replicas
    # every shard/replica has its macros, and the cluster lists exactly the ClickHouse services
    cluster = ET.fromstring((out / "clickhouse" / "cluster.xml").read_text())
    hosts = {r.findtext("host") for r in cluster.iter("replica")}
    assert hosts == {s for s in compose["services"] if s.startswith("clickhouse-")}
    for host in hosts:
        macros = ET.fromstring((out / "clickhouse" / f"macros-{host.split('-', 1)[1]}.xml").read_text())
        assert macros.findtext("macros/replica") == host
    # Tempo 3.x roles: every -target the config needs exists (no ingester or compactor any more)
    targets = {c for s in compose["services"].values() for c in s.get("command", []) if str(c).startswith("-target=")}
    assert targets == {f"-target={t}" for t in ("distributor", "live-store", "block-builder", "querier", "query-frontend",
                                                "backend-scheduler", "backend-worker")}
    # one Kafka partition per live-store and block-builder, each block-builder assigned its own
    tempo = yaml.safe_load((out / "tempo" / "tempo-distributed.yaml").read_text())
    builders = {s for s in compose["services"] if s.startswith("tempo-block-builder-")}
    live_stores = {s for s in compose["services"] if s.startswith("tempo-live-store-")}
    assigned = tempo["block_builder"]["assigned_partitions"]
    assert set(assigned) == builders and sorted(p for ps in assigned.values() for p in ps) == list(range(len(builders)))
    assert len(live_stores) == len(builders)
    init = " ".join(compose["services"]["redpanda-init"]["entrypoint"])
    assert f"topic create {tempo['ingest']['kafka']['topic']} --partitions {len(builders)}" in init
    for name in builders | live_stores:  # the partition a live-store owns / a builder's key is its hostname
        assert compose["services"][name]["hostname"] == name


def _register_genai_metrics():
    import collector.registry as registry

    registry._MODULES[Kind.PROCESSOR].setdefault("genai_metrics", "processors.genai_metrics")


@pytest.mark.parametrize("config", [DEPLOY / "collector" / "otel-collector.yaml",
                                    *sorted((DEPLOY / "scale-out" / "collector").glob("*.yaml"))], ids=lambda p: p.name)
def test_collector_configs_validate(config):
    from collector.config import load_config

    _register_genai_metrics()
    # Credentials without a default must be set (the loader refuses them unset), as compose does.
    required = re.findall(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}", config.read_text())
    cfg = load_config(str(config), environ={**os.environ, **{name: f"test-{name.lower()}" for name in required}})
    pipeline = cfg.pipelines[0]
    assert [str(p) for p in pipeline.processors][-2:] == ["genai_metrics", "batch"]
    assert [str(p) for p in pipeline.processors].index("genai_cost") < [str(p) for p in pipeline.processors].index("genai_metrics")
    if "scale-out" in str(config):
        ch = cfg.exporters[next(c for c in cfg.exporters if c.type == "clickhouse")].config
        assert ch.cluster_name == "genai" and ch.table_engine.name == "ReplicatedMergeTree"


TEMPO_FILES = (DEPLOY / "tempo" / "tempo.yaml", DEPLOY / "scale-out" / "tempo" / "tempo-distributed.yaml")
TEMPO_IMAGE = "grafana/tempo:3.0.3"
# Tempo parses its config strictly (yaml.UnmarshalStrict): an unknown key stops it at start. The keys
# of Tempo v3.0.3 (cmd/tempo/app/config.go `Config`, modules/distributor/config.go `Config`), and
# what 3.0 removed (docs/sources/tempo/set-up-for-tracing/setup-tempo/upgrade.md).
TEMPO_TOP_LEVEL = {
    "target", "auth_enabled", "multitenancy_enabled", "shutdown_delay", "stream_over_http_enabled", "http_api_prefix",
    "enable_go_runtime_metrics", "span_profiling", "memory", "server", "internal_server", "distributor",
    "metrics_generator_client", "live_store_client", "querier", "query_frontend", "metrics_generator", "ingest",
    "block_builder", "storage", "overrides", "memberlist", "usage_report", "cache", "backend_scheduler",
    "backend_scheduler_client", "backend_worker", "live_store"}
TEMPO_DISTRIBUTOR = {"ring", "receivers", "override_ring_key", "log_received_spans", "log_discarded_spans",
                     "metric_received_spans", "forwarders", "usage", "kafka_config", "retry_after_on_resource_exhausted",
                     "max_attribute_bytes", "artificial_delay"}
TEMPO_3_REMOVED = {"ingester", "ingester_client", "compactor", "metrics_generator_client", "partition_ring_live_store"}


@pytest.mark.parametrize("file", TEMPO_FILES, ids=lambda p: p.name)
def test_tempo_configs_use_tempo_3_keys(file):
    doc = yaml.safe_load(file.read_text())
    assert set(doc) <= TEMPO_TOP_LEVEL - TEMPO_3_REMOVED, set(doc) - (TEMPO_TOP_LEVEL - TEMPO_3_REMOVED)
    assert set(doc["distributor"]) <= TEMPO_DISTRIBUTOR, set(doc["distributor"]) - TEMPO_DISTRIBUTOR
    assert "enabled" not in doc.get("ingest", {})  # removed in 3.0
    assert set(doc["overrides"]) == {"defaults"}  # the scoped format: legacy flat overrides stop 3.0 at start
    for compose in (SINGLE, SCALE):
        images = {s["image"] for s in _compose(compose)["services"].values() if "grafana/tempo" in s.get("image", "")}
        assert images == {TEMPO_IMAGE}, images


def test_tempo_keeps_prompts_whole():
    for file in TEMPO_FILES:
        assert yaml.safe_load(file.read_text())["distributor"]["max_attribute_bytes"] >= 65536, file


@pytest.mark.skipif(not os.environ.get("GENAITRACE_TEMPO_BIN"),
                    reason="set GENAITRACE_TEMPO_BIN to a Tempo 3.x binary (built from source) to verify with Tempo itself")
@pytest.mark.parametrize("file", TEMPO_FILES, ids=lambda p: p.name)
def test_tempo_itself_accepts_the_configs(file, tmp_path):
    import subprocess

    env = {**os.environ, "MINIO_ROOT_USER": "tempo", "MINIO_ROOT_PASSWORD": "test-password"}
    version = subprocess.run([os.environ["GENAITRACE_TEMPO_BIN"], "-version"], capture_output=True, text=True, timeout=30)
    assert version.stdout.startswith("tempo, version"), version.stdout + version.stderr
    # -config.verify: parse strictly, check, exit (0 with no warnings); -target as compose starts each role
    targets = ["all"] if file.name == "tempo.yaml" else ["distributor", "live-store", "block-builder", "querier",
                                                          "query-frontend", "backend-scheduler", "backend-worker"]
    for target in targets:
        result = subprocess.run([os.environ["GENAITRACE_TEMPO_BIN"], f"-config.file={file}", "-config.expand-env=true",
                                 f"-target={target}", "-config.verify=true"], capture_output=True, text=True, timeout=60,
                                env=env, cwd=tmp_path)
        assert result.returncode == 0, (target, result.stdout[-2000:], result.stderr[-2000:])
        assert "CONFIGURATION WARNINGS" not in result.stdout + result.stderr, (target, result.stderr[-2000:])


PROMTOOL = os.environ.get("GENAITRACE_PROMTOOL") or __import__("shutil").which("promtool")


@pytest.mark.skipif(not PROMTOOL, reason="promtool missing (apt-get install prometheus, or GENAITRACE_PROMTOOL)")
@pytest.mark.parametrize("config", [DEPLOY / "prometheus" / "prometheus.yml", DEPLOY / "scale-out" / "prometheus.yml"],
                         ids=["single", "scale-out"])
def test_prometheus_configs_pass_promtool(config, tmp_path):
    """The scrape configs and the rule files they load, as the compose files mount them."""
    import shutil
    import subprocess

    rules = tmp_path / "rules"
    shutil.copytree(DEPLOY / "prometheus" / "rules", rules)
    doc = yaml.safe_load(config.read_text())
    assert doc["rule_files"] == ["/etc/prometheus/rules/*.yml"]
    doc["rule_files"] = [str(rules / "*.yml")]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(doc))
    result = subprocess.run([PROMTOOL, "check", "config", str(tmp_path / "prometheus.yml")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(list(rules.glob('*.yml')))} rule files found" in result.stdout + result.stderr
