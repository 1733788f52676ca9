"""Application-side instrumentation: semconv rewriting, one span per LLM call, content capture,
the distro under opentelemetry-instrument, and a collector that is down."""

from __future__ import annotations

import json
import os
import threading
import time

import pytest

from support.instrumentation_fixtures import SPANS_DUMP, child_env, fake_llm, last_json, otlp_capture, run_python  # noqa: F401


# ----------------------------------------------------------------------------- pure unit tests
def test_package_import_is_light():
    r = run_python("""
        import sys, instrumentation, semconv.genai_mapping
        heavy = [m for m in ("crewai", "litellm", "traceloop", "openai", "opentelemetry.sdk") if m in sys.modules]
        print(heavy)
    """)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


def _proc(capture="NO_CONTENT"):
    from instrumentation.processor import GenAISpanProcessor

    return GenAISpanProcessor(capture=capture)


OI_ATTRS = {
    "openinference.span.kind": "LLM", "llm.model_name": "openai/gpt-4o-mini", "llm.provider": "openai",
    "llm.token_count.prompt": 120, "llm.token_count.completion": 30,
    "llm.token_count.prompt_details.cache_read": 100, "llm.token_count.completion_details.reasoning": 8,
    "input.value": "secret prompt", "llm.input_messages.0.message.role": "user",
    "llm.input_messages.0.message.content": "secret prompt",
    "llm.output_messages.0.message.role": "assistant", "llm.output_messages.0.message.content": "secret answer",
    "llm.output_messages.0.message.finish_reason": "stop",
}


def test_openinference_span_becomes_semconv_without_content():
    name, attrs = _proc().rewrite("completion", dict(OI_ATTRS), ("Researcher", "a-1", "research_crew"))
    assert attrs["gen_ai.workflow.name"] == "research_crew"
    assert name == "chat gpt-4o-mini"
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.provider.name"] == "openai"
    assert attrs["gen_ai.request.model"] == "gpt-4o-mini"
    assert attrs["gen_ai.usage.input_tokens"] == 120 and attrs["gen_ai.usage.output_tokens"] == 30
    assert attrs["gen_ai.usage.cache_read.input_tokens"] == 100
    assert attrs["gen_ai.usage.reasoning.output_tokens"] == 8
    assert attrs["gen_ai.agent.name"] == "Researcher" and attrs["gen_ai.agent.id"] == "a-1"
    assert "gen_ai.system" not in attrs
    assert not [k for k in attrs if k.startswith(("llm.", "input.", "output.", "gen_ai.input", "gen_ai.output"))]
    assert "secret" not in json.dumps(attrs)


def test_span_only_puts_spec_json_messages_on_the_span():
    _, attrs = _proc("SPAN_ONLY").rewrite("completion", dict(OI_ATTRS))
    inp = json.loads(attrs["gen_ai.input.messages"])
    out = json.loads(attrs["gen_ai.output.messages"])
    assert inp == [{"role": "user", "parts": [{"type": "text", "content": "secret prompt"}]}]
    assert out == [{"role": "assistant", "parts": [{"type": "text", "content": "secret answer"}],
                    "finish_reason": "stop"}]
    assert not [k for k in attrs if k.startswith("llm.input_messages")]


def test_crewai_dialect_is_renamed():
    p = _proc()
    name, attrs = p.rewrite("crewai.workflow", {"gen_ai.provider.name": "crewai", "gen_ai.operation.name": "invoke_agent",
                                                "crewai.crew.name": "research_crew"},
                            scope="opentelemetry.instrumentation.crewai")
    assert name == "invoke_workflow research_crew" and attrs["gen_ai.operation.name"] == "invoke_workflow"
    assert "gen_ai.provider.name" not in attrs
    name, attrs = p.rewrite("Researcher.agent", {"gen_ai.provider.name": "crewai", "gen_ai.operation.name": "invoke_agent",
                                                 "gen_ai.agent.name": "Researcher", "gen_ai.usage.input_tokens": 500},
                            scope="opentelemetry.instrumentation.crewai")
    assert name == "invoke_agent Researcher"
    assert "gen_ai.usage.input_tokens" not in attrs  # rolled-up tokens would double count


