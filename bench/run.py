"""One command for the whole benchmark table: our collector and its peers, same run, same machine.

    .venv/bin/python -m bench.run                 # everything (peers installed on first use), ~15 min
    .venv/bin/python -m bench.run --only ours --duration 10
    .venv/bin/python -m bench.run --soak 1800     # + a 30-minute memory run at 20k spans/s offered

What it does, per target x protocol (gRPC, HTTP), each on a fresh process and data directory:
  1. starts the target on free loopback ports;
  2. runs a load generator process (pre-encoded OTLP protobuf, closed loop, `--concurrency` requests
     in flight) for `--duration` seconds;
  3. waits until everything acknowledged is stored (ours: `SELECT count()` through the sqlquery
     endpoint; Phoenix: `count(*)` of its SQLite `spans` table; rotel: acknowledged = forwarded to a
     second rotel with the blackhole exporter), bounded by `--drain-timeout`;
  4. reports spans/s (stored / time to stored), ack latency p50/p99, peak RSS and CPU seconds per
     10k spans of the target's process tree (sampled from /proc), and ratios to the other targets.

Targets: `ours` (OTLP -> genai_normalizer -> genai_cost -> batch -> clickhouse on embedded chdb,
durable disk queue), `phoenix` (arize-phoenix from PyPI, its own OTLP ingest into its default
SQLite store), `rotel` (rotel from PyPI: Rust collector, OTLP in -> OTLP out to a blackhole rotel).
`otelcol` (the OpenTelemetry Collector built from interop/otelcol by `./run.sh test`: OTLP in ->
batch -> OTLP/gRPC out to a second otelcol whose debug exporter discards).
Peers are installed into bench/.peers/<name> (gitignored) with uv or pip. Results go to
bench/results/e2e-<timestamp>.json and bench/results/latest.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from collector.memory import process_tree
from tests.support.harness import free_port

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
PEERS = BENCH / ".peers"
RESULTS = BENCH / "results"
PYTHON = sys.executable
CLK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")

PEER_PACKAGES = {"phoenix": "arize-phoenix", "rotel": "rotel"}


def wait_port(port: int, timeout: float, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


# --- peers ---------------------------------------------------------------------------------------


def ensure_peer(name: str) -> Path:
    """A venv under bench/.peers/<name> with the peer's PyPI package; returns the venv."""
    venv = PEERS / name
    marker = venv / ".installed"
    if marker.exists():
        return venv
    PEERS.mkdir(parents=True, exist_ok=True)
    print(f"[bench] installing {PEER_PACKAGES[name]} into {venv} ...", flush=True)
    uv = shutil.which("uv")
    if uv:
        subprocess.run([uv, "venv", "-q", "--allow-existing", "--python", "3.11", str(venv)], check=True)
        subprocess.run([uv, "pip", "install", "-q", PEER_PACKAGES[name]], check=True,
                       env={**os.environ, "VIRTUAL_ENV": str(venv)})
    else:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", PEER_PACKAGES[name]], check=True)
    marker.write_text(PEER_PACKAGES[name] + "\n")
    return venv


def ensure_peer_tools() -> Path:
    """py-spy, for bench.profile, in bench/.peers/tools."""
    PEER_PACKAGES.setdefault("tools", "py-spy")
    return ensure_peer("tools") / "bin" / "py-spy"


def write_workload(spans_per_request: int, count: int) -> tuple[Path, int, int]:
    """Pre-encoded requests in bench/results/payloads.bin; returns (path, spans, llm spans)."""
    from bench.loadgen import write_payloads
    from tests.support.workload import make_request, span_count

    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / "payloads.bin"
    requests = [make_request(spans_per_request, seed=i) for i in range(count)]
    write_payloads(str(path), [(r.SerializeToString(), span_count(r)) for r in requests])
    total = sum(span_count(r) for r in requests)
    llm = sum(1 for r in requests for rs in r.resource_spans for ss in rs.scope_spans for s in ss.spans
              if any(kv.key.startswith(("llm.model_name", "gen_ai.request.model")) for kv in s.attributes))
    return path, total, llm