def test_traceloop_decorator_spans_are_renamed():
    p = _proc()
    assert p.rewrite("Analyst.agent", {"traceloop.span.kind": "agent", "traceloop.entity.name": "Analyst"})[0] \
        == "invoke_agent Analyst"
    name, attrs = p.rewrite("search.tool", {"traceloop.span.kind": "tool", "traceloop.entity.name": "search",
                                            "gen_ai.tool.name": "search", "traceloop.entity.input": "secret"},
                            ("Analyst", None))
    assert name == "execute_tool search" and attrs["gen_ai.agent.name"] == "Analyst"
    assert "traceloop.entity.input" not in attrs
    assert p.rewrite("pipeline.workflow", {"traceloop.span.kind": "workflow", "traceloop.entity.name": "pipeline"})[0] \
        == "invoke_workflow pipeline"


def test_non_genai_spans_are_untouched():
    attrs = {"http.method": "GET", "tenant.id": "acme"}
    assert _proc().rewrite("GET /x", dict(attrs)) == ("GET /x", attrs)


def test_baggage_carrier_roundtrip():
    from opentelemetry import baggage, context
    from opentelemetry.sdk.trace import TracerProvider

    from instrumentation.baggage import attach_carrier, attributes, current_attribution, inject

    tracer = TracerProvider().get_tracer("t")
    with attributes(tenant_id="acme", session_id="s-1", feature="f"):
        with tracer.start_as_current_span("producer") as span:
            carrier = inject({})
            trace_id = span.get_span_context().trace_id
    assert carrier["traceparent"].split("-")[1] == format(trace_id, "032x")
    assert "tenant.id=acme" in carrier["baggage"]
    assert current_attribution() == {}
    with attach_carrier({k.upper(): v for k, v in carrier.items()}):
        assert current_attribution() == {"tenant.id": "acme", "session.id": "s-1", "feature.name": "f"}
        with tracer.start_as_current_span("consumer") as consumer:
            assert consumer.get_span_context().trace_id == trace_id
    assert baggage.get_all(context.get_current()) == {}


# ----------------------------------------------------------------------------- LiteLLM, in a child process
LITELLM_SCRIPT = SPANS_DUMP + """
import sys, time, json
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
import instrumentation
exp = InMemorySpanExporter()
t0 = time.perf_counter()
instrumentation.init("unit", exporter=exp, batch=False)
init_s = time.perf_counter() - t0
import litellm
base = sys.argv[1]
msgs = [{"role": "system", "content": "You are terse. " * 20}, {"role": "user", "content": "the secret question"}]
with instrumentation.attributes(tenant_id="acme", session_id="sess-9"):
    litellm.completion(model="openai/gpt-4o-mini", api_base=base, api_key="x", messages=msgs)
    chunks = list(litellm.completion(model="openai/o3-mini", api_base=base, api_key="x", messages=msgs, stream=True))
    try:
        litellm.completion(model="openai/gpt-4o-mini", api_base=base, api_key="x", num_retries=0, max_retries=0,
                           messages=[{"role": "user", "content": "[fail:500]"}])
    except Exception as exc:
        print("failed as asked:", type(exc).__name__)
    import asyncio
    asyncio.run(litellm.acompletion(model="openai/gpt-4o-mini", api_base=base, api_key="x", messages=msgs))
    # the provider SDK directly (the route CrewAI's native providers take): traceloop's openai span
    import openai
    openai.OpenAI(base_url=base, api_key="x").chat.completions.create(model="gpt-4o-mini", messages=msgs)
print("INIT_SECONDS", init_s)
_dump(exp)
"""


def _run_litellm(fake, capture=None):
    env = child_env(**({"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": capture} if capture else {}))
    r = run_python(LITELLM_SCRIPT.replace("sys.argv[1]", repr(fake.base_url)), env=env, timeout=240)
    assert r.returncode == 0, r.stderr[-4000:]
    return last_json(r.stdout), r.stdout


def test_litellm_one_semconv_span_per_call(fake_llm):
    spans, stdout = _run_litellm(fake_llm)
    llm = [s for s in spans if s["attributes"].get("gen_ai.operation.name") == "chat"]
    # 5 calls: one span each, whatever instrumentors see them underneath
    assert len(llm) == 5 == len(fake_llm.requests), [s["name"] for s in spans]
    assert all(s["name"] in ("chat gpt-4o-mini", "chat o3-mini") for s in llm)
    assert all(s["kind"] == "CLIENT" for s in llm)
    assert all(s["parent_span_id"] is None for s in llm)  # no LLM span nested under another
    for s in llm:
        a = s["attributes"]
        assert a["gen_ai.provider.name"] == "openai"
        assert a["tenant.id"] == "acme" and a["gen_ai.conversation.id"] == "sess-9"
        assert "gen_ai.system" not in a
        assert "secret" not in json.dumps(a)  # NO_CONTENT by default
    ok = [s for s in llm if s["status"] != "ERROR"]
    for s in ok:
        a = s["attributes"]
        assert a["gen_ai.usage.input_tokens"] > 0 and a["gen_ai.usage.output_tokens"] > 0
        assert "gen_ai.usage.cache_read.input_tokens" in a
        assert "gen_ai.response.finish_reasons" in a
        assert a["gen_ai.response.model"]
    assert sum(1 for s in llm if s["status"] == "ERROR") == 1
    (stream,) = [s for s in llm if s["attributes"].get("gen_ai.request.stream") is True]
    sa = stream["attributes"]
    assert sa["gen_ai.usage.reasoning.output_tokens"] == 32
    assert sa["gen_ai.usage.output_tokens"] >= 32
    assert sa["gen_ai.response.time_to_first_chunk"] > 0
    # usage was requested from the provider although the caller did not ask
    streamed = [r for r in fake_llm.requests if r["body"].get("stream")]
    assert streamed and streamed[0]["body"]["stream_options"] == {"include_usage": True}
    # the cache: the second call with the same system prompt reports cached tokens
    assert any(s["attributes"].get("gen_ai.usage.cache_read.input_tokens", 0) > 0 for s in ok)
    init_s = float(stdout.split("INIT_SECONDS", 1)[1].split()[0])
    assert init_s < 3.0, f"init() took {init_s:.2f}s"


def test_litellm_span_only_content(fake_llm):
    spans, _ = _run_litellm(fake_llm, capture="SPAN_ONLY")
    llm = [s for s in spans if s["attributes"].get("gen_ai.operation.name") == "chat" and s["status"] != "ERROR"]
    assert llm
    for s in llm:
        msgs = json.loads(s["attributes"]["gen_ai.input.messages"])
        assert msgs[0]["role"] == "system" and msgs[-1]["parts"][0]["content"] == "the secret question"
        out = json.loads(s["attributes"]["gen_ai.output.messages"])
        assert out[0]["role"] == "assistant"


# ----------------------------------------------------------------------------- opentelemetry-instrument + distro
ENTRY_POINTS = """\
[opentelemetry_distro]
genaitrace = instrumentation.distro:GenAIDistro

[opentelemetry_configurator]
genaitrace = instrumentation.distro:GenAIConfigurator

[opentelemetry_pre_instrument]
genaitrace = instrumentation.distro:pre_instrument

[opentelemetry_post_instrument]
genaitrace = instrumentation.distro:post_instrument
"""

AUTO_SCRIPT = """
import sys, json
# exactly what opentelemetry-instrument's sitecustomize does
from opentelemetry.instrumentation.auto_instrumentation import initialize
initialize(swallow_exceptions=False)
import litellm
from opentelemetry import trace
base = sys.argv[1]
import instrumentation
with instrumentation.attributes(tenant_id="globex"):
    litellm.completion(model="openai/gpt-4o-mini", api_base=base, api_key="x",
                       messages=[{"role": "user", "content": "hello"}])
    list(litellm.completion(model="openai/gpt-4o-mini", api_base=base, api_key="x",
                            messages=[{"role": "user", "content": "hello"}], stream=True))
trace.get_tracer_provider().force_flush(10000)
print(json.dumps({"ok": True}))
"""