def rotel_binary(venv: Path) -> Path:
    found = list(venv.glob("lib/python*/site-packages/rotel/rotel-agent"))
    if not found:
        raise FileNotFoundError(f"rotel-agent binary not found under {venv}")
    return found[0]


# --- process sampling ----------------------------------------------------------------------------


def _cpu_rss(pid: int) -> tuple[float, int]:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        with open(f"/proc/{pid}/statm") as fh:
            rss_pages = int(fh.read().split()[1])
        return (int(fields[11]) + int(fields[12])) / CLK, rss_pages * PAGE
    except (OSError, IndexError, ValueError):
        return 0.0, 0


class Sampler:
    """CPU seconds and RSS of process trees, every `interval` seconds, in a thread."""

    def __init__(self, roots: list[int], interval: float = 0.5):
        self.roots, self.interval = roots, interval
        self.samples: list[tuple[float, float, int]] = []  # (t, cpu_s, rss_bytes)
        self._cpu_seen: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def snapshot(self) -> tuple[float, int]:
        rss = 0
        for root in self.roots:
            for pid in process_tree(root):
                cpu, r = _cpu_rss(pid)
                if cpu:
                    self._cpu_seen[pid] = max(self._cpu_seen.get(pid, 0.0), cpu)
                rss += r
        return sum(self._cpu_seen.values()), rss

    def _run(self) -> None:
        while not self._stop.is_set():
            cpu, rss = self.snapshot()
            self.samples.append((time.monotonic(), cpu, rss))
            self._stop.wait(self.interval)

    def start(self) -> "Sampler":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        cpu, rss = self.snapshot()
        self.samples.append((time.monotonic(), cpu, rss))

    def cpu_between(self, t0: float, t1: float) -> float:
        before = [s for s in self.samples if s[0] <= t0] or self.samples[:1]
        after = [s for s in self.samples if s[0] >= t1] or self.samples[-1:]
        return after[0][1] - before[-1][1]

    def peak_rss(self) -> int:
        return max((s[2] for s in self.samples), default=0)


# --- targets -------------------------------------------------------------------------------------


class Ours:
    name = "ours"
    description = "genaitrace: OTLP -> genai_normalizer -> genai_cost -> batch -> clickhouse (chdb, disk queue)"
    ingest_workers: int | None = None  # None: --ingest-workers

    def __init__(self, workdir: Path, processors: str | None = None):
        sys.path.insert(0, str(REPO))
        from collector import registry
        from collector.component import Kind
        from tests.support.harness import CollectorProcess

        available = registry.types(Kind.PROCESSOR)
        if processors is None:
            chain = [p for p in ("genai_normalizer", "genai_cost") if p in available] + ["batch"]
            self.missing = [p for p in ("genai_normalizer", "genai_cost") if p not in available]
        else:
            chain, self.missing = [p.strip() for p in processors.split(",") if p.strip()], []
        self.processors = chain
        # the harness's config template already configures these
        templated = ("batch", "memory_limiter", "genai_normalizer", "genai_cost")
        extra = "".join(f"  {p}: {{}}\n" for p in chain if p not in templated)
        self.proc = CollectorProcess(workdir, processors=", ".join(chain), extra_processors_yaml=extra,
                                     max_body_mib=64, exporters_yaml=_our_exporter(),
                                     ingest_workers=self.ingest_workers or INGEST_WORKERS)
        # the harness template's batch settings are test settings; use the product defaults
        text = self.proc.config_path.read_text().replace("send_batch_size: 8192\n    timeout: 50ms",
                                                         "send_batch_size: 8192\n    timeout: 200ms")
        self.proc.config_path.write_text(text)

    def start(self) -> None:
        self.proc.start(timeout=120)
        self.grpc = self.proc.grpc_endpoint
        self.http = f"127.0.0.1:{self.proc.http_port}"
        self.pids = [self.proc.proc.pid]

    def stored(self) -> int:
        return int(self.proc.query("SELECT count() AS n FROM otel.otel_traces")[0]["n"])

    def batches(self) -> dict:
        """Where requests waited, from the collector's own metrics: batches the batch processor sent
        full (send_batch_size reached) or on its timer, and the spans they carried."""
        import httpx
        from prometheus_client.parser import text_string_to_metric_families

        wanted = {"otelcol_processor_batch_batch_size_trigger_send": "full",
                  "otelcol_processor_batch_timeout_trigger_send": "on_timer",
                  "otelcol_receiver_accepted_spans": "spans"}
        counts = dict.fromkeys(wanted.values(), 0)
        for family in text_string_to_metric_families(httpx.get(self.proc.metrics_url, timeout=10).text):
            if family.name in wanted:
                counts[wanted[family.name]] += int(sum(s.value for s in family.samples if s.name.endswith("_total")))
        sent = counts["full"] + counts["on_timer"]
        counts["spans_per_batch"] = round(counts["spans"] / sent) if sent else 0
        return counts

    def stop(self) -> None:
        self.proc.stop(timeout=120)