@pytest.mark.parametrize("distro", ["genaitrace", "distro"])
def test_opentelemetry_instrument_one_span_per_call(tmp_path, fake_llm, otlp_capture, distro):
    """All installed instrumentors load (as under opentelemetry-instrument); still one span per call.

    `distro` = the stock opentelemetry-distro picked instead of ours: the pre/post hooks keep the guarantee.
    """
    dist = tmp_path / "site" / "genaitrace_test-0.0.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: genaitrace-test\nVersion: 0.0.0\n")
    (dist / "entry_points.txt").write_text(ENTRY_POINTS)
    env = child_env(OTEL_PYTHON_DISTRO=distro, OTEL_PYTHON_CONFIGURATOR=("genaitrace" if distro == "genaitrace"
                                                                         else "configurator"),
                    OTEL_EXPORTER_OTLP_ENDPOINT=otlp_capture.endpoint, OTEL_SERVICE_NAME="auto-app",
                    OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf", OTEL_TRACES_EXPORTER="otlp",
                    OTEL_METRICS_EXPORTER="none", OTEL_LOGS_EXPORTER="none")
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path / "site"), env["PYTHONPATH"]])
    r = run_python(AUTO_SCRIPT.replace("sys.argv[1]", repr(fake_llm.base_url)), env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-4000:]
    spans = otlp_capture.wait_for(lambda s: len([x for x in s if x["name"].startswith("chat")]) >= 2, 20)
    llm = [s for s in spans if s["attributes"].get("gen_ai.operation.name") in ("chat", "text_completion")
           or s["attributes"].get("openinference.span.kind") == "LLM" or "litellm" in s["scope"]]
    assert len(fake_llm.requests) == 2
    assert len(llm) == 2, [(s["name"], s["scope"]) for s in spans]
    for s in llm:
        assert s["name"] == "chat gpt-4o-mini" and s["service"] == "auto-app"
        assert s["attributes"]["tenant.id"] == "globex"
        assert s["attributes"]["gen_ai.usage.input_tokens"] > 0


# ----------------------------------------------------------------------------- the collector is down
DOWN_SCRIPT = """
import json, resource, sys, time
import instrumentation
t0 = time.perf_counter()
instrumentation.init("down-app")
from opentelemetry import trace
tracer = trace.get_tracer("load")
def burst(n):
    for i in range(n):
        with tracer.start_as_current_span("work", attributes={"i": i, "payload": "x" * 200}):
            pass
burst(5000)
rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t1 = time.perf_counter()
burst(40000)
per_span_us = (time.perf_counter() - t1) / 40000 * 1e6
rss2 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
import litellm
r = litellm.completion(model="openai/gpt-4o-mini", api_base=sys.argv[1], api_key="x",
                       messages=[{"role": "user", "content": "still works"}])
import asyncio  # a sync call must not leave a loop behind (finalized at exit in no fixed order)
loop_left = getattr(asyncio.get_event_loop_policy()._local, "_loop", None) is not None
print(json.dumps({"rss_growth_kb": rss2 - rss1, "per_span_us": per_span_us, "loop_left": loop_left,
                  "answer": r.choices[0].message.content, "done_at": time.time()}))
"""


# "slow" times the app's exit against a collector that answers late (one export timeout, no retry
# storm): beside other tests a loaded machine stretches it, so it runs in the alone part.
@pytest.mark.parametrize("mode", ["down", pytest.param("slow", marks=pytest.mark.alone)])
def test_collector_down_or_slow_never_hurts_the_app(tmp_path, fake_llm, mode):
    from instrumentation.otlp_capture import OTLPCapture

    if mode == "down":
        import socket

        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        endpoint = f"http://127.0.0.1:{s.getsockname()[1]}"
        s.close()  # nothing listens there
        cap = None
    else:
        cap = OTLPCapture(delay_s=3.0).start()  # answers every export 3 s late
        endpoint = cap.endpoint
    try:
        env = child_env(OTEL_EXPORTER_OTLP_ENDPOINT=endpoint, OTEL_EXPORTER_OTLP_TIMEOUT="2",
                        OTEL_BSP_MAX_QUEUE_SIZE="2048")
        t0 = time.monotonic()
        r = run_python(DOWN_SCRIPT.replace("sys.argv[1]", repr(fake_llm.base_url)), env=env, timeout=180)
        elapsed = time.monotonic() - t0
        exited_at = time.time()
    finally:
        if cap:
            cap.stop()
    assert r.returncode == 0, r.stderr[-3000:]
    assert "Traceback" not in r.stderr
    out = last_json(r.stdout)
    assert "Final Answer" in out["answer"]
    assert not out["loop_left"], "LiteLLM's timing report left an unclosed event loop in the main thread"
    assert out["rss_growth_kb"] < 30_000, out  # 40k spans, queue bounded at 2048
    assert out["per_span_us"] < 2000, out
    assert elapsed < 120
    # exit flushes at most one export timeout (2 s here) before giving up: no exporter retry storm
    assert exited_at - out["done_at"] < 8, exited_at - out["done_at"]