_OUR_EXPORTER = """
  clickhouse:
    endpoint: chdb://{data}/chdb
    database: otel
    ttl: 0s
    sending_queue:
      storage: file_storage
    retry_on_failure:
      initial_interval: 200ms
      max_interval: 1s
"""
# --convert-workers: the clickhouse exporter's `convert_workers` (None = the exporter's default)
CONVERT_WORKERS: int | None = None
# --ingest-workers: our collector's `service.ingest_workers`
INGEST_WORKERS = 1


def _our_exporter() -> str:
    return _OUR_EXPORTER + (f"    convert_workers: {CONVERT_WORKERS}\n" if CONVERT_WORKERS is not None else "")


class Phoenix:
    name = "phoenix"
    description = "Arize Phoenix (PyPI arize-phoenix): its OTLP ingest into its default store (SQLite)"

    def __init__(self, workdir: Path):
        self.venv = ensure_peer("phoenix")
        self.workdir = workdir
        self.http_port, self.grpc_port = free_port(), free_port()

    def start(self) -> None:
        env = {**os.environ, "PHOENIX_WORKING_DIR": str(self.workdir), "PHOENIX_PORT": str(self.http_port),
               "PHOENIX_GRPC_PORT": str(self.grpc_port), "PHOENIX_HOST": "127.0.0.1",
               "PHOENIX_TELEMETRY_ENABLED": "false", "PHOENIX_ENABLE_AUTH": "false"}
        env.pop("VIRTUAL_ENV", None)
        self.log = open(self.workdir / "phoenix.log", "ab")
        self.process = subprocess.Popen([str(self.venv / "bin" / "phoenix"), "serve"], cwd=self.workdir, env=env,
                                        stdout=self.log, stderr=subprocess.STDOUT)
        wait_port(self.http_port, 180, self.process)
        wait_port(self.grpc_port, 60, self.process)
        self.grpc = f"127.0.0.1:{self.grpc_port}"
        self.http = f"127.0.0.1:{self.http_port}"
        self.pids = [self.process.pid]

    def stored(self) -> int:
        db = self.workdir / "phoenix.db"
        if not db.exists():
            return 0
        try:
            with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
                return int(conn.execute("SELECT count(*) FROM spans").fetchone()[0])
        except sqlite3.Error:
            return 0

    def stop(self) -> None:
        _terminate(self.process)


class Rotel:
    name = "rotel"
    description = "rotel (PyPI rotel, Rust): OTLP in -> batch -> OTLP/gRPC out to a second rotel (blackhole)"

    def __init__(self, workdir: Path):
        self.binary = rotel_binary(ensure_peer("rotel"))
        self.workdir = workdir

    def _spawn(self, tag: str, args: list[str]) -> subprocess.Popen:
        log = open(self.workdir / f"{tag}.log", "ab")
        return subprocess.Popen([str(self.binary), "start", "--pid-file", str(self.workdir / f"{tag}.pid"),
                                 "--log-file", str(self.workdir / f"{tag}.log"), *args],
                                cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT)

    def start(self) -> None:
        sink_grpc, sink_http = free_port(), free_port()
        self.sink = self._spawn("sink", ["--otlp-grpc-endpoint", f"127.0.0.1:{sink_grpc}",
                                         "--otlp-http-endpoint", f"127.0.0.1:{sink_http}",
                                         "--otlp-grpc-max-recv-msg-size-mib", "64", "--exporter", "blackhole"])
        wait_port(sink_grpc, 30, self.sink)
        grpc_port, http_port = free_port(), free_port()
        self.process = self._spawn("rotel", ["--otlp-grpc-endpoint", f"127.0.0.1:{grpc_port}",
                                             "--otlp-http-endpoint", f"127.0.0.1:{http_port}",
                                             "--otlp-grpc-max-recv-msg-size-mib", "64",
                                             "--exporter", "otlp", "--otlp-exporter-endpoint",
                                             f"http://127.0.0.1:{sink_grpc}",
                                             "--otlp-exporter-protocol", "grpc"])
        wait_port(grpc_port, 30, self.process)
        wait_port(http_port, 30, self.process)
        self.grpc, self.http = f"127.0.0.1:{grpc_port}", f"127.0.0.1:{http_port}"
        self.pids = [self.process.pid, self.sink.pid]

    def stored(self) -> None:
        return None  # the blackhole keeps no count: acknowledged spans are the figure

    def stop(self) -> None:
        _terminate(self.process)
        _terminate(self.sink)


OTELCOL_BINARY = REPO / ".cache" / "interop" / "bin" / "otelcol-genaitrace"
# Receivers take the load generator's requests whole (up to 64 MiB, as rotel's), and nothing but
# batching stands between receiving and forwarding.
OTELCOL_FORWARDER = """
receivers:
  otlp:
    protocols:
      grpc: {{endpoint: "127.0.0.1:{grpc}", max_recv_msg_size_mib: 64}}
      http: {{endpoint: "127.0.0.1:{http}", max_request_body_size: 67108864}}
processors:
  batch: {{}}
exporters:
  {exporter}
service:
  telemetry:
    metrics: {{level: none}}
  pipelines:
    traces: {{receivers: [otlp], processors: [{processors}], exporters: [{exporter_id}]}}
"""


class Otelcol:
    name = "otelcol"
    description = "otelcol v0.161.0 (interop/otelcol): OTLP in -> batch -> OTLP/gRPC out to a second otelcol (debug exporter, discards)"

    def __init__(self, workdir: Path):
        if not OTELCOL_BINARY.exists():
            raise FileNotFoundError(f"{OTELCOL_BINARY} missing: ./run.sh test builds it")
        self.workdir = workdir

    def _spawn(self, tag: str, **fields) -> tuple[subprocess.Popen, int, int]:
        grpc_port, http_port = free_port(), free_port()
        config = self.workdir / f"{tag}.yaml"
        config.write_text(OTELCOL_FORWARDER.format(grpc=grpc_port, http=http_port, **fields))
        log = open(self.workdir / f"{tag}.log", "ab")
        process = subprocess.Popen([str(OTELCOL_BINARY), f"--config={config}"], cwd=self.workdir,
                                   stdout=log, stderr=subprocess.STDOUT)
        wait_port(grpc_port, 60, process)
        wait_port(http_port, 60, process)
        return process, grpc_port, http_port

    def start(self) -> None:
        self.sink, sink_grpc, _ = self._spawn("sink", processors="", exporter="debug: {verbosity: basic}",
                                              exporter_id="debug")
        exporter = (f"otlp: {{endpoint: \"127.0.0.1:{sink_grpc}\", tls: {{insecure: true}}, compression: none,"
                    " sending_queue: {enabled: true, queue_size: 10000}}")
        self.process, grpc_port, http_port = self._spawn("otelcol", processors="batch", exporter=exporter,
                                                         exporter_id="otlp")
        self.grpc, self.http = f"127.0.0.1:{grpc_port}", f"127.0.0.1:{http_port}"
        self.pids = [self.process.pid, self.sink.pid]

    def stored(self) -> None:
        return None  # the sink keeps no count: acknowledged spans are the figure

    def stop(self) -> None:
        _terminate(self.process)
        _terminate(self.sink)