# ----------------------------------------------------------------------------- the stream proxy's protocol
class _Chunk:
    def __init__(self, text=None, finish=None, usage=None, model="gpt-4o-mini"):
        from types import SimpleNamespace

        self.choices = [SimpleNamespace(delta=SimpleNamespace(content=text), finish_reason=finish)]
        if usage is not None and text is None and finish is None:
            self.choices = [SimpleNamespace(delta=SimpleNamespace(content=None), finish_reason=None)]
        self.usage, self.model, self.id = usage, model, "c-1"


class _FakeStream:
    """Like LiteLLM's CustomStreamWrapper: sync and async iterator, context managers, attributes."""

    def __init__(self, chunks):
        self._chunks, self.response_uptil_now, self.entered = list(chunks), "", []

    def __iter__(self):
        return self

    def __next__(self):
        if not self._chunks:
            raise StopIteration
        return self._chunks.pop(0)

    def __aiter__(self):
        return self

    async def __anext__(self):
        if not self._chunks:
            raise StopAsyncIteration
        return self._chunks.pop(0)

    def __enter__(self):
        self.entered.append("sync")
        return self

    def __exit__(self, *exc):
        return False

    async def __aenter__(self):
        self.entered.append("async")
        return self

    async def __aexit__(self, *exc):
        return False


def _proxied(injected):
    from opentelemetry.sdk.trace import TracerProvider

    from instrumentation._patches import StreamProxy, _StreamRecorder

    span = TracerProvider().get_tracer("t").start_span("s")
    chunks = [_Chunk("a"), _Chunk("b", finish="stop"), _Chunk(usage={"prompt_tokens": 3, "completion_tokens": 2})]
    return StreamProxy(_FakeStream(chunks), _StreamRecorder(span, 0.0, injected)), span


@pytest.mark.parametrize("injected", [True, False])
def test_stream_proxy_sync_and_async_same_chunks(injected):
    import asyncio

    proxy, span = _proxied(injected)
    with proxy as entered:
        assert entered is proxy  # the app keeps the instrumented stream
        got = [c for c in entered]
    assert len(got) == (2 if injected else 3)  # the usage chunk we asked for is not the app's
    span.end()
    assert span.attributes["gen_ai.usage.input_tokens"] == 3 and span.attributes["gen_ai.usage.output_tokens"] == 2
    assert list(span.attributes["gen_ai.response.finish_reasons"]) == ["stop"]

    async def consume():
        proxy2, _ = _proxied(injected)
        async with proxy2 as entered2:
            assert entered2 is proxy2
            return [c async for c in entered2], proxy2

    got2, proxy2 = asyncio.run(consume())
    assert len(got2) == len(got)
    assert proxy2.response_uptil_now == "" and proxy2.entered == ["async"]  # attributes pass through
    assert isinstance(proxy2, _FakeStream)


def test_instrumentation_errors_are_caught_logged_once_and_counted(caplog):
    from instrumentation.safety import failures, guard

    @guard("test.place")
    def broken():
        raise ValueError("boom")

    with caplog.at_level("WARNING", logger="instrumentation"):
        assert broken() is None and broken() is None
    assert failures()["test.place"] == 2
    assert len([r for r in caplog.records if "test.place" in r.getMessage()]) == 1


def test_error_type_is_fully_qualified():
    from instrumentation._patches import error_type

    class ProviderDown(Exception):
        pass

    assert error_type(ValueError("x")) == "ValueError"
    assert error_type(ProviderDown()).endswith("test_error_type_is_fully_qualified.<locals>.ProviderDown")
    assert error_type(ProviderDown()).startswith(ProviderDown.__module__ + ".")


def test_distro_defers_instrumentors_to_their_library_import():
    """An instrumentor is loaded when its library is imported, not at start-up: the module named by its
    `instruments` requirement, found without importing anything."""
    r = run_python("""
        import sys
        from importlib.metadata import entry_points
        from instrumentation.distro import instrumented_modules
        eps = {ep.value: ep for ep in entry_points(group="opentelemetry_instrumentor")}
        print(instrumented_modules(eps["opentelemetry.instrumentation.chromadb:ChromaInstrumentor"]),
              instrumented_modules(eps["opentelemetry.instrumentation.asyncio:AsyncioInstrumentor"]),
              "chromadb" in sys.modules, "lancedb" in sys.modules)
    """)
    assert r.returncode == 0, r.stderr
    chromadb_clients = "['chromadb.api.async_fastapi', 'chromadb.api.fastapi', 'chromadb.api.rust', 'chromadb.api.segment']"
    assert r.stdout.strip().split("] ") == [chromadb_clients[:-1], "['asyncio'", "False False"]


def _under_opentelemetry_instrument(prog, service: str, cwd=None, **env):
    """`opentelemetry-instrument python prog` with the README's variables, exporting nowhere."""
    import subprocess
    import sys
    from pathlib import Path

    env = child_env(OTEL_SERVICE_NAME=service, OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9",
                    OTEL_PYTHON_DISTRO="genaitrace", OTEL_PYTHON_CONFIGURATOR="genaitrace", **env)
    return subprocess.run([str(Path(sys.executable).parent / "opentelemetry-instrument"), sys.executable, str(prog)],
                          env=env, capture_output=True, text=True, timeout=300, cwd=cwd)


def test_chromadb_instrumentor_waits_for_the_first_client(tmp_path):
    """`import chromadb` (crewai does it at start-up) imports nothing more under opentelemetry-instrument;
    the instrumentor is loaded when the app makes its first client, before any collection exists."""
    prog = tmp_path / "chroma.py"
    prog.write_text(
        "import sys, json\nimport chromadb\n"
        "at_import = sorted(m for m in ('chromadb.api.segment', 'opentelemetry.instrumentation.chromadb') if m in sys.modules)\n"
        "client = chromadb.EphemeralClient()\n"
        "print(json.dumps([at_import, hasattr(chromadb.Collection.add, '__wrapped__')]))\n")
    r = _under_opentelemetry_instrument(prog, "chroma", cwd=tmp_path, ANONYMIZED_TELEMETRY="False")
    assert r.returncode == 0, r.stderr[-3000:]
    assert json.loads(r.stdout.strip().splitlines()[-1]) == [[], True]


def test_httpx_instrumentation_does_not_import_httpx2_until_the_app_does(tmp_path):
    """The httpx instrumentor's module imports httpx2 when installed (~50 ms at every start of an app
    on httpx 0.x): it is imported without it. An app that imports httpx2 later (the Anthropic SDK 2.x)
    gets its httpx2 clients traced all the same, and a thread importing httpx2 meanwhile is never
    refused."""
    prog = tmp_path / "clients.py"
    prog.write_text(
        "import sys, json\nimport httpx\n"
        "at_start = ['httpx2' in sys.modules, 'opentelemetry.instrumentation.httpx' in sys.modules]\n"
        "import httpx2\n"
        "instrumentor = sys.modules['opentelemetry.instrumentation.httpx'].HTTPX2ClientInstrumentor\n"
        "print(json.dumps(at_start + [instrumentor._module is httpx2, instrumentor().is_instrumented_by_opentelemetry,\n"
        "                             hasattr(httpx2.HTTPTransport.handle_request, '__wrapped__'),\n"
        "                             hasattr(httpx.HTTPTransport.handle_request, '__wrapped__')]))\n")
    r = _under_opentelemetry_instrument(prog, "clients")
    assert r.returncode == 0, r.stderr[-3000:]
    assert json.loads(r.stdout.strip().splitlines()[-1]) == [False, True, True, True, True, True]
    from instrumentation.bootstrap import _NotForThisThread

    blocker, seen = _NotForThisThread("httpx2"), []
    thread = threading.Thread(target=lambda: seen.append(blocker.find_spec("httpx2")))
    thread.start()
    thread.join()
    assert seen == [None]  # another thread: not refused
    with pytest.raises(ModuleNotFoundError):
        blocker.find_spec("httpx2")


def test_empty_program_under_opentelemetry_instrument_imports_no_library(tmp_path):
    prog = tmp_path / "empty.py"
    # nor what the instrumentation itself would only need later: the OTLP exporter and its transports
    # (first export), the logs and metrics SDKs, multiprocessing (first process started)
    prog.write_text("import sys, json\nprint(json.dumps(sorted(m for m in ('crewai', 'litellm', 'lancedb', 'chromadb', "
                    "'pandas', 'openai', 'mcp', 'requests', 'boto3', 'grpc', 'google.protobuf', 'urllib3', "
                    "'opentelemetry.exporter.otlp.proto.http', 'opentelemetry.exporter.otlp.proto.grpc', "
                    "'opentelemetry.sdk._logs', 'opentelemetry.sdk.metrics', 'opentelemetry.sdk._configuration', "
                    "'multiprocessing', 'concurrent.futures.process', 'pydantic') if m in sys.modules)))\n")
    r = _under_opentelemetry_instrument(prog, "empty")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout.strip().splitlines()[-1]) == []