def _terminate(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class OursTwoIngestWorkers(Ours):
    name = "ours-2w"
    description = Ours.description + ", service.ingest_workers: 2"
    ingest_workers = 2


TARGETS = {"ours": Ours, "ours-2w": OursTwoIngestWorkers, "phoenix": Phoenix, "rotel": Rotel, "otelcol": Otelcol}


# --- one scenario --------------------------------------------------------------------------------


def run_scenario(target_cls, protocol: str, payload_file: Path, spans_per_payload: float, args) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix=f"bench-{target_cls.name}-{protocol}-"))
    result: dict = {"target": target_cls.name, "protocol": protocol}
    target = target_cls(workdir)
    result["description"] = target.description
    if getattr(target, "missing", None):
        result["note"] = f"processors not registered yet, ran without: {', '.join(target.missing)}"
    t_start = time.monotonic()
    target.start()
    result["start_s"] = round(time.monotonic() - t_start, 2)
    sampler = Sampler(target.pids).start()
    try:
        time.sleep(1.0)
        idle_cpu, idle_rss = sampler.snapshot()
        result["idle_rss_mb"] = round(idle_rss / 1e6, 1)
        endpoint = target.grpc if protocol == "grpc" else target.http
        t0 = time.monotonic()
        gen = subprocess.run(
            [PYTHON, "-m", "bench.loadgen", "--protocol", protocol, "--target", endpoint,
             "--payloads", str(payload_file), "--duration", str(args.duration),
             "--concurrency", str(args.concurrency), "--max-requests", str(args.max_requests)],
            cwd=REPO, capture_output=True, text=True, timeout=args.duration + 120,
        )
        t_sent = time.monotonic()
        if gen.returncode != 0:
            raise RuntimeError(f"loadgen failed: {gen.stderr[-2000:]}")
        load = json.loads(gen.stdout.strip().splitlines()[-1])
        result.update({k: load[k] for k in ("requests", "spans_acked", "errors", "ack_p50_ms", "ack_p99_ms", "ack_max_ms")})
        result["loadgen_cpu_s"] = round(load["cpu_s"], 2)
        acked = load["spans_acked"]
        stored, t_done = target.stored(), time.monotonic()
        if stored is not None:
            deadline = time.monotonic() + args.drain_timeout
            while stored < acked and time.monotonic() < deadline:
                time.sleep(0.5)
                stored, t_done = target.stored(), time.monotonic()
            result["spans_stored"] = stored
            result["drained"] = stored >= acked
        else:
            t_done = t_sent
        elapsed = t_done - t0
        result["elapsed_s"] = round(elapsed, 2)
        result["ack_spans_per_s"] = round(acked / (t_sent - t0), 1)
        counted = min(acked, stored) if stored is not None else acked
        result["spans_per_s"] = round(counted / elapsed, 1) if elapsed > 0 else 0.0
        time.sleep(0.6)
        cpu = sampler.cpu_between(t0, t_done)
        result["cpu_s"] = round(cpu, 2)
        result["cpu_s_per_10k_spans"] = round(cpu / max(counted, 1) * 10_000, 3)
        result["cpu_util_cores"] = round(cpu / elapsed, 2) if elapsed > 0 else 0.0
        if hasattr(target, "batches"):
            try:
                result["batches"] = target.batches()
            except Exception as exc:  # noqa: BLE001 - a missing figure is not a failed scenario
                result["batches"] = {"error": f"{type(exc).__name__}: {exc}"}
    finally:
        sampler.stop()
        result["peak_rss_mb"] = round(sampler.peak_rss() / 1e6, 1)
        target.stop()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            result["workdir"] = str(workdir)
    return result