def test_crewai_under_opentelemetry_instrument_does_not_load_traceloops_crewai_instrumentor(tmp_path):
    """Every wrapper traceloop's CrewAIInstrumentor installs is replaced by the project's: it is not
    imported at all (start-up), and when something imports it later (Traceloop.init()), it stays off."""
    prog = tmp_path / "crew.py"
    prog.write_text(
        "import sys, json\nimport crewai.crew\n"
        "loaded = 'opentelemetry.instrumentation.crewai' in sys.modules\n"
        "kickoff = crewai.crew.Crew.__dict__['kickoff']\n"
        "from opentelemetry.instrumentation.crewai import CrewAIInstrumentor\n"
        "CrewAIInstrumentor().instrument()\n"
        "after = crewai.crew.Crew.__dict__['kickoff']\n"
        "print(json.dumps([loaded, kickoff._self_wrapper.__name__, after is kickoff]))\n")
    r = _under_opentelemetry_instrument(prog, "crew")
    assert r.returncode == 0, r.stderr[-3000:]
    assert json.loads(r.stdout.strip().splitlines()[-1]) == [False, "_wrap_kickoff", True]


RESPONSES_MEMORY_APP = """
import os, openai
from opentelemetry.instrumentation.openai.v1 import responses_wrappers
client = openai.OpenAI(base_url=os.environ["FAKE_LLM_URL"], api_key="sk-fake", max_retries=0)
for i in range(160):
    client.responses.create(model="gpt-4o-mini", input=f"call {i}")
print("KEPT", len(responses_wrappers.responses))
"""


def test_responses_api_calls_do_not_grow_memory(tmp_path, fake_llm, otlp_capture):
    """traceloop's Responses wrapper keeps every call's data in a module-level dict; under the
    distro it keeps only the most recent ones (160 calls here)."""
    import subprocess
    import sys
    from pathlib import Path

    from instrumentation._patches import RECENT_RESPONSES_KEPT

    app = tmp_path / "responses_app.py"
    app.write_text(RESPONSES_MEMORY_APP)
    env = child_env(OTEL_SERVICE_NAME="responses", OTEL_EXPORTER_OTLP_ENDPOINT=otlp_capture.endpoint,
                    OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf", OTEL_PYTHON_DISTRO="genaitrace",
                    OTEL_PYTHON_CONFIGURATOR="genaitrace", FAKE_LLM_URL=fake_llm.base_url)
    out = subprocess.run([str(Path(sys.executable).parent / "opentelemetry-instrument"), sys.executable, str(app)],
                         env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    kept = int(out.stdout.split("KEPT")[1])
    assert 0 < kept <= RECENT_RESPONSES_KEPT, out.stdout


def test_a_failed_genai_span_is_described_by_its_error_type(genai_provider):
    """A provider SDK's own span may set only the ERROR code (the Anthropic SDK 2.x on a 429): the
    GenAI semconv asks for a description; with capture off it is the error type, never the
    provider's message (which can quote the prompt)."""
    from opentelemetry import trace

    provider, exporter = genai_provider
    tracer = provider.get_tracer("sdk")
    chat = {"gen_ai.operation.name": "chat", "gen_ai.request.model": "claude-haiku-4-5"}
    with tracer.start_as_current_span("chat code-only", attributes={**chat, "error.type": "RateLimitError"}) as span:
        span.set_status(trace.Status(trace.StatusCode.ERROR))
    with tracer.start_as_current_span("chat quoted", attributes={**chat, "error.type": "BadRequestError"}) as span:
        span.set_status(trace.Status(trace.StatusCode.ERROR, "bad prompt: 'zqcanary secret'"))
    with tracer.start_as_current_span("chat fine", attributes=chat):
        pass
    code_only, quoted, fine = exporter.get_finished_spans()  # names are the gate's: `chat {model}`
    assert code_only.status.description == "RateLimitError"
    assert quoted.status.description == "BadRequestError"
    assert fine.status.status_code == trace.StatusCode.UNSET