def _memory_parts(target) -> dict[str, float]:
    """The collector's own memory breakdown (`genaitrace_process_memory_bytes{part}`) and its
    sending queue's bytes, in MB, from its metrics endpoint; {} if the scrape fails."""
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    parts: dict[str, float] = {}
    try:
        text = httpx.get(target.proc.metrics_url, timeout=10).text
    except Exception:  # noqa: BLE001 - a figure missing from a soak is not worth ending it
        return parts
    for family in text_string_to_metric_families(text):
        if family.name == "genaitrace_process_memory_bytes":
            for sample in family.samples:
                parts[sample.labels["part"]] = round(sample.value / 1e6, 1)
        elif family.name == "otelcol_exporter_queue_bytes":
            parts["sending_queue"] = round(sum(sample.value for sample in family.samples) / 1e6, 1)
    return parts


def _minute_means(series: list[tuple[int, float]]) -> list[float]:
    by_minute: dict[int, list[float]] = {}
    for t, value in series:
        by_minute.setdefault(t // 60, []).append(value)
    return [round(sum(v) / len(v), 1) for _, v in sorted(by_minute.items())]


def soak(payload_file: Path, args) -> dict:
    """Our collector under a steady offered load (`--soak-rate` spans/s, half gRPC, half HTTP) for
    `args.soak` seconds: RSS of the process tree and the collector's memory breakdown every
    10 s, the stored rate, and the drift of memory after the warm-up."""
    workdir = Path(tempfile.mkdtemp(prefix="bench-soak-"))
    target = Ours(workdir)
    target.start()
    sampler = Sampler(target.pids, interval=1.0).start()
    try:
        half = max(1, args.concurrency // 2)
        rate = ["--rate", str(args.soak_rate / 2)] if args.soak_rate else []
        gens = [subprocess.Popen([PYTHON, "-m", "bench.loadgen", "--protocol", proto, "--target", ep,
                                  "--payloads", str(payload_file), "--duration", str(args.soak),
                                  "--concurrency", str(half), "--max-requests", str(10_000_000), *rate],
                                 cwd=REPO, stdout=subprocess.PIPE, text=True)
                for proto, ep in (("grpc", target.grpc), ("http", target.http))]
        t0 = time.monotonic()
        rss_series, parts_series = [], []
        while any(g.poll() is None for g in gens) and time.monotonic() < t0 + args.soak + 120:
            time.sleep(10)
            at = round(time.monotonic() - t0)
            rss_series.append((at, round(sampler.snapshot()[1] / 1e6, 1)))
            parts_series.append((at, _memory_parts(target)))
        loads = [json.loads(g.communicate(timeout=120)[0].strip().splitlines()[-1]) for g in gens]
        acked = sum(l["spans_acked"] for l in loads)
        loaded_for = time.monotonic() - t0
        deadline = time.monotonic() + args.drain_timeout
        stored = target.stored()
        while stored < acked and time.monotonic() < deadline:
            time.sleep(1)
            stored = target.stored()
        minutes = _minute_means(rss_series)
        warm = args.soak_warmup // 60
        settled, last = minutes[warm:warm + 5], minutes[-5:]
        drift = (sum(last) / len(last)) / (sum(settled) / len(settled)) - 1 if settled and last else 0.0
        part_names = sorted({name for _, parts in parts_series for name in parts})
        return {"duration_s": args.soak, "offered_spans_per_s": args.soak_rate, "spans_acked": acked,
                "spans_stored": stored, "spans_per_s": round(min(acked, stored) / loaded_for, 1),
                "ack_p99_ms": [round(l["ack_p99_ms"]) for l in loads],
                "rss_mb_every_10s": rss_series, "rss_mb_per_minute": minutes,
                "drift_after_warmup": round(drift, 4), "warmup_s": args.soak_warmup,
                "parts_mb_per_minute": {name: _minute_means([(t, p[name]) for t, p in parts_series if name in p])
                                        for name in part_names},
                "peak_rss_mb": round(sampler.peak_rss() / 1e6, 1),
                "rss_first_minute_mb": max((r for t, r in rss_series if t <= 60), default=0),
                "rss_last_minute_mb": max((r for t, r in rss_series if t >= args.soak - 60), default=0)}
    finally:
        sampler.stop()
        target.stop()
        shutil.rmtree(workdir, ignore_errors=True)


# --- table ---------------------------------------------------------------------------------------


def markdown(results: list[dict], meta: dict) -> str:
    lines = [f"Run {meta['when']} on {meta['cpus']} CPUs; {meta['duration']} s per scenario, "
             f"{meta['concurrency']} requests in flight, {meta['spans_per_request']} spans/request "
             f"({meta['llm_share']} LLM spans), loopback.", ""]
    lines.append("| target | protocol | spans/s end to end | vs rotel | vs phoenix | spans/s acked | ack p50 ms | "
                 "ack p99 ms | peak RSS MB | CPU s / 10k spans | cores used | errors |")
    lines.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    by = {(r["target"], r["protocol"]): r for r in results if "spans_per_s" in r}
    for r in results:
        if "spans_per_s" not in r:
            lines.append(f"| {r['target']} | {r['protocol']} | failed: {r.get('error', '?')[:80]} ||||||||||")
            continue
        ratios = []
        for peer in ("rotel", "phoenix"):
            other = by.get((peer, r["protocol"]))
            ratios.append(f"{r['spans_per_s'] / other['spans_per_s']:.2f}x" if other and other["spans_per_s"] else "-")
        errors = ", ".join(f"{k}:{v}" for k, v in r.get("errors", {}).items()) or "0"
        if r.get("drained") is False:
            errors += f" (only {r['spans_stored']:,} of {r['spans_acked']:,} stored by the drain timeout)"
        lines.append(f"| {r['target']} | {r['protocol']} | {r['spans_per_s']:,.0f} | {ratios[0]} | {ratios[1]} | "
                     f"{r['ack_spans_per_s']:,.0f} | "
                     f"{r['ack_p50_ms']:.0f} | {r['ack_p99_ms']:.0f} | {r['peak_rss_mb']:.0f} | "
                     f"{r['cpu_s_per_10k_spans']:.2f} | {r['cpu_util_cores']:.2f} | {errors} |")
    notes = [r for r in results if r.get("note")]
    for r in notes:
        lines.append(f"\nNote ({r['target']}/{r['protocol']}): {r['note']}")
    waits = [r for r in results if "full" in r.get("batches", {})]
    if waits:
        lines.append("\nBatches (collector metrics): " + "; ".join(
            f"{r['target']}/{r['protocol']} {r['batches']['full']} full, {r['batches']['on_timer']} on the timer, "
            f"{r['batches']['spans_per_batch']:,} spans each" for r in waits))
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default="ours,ours-2w,phoenix,rotel,otelcol", help="comma-separated targets")
    ap.add_argument("--protocols", default="grpc,http")
    ap.add_argument("--duration", type=float, default=20.0)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--max-requests", type=int, default=100_000)
    ap.add_argument("--spans-per-request", type=int, default=512)
    ap.add_argument("--payloads", type=int, default=16, help="distinct pre-encoded requests")
    ap.add_argument("--drain-timeout", type=float, default=120.0)
    ap.add_argument("--soak", type=float, default=0.0, help="seconds of soak for our collector (memory flatness)")
    ap.add_argument("--soak-rate", type=float, default=20_000.0, help="spans/s offered during the soak (0: closed loop)")
    ap.add_argument("--soak-warmup", type=int, default=300, help="seconds of the soak before memory should be flat")
    ap.add_argument("--no-extras", action="store_true",
                    help="skip bench.micro (each stage alone) and bench.app_overhead (instrumentation cost)")
    ap.add_argument("--keep", action="store_true", help="keep the targets' work directories")
    ap.add_argument("--table", help="only re-render the markdown table of a results JSON file")
    ap.add_argument("--convert-workers", type=int, help="our clickhouse exporter's convert_workers (A/B runs)")
    ap.add_argument("--ingest-workers", type=int, default=1, help="our collector's service.ingest_workers")
    args = ap.parse_args(argv)
    global CONVERT_WORKERS, INGEST_WORKERS
    CONVERT_WORKERS = args.convert_workers
    INGEST_WORKERS = args.ingest_workers
    if args.table:
        saved = json.loads(Path(args.table).read_text())
        print(markdown(saved["results"], saved["meta"]))
        return

    payload_file, total, llm = write_workload(args.spans_per_request, args.payloads)
    requests = range(args.payloads)
    meta = {"when": time.strftime("%Y-%m-%d %H:%M:%S"), "cpus": os.cpu_count(), "duration": args.duration,
            "concurrency": args.concurrency, "spans_per_request": round(total / len(requests)),
            "llm_share": f"{llm / total:.0%}", "command": " ".join([".venv/bin/python -m bench.run", *(argv or sys.argv[1:])])}

    results = []
    for name in [t.strip() for t in args.only.split(",") if t.strip()]:
        for protocol in [p.strip() for p in args.protocols.split(",") if p.strip()]:
            print(f"[bench] {name} / {protocol} ...", flush=True)
            try:
                r = run_scenario(TARGETS[name], protocol, payload_file, total / len(requests), args)
            except Exception as exc:  # noqa: BLE001 - a failed peer is a row, not the end of the run
                r = {"target": name, "protocol": protocol, "error": f"{type(exc).__name__}: {exc}"}
            print("[bench]  ", json.dumps(r), flush=True)
            results.append(r)
    out = {"meta": meta, "results": results}
    if args.soak:
        print(f"[bench] soak {args.soak:.0f}s ...", flush=True)
        out["soak"] = soak(payload_file, args)
        print("[bench]  ", json.dumps(out["soak"]), flush=True)
    if not args.no_extras:
        from bench import app_overhead, micro

        print("[bench] each stage alone (bench.micro) ...", flush=True)
        out["micro"] = micro.run()
        print("[bench] app-side overhead (bench.app_overhead) ...", flush=True)
        out["app_overhead"] = app_overhead.run()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (RESULTS / f"e2e-{stamp}.json").write_text(json.dumps(out, indent=2))
    table = markdown(results, meta)
    if "soak" in out:
        s = out["soak"]
        table += (f"\nSoak ({s['duration_s']:.0f} s, gRPC+HTTP): {s['spans_per_s']:,.0f} spans/s, RSS first minute "
                  f"{s['rss_first_minute_mb']} MB, last minute {s['rss_last_minute_mb']} MB, peak {s['peak_rss_mb']} MB")
        table += (f"; offered {s['offered_spans_per_s']:,.0f} spans/s; RSS drift after the {s['warmup_s']} s warm-up "
                  f"{s['drift_after_warmup']:+.1%} (target <= 5 %)\n\nPer-minute means, MB (parts overlap: "
                  f"collector.memory.breakdown):\n\n| minute | RSS | "
                  + " | ".join(s["parts_mb_per_minute"]) + " |\n|---:|---:|" + "---:|" * len(s["parts_mb_per_minute"]) + "\n")
        for minute, rss in enumerate(s["rss_mb_per_minute"]):
            cells = [str(values[minute]) if minute < len(values) else "" for values in s["parts_mb_per_minute"].values()]
            table += f"| {minute + 1} | {rss} | " + " | ".join(cells) + " |\n"
    if "micro" in out:
        table += "\nEach stage alone (one core, CPU time, best of 7):\n\n| stage | spans/s | us/span |\n|---|---:|---:|\n"
        for stage, seconds in out["micro"]["seconds"].items():
            n = out["micro"]["spans"]
            table += f"| {stage} | {n / seconds:,.0f} | {seconds * 1e6 / n:.1f} |\n"
    if "app_overhead" in out:
        a = out["app_overhead"]
        table += (f"\nApp side: bare SDK span {a['bare_span_us']} us; litellm call {a['plain_call_us']} us plain, "
                  f"{a['instrumented_call_us']} us instrumented: overhead {a['overhead_per_call_us']} us per call = "
                  f"{a['overhead_vs_bare_span']}x the bare span (target < 1.2x). Start-up: {a['startup_plain_s']} s "
                  f"plain, {a['startup_instrumented_s']} s with init() (delta {a['startup_delta_s']} s, target <= 1 s).\n")
    (RESULTS / "latest.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
