"""Realistic GenAI traces for the SQL, dashboard and budget tests, with the ground truth.

Multi-agent CrewAI-style traces as the instrumentation emits them after the collector's
`genai_cost` processor: `invoke_workflow {crew}` -> `task {task}` -> `invoke_agent {agent}` ->
inference spans (`chat {model}`, sometimes a LiteLLM wrapper marked `delegated` around the provider
span), `execute_tool {tool}`, and now and then a nested reviewer agent. Three tenants, three flows,
four providers, streaming with time to first chunk, errors with `error.type`, unpriced calls
(a provider that the price book does not know).

    store, truth = shared_store()     # one chdb path per process, loaded once
    truth.calls                       # inference spans that carry usage (no delegated wrappers)

Only one chdb path can be open per process, so every test module that needs the embedded store
uses `shared_store()` (a process-wide singleton) instead of opening its own.
"""

from __future__ import annotations

import atexit
import os
import random
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass, field

from collector.pdata import ExportTraceServiceRequest, Traces, set_any_value
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

DAY_NS = 86_400 * 10**9

TENANTS = {
    # tenant: (engagements, weight)
    "acme": (["eng-101", "eng-102"], 5),
    "globex": (["eng-201"], 3),
    "initech": (["eng-301", "eng-302"], 2),
}
CREWS = {
    # flow (baggage flow.name) -> crew (gen_ai.workflow.name), tasks [(task, agent)]
    "assessment": ("assessment_crew", [("readiness_assessment", "readiness_assessor"), ("complexity_analysis", "complexity_analyst")]),
    "discovery": ("discovery_crew", [("asset_inventory", "inventory_agent"), ("dependency_mapping", "dependency_mapper")]),
    "collection": ("collection_crew", [("field_mapping", "field_mapper"), ("data_validation", "data_validator")]),
}
FEATURES = ["crewai", "field_mapping", "chat"]
# provider, model, $/input token, $/cache-read token, $/cache-write token, $/output token, weight
MODELS = [
    ("openai", "gpt-4o", 2.5e-6, 1.25e-6, 0.0, 10e-6, 4),
    ("openai", "gpt-4o-mini", 0.15e-6, 0.075e-6, 0.0, 0.6e-6, 6),
    ("anthropic", "claude-sonnet-4-5", 3e-6, 0.3e-6, 3.75e-6, 15e-6, 4),
    ("deepinfra", "meta-llama/Llama-4-Maverick-17B-128E-Instruct-FP8", 0.15e-6, 0.0, 0.0, 0.6e-6, 3),
]
UNPRICED_MODEL = ("self_hosted", "acme-llama-ft", 2)  # not in the price book: unpriced
ERRORS = ["RateLimitError", "APITimeoutError", "APIConnectionError"]
TOOLS = ["search_cmdb", "read_file", "http_get"]


@dataclass
class SpanRecord:
    trace_id: str
    span_id: str
    parent_id: str
    name: str
    service: str
    start_ns: int
    end_ns: int
    attrs: dict
    error: bool = False
    status_message: str = ""

    @property
    def op(self) -> str:
        return self.attrs.get("gen_ai.operation.name", "")

    @property
    def is_call(self) -> bool:
        return self.op in ("chat", "text_completion", "generate_content", "embeddings") and \
            self.attrs.get("gen_ai.usage.cost.status") != "delegated"

    @property
    def duration_ms(self) -> float:
        return (self.end_ns - self.start_ns) / 1e6


@dataclass
class Truth:
    spans: list[SpanRecord] = field(default_factory=list)
    now_ns: int = 0
    scores: list["ScoreRecord"] = field(default_factory=list)

    @property
    def calls(self) -> list[SpanRecord]:
        return [s for s in self.spans if s.is_call]

    def by_trace(self) -> dict[str, list[SpanRecord]]:
        out: dict[str, list[SpanRecord]] = {}
        for s in self.spans:
            out.setdefault(s.trace_id, []).append(s)
        return out


@dataclass
class ScoreRecord:
    """One `gen_ai.evaluation.result` log event (issue 13): a thumbs up/down on the root span, an
    LLM judge's 1-5 relevance on the first inference call, or a categorical label."""

    trace_id: str
    span_id: str
    time_ns: int
    tenant: str
    attrs: dict


class _Gen:
    def __init__(self, rng: random.Random):
        self.rng = rng

    def hexid(self, n: int) -> str:
        return "%0*x" % (n * 2, self.rng.getrandbits(n * 8))


def generate(days: int = 35, traces_per_day: int = 20, seed: int = 20260101, now_ns: int | None = None) -> Truth:
    rng = random.Random(seed)
    g = _Gen(rng)
    now_ns = now_ns or time.time_ns()
    truth = Truth(now_ns=now_ns)
    tenants = list(TENANTS)
    weights = [TENANTS[t][1] for t in tenants]
    model_weights = [m[-1] for m in MODELS] + [UNPRICED_MODEL[-1]]

    # Day N's traces fall in the calendar day N days before today (the views' today(), toMonday(),
    # toDate(), in the local time zone as chdb's), whatever the time of day: today's in the part of
    # today that has passed, at least 2 minutes ago (or half of it, just after midnight).
    since_midnight_s = int(now_ns // 10**9 - time.mktime(time.localtime(now_ns // 10**9)[:3] + (0, 0, 0, 0, 0, -1)))
    midnight_ns = now_ns - since_midnight_s * 10**9
    for day in range(days):
        for _ in range(traces_per_day):
            within_s = rng.randint(120, 86_000) - 120  # where in its day: 0 .. 85,880 s
            if day == 0:
                earliest = min(120, since_midnight_s // 2)
                start = now_ns - (earliest + within_s % max(1, since_midnight_s - earliest)) * 10**9
            else:
                start = midnight_ns - day * DAY_NS + within_s * 10**9
            tenant = rng.choices(tenants, weights)[0]
            engagement = rng.choice(TENANTS[tenant][0])
            flow = rng.choice(list(CREWS))
            crew, tasks = CREWS[flow]
            feature = rng.choice(FEATURES)
            base = {"tenant.id": tenant, "engagement.id": engagement, "flow.name": flow, "feature.name": feature,
                    # a conversation per engagement and day, one user per conversation (no draw from rng)
                    "gen_ai.conversation.id": f"conv-{engagement}-d{day}", "user.id": f"{engagement}-user-{day % 3}"}
            trace_id = g.hexid(16)
            spans: list[SpanRecord] = []

            def span(name: str, parent: str, t0: int, attrs: dict, service: str = "crew-service") -> SpanRecord:
                rec = SpanRecord(trace_id, g.hexid(8), parent, name, service, t0, t0, {**base, **attrs})
                spans.append(rec)
                return rec

            root = span(f"invoke_workflow {crew}", "", start,
                        {"gen_ai.operation.name": "invoke_workflow", "gen_ai.workflow.name": crew})
            t = start + 1_000_000
            for task_name, agent in tasks:
                task = span(f"task {task_name}", root.span_id, t, {
                    "gen_ai.operation.name": "task", "gen_ai.task.name": task_name, "gen_ai.agent.name": agent,
                    "crewai.task.id": str(uuid.UUID(int=rng.getrandbits(128)))})
                t += 500_000
                inv = span(f"invoke_agent {agent}", task.span_id, t,
                           {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": agent})
                t += 500_000
                failed = False
                for _ in range(rng.randint(1, 3)):
                    t, err = _call(g, span, inv.span_id, t, agent, model_weights)
                    failed = failed or err
                    if rng.random() < 0.5:
                        tool = span(f"execute_tool {rng.choice(TOOLS)}", inv.span_id, t,
                                    {"gen_ai.operation.name": "execute_tool", "gen_ai.agent.name": agent})
                        t += rng.randint(5, 300) * 1_000_000
                        tool.end_ns = t
                if rng.random() < 0.25:  # the agent asks a nested reviewer agent
                    sub = span("invoke_agent reviewer", inv.span_id, t,
                               {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "reviewer"})
                    t += 1_000_000
                    t, err = _call(g, span, sub.span_id, t, "reviewer", model_weights)
                    sub.end_ns = t
                    failed = failed or err
                t += 1_000_000
                inv.end_ns = t
                task.end_ns = t
                if failed:
                    for rec in (inv, task):
                        rec.error, rec.status_message = True, "LLM call failed"
                        rec.attrs["error.type"] = "RuntimeError"
                t += 1_000_000
                if failed:
                    root.error, root.status_message = True, f"task {task_name} failed"
                    root.attrs["error.type"] = "TaskFailed"
            root.end_ns = t
            truth.spans.extend(spans)
    truth.scores = _scores(truth, random.Random(seed + 1))
    return truth


def _scores(truth: Truth, rng: random.Random) -> list[ScoreRecord]:
    """Scores for the seeded traces, drawn from their own generator (the spans stay as they were)."""
    out = []
    for trace_id, spans in truth.by_trace().items():
        root, calls = spans[0], [s for s in spans if s.is_call]
        tenant = root.attrs["tenant.id"]
        if rng.random() < 0.6:
            up = rng.random() < 0.7
            out.append(ScoreRecord(trace_id, root.span_id, root.end_ns + 60 * 10**9, tenant, {
                "gen_ai.evaluation.name": "thumbs", "gen_ai.evaluation.score.value": 1.0 if up else 0.0,
                "gen_ai.evaluation.score.label": "true" if up else "false",
                "genaitrace.evaluation.source": "user-feedback"}))
        if calls:
            call = calls[0]
            out.append(ScoreRecord(trace_id, call.span_id, call.end_ns + 10**9, tenant, {
                "gen_ai.evaluation.name": "relevance", "gen_ai.evaluation.score.value": float(rng.randint(1, 5)),
                "gen_ai.evaluation.explanation": "judged by the seed", "genaitrace.evaluation.source": "llm-judge"}))
        if rng.random() < 0.2:
            out.append(ScoreRecord(trace_id, root.span_id, root.end_ns + 10**9, tenant, {
                "gen_ai.evaluation.name": "tone", "gen_ai.evaluation.score.label": rng.choice(["friendly", "curt"]),
                "genaitrace.evaluation.source": "heuristic"}))
    return out


def to_logs(scores: list[ScoreRecord]):
    """The scores as one OTLP logs request (what an SDK's events API sends)."""
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

    request = ExportLogsServiceRequest()
    by_tenant: dict[str, list[ScoreRecord]] = {}
    for score in scores:
        by_tenant.setdefault(score.tenant, []).append(score)
    for tenant, records in by_tenant.items():
        resource_logs = request.resource_logs.add()
        set_any_value(resource_logs.resource.attributes.add(key="service.name").value, "crew-service")
        set_any_value(resource_logs.resource.attributes.add(key="tenant.id").value, tenant)
        scope = resource_logs.scope_logs.add()
        scope.scope.name = "genaitrace.evaluation"
        for score in records:
            record = scope.log_records.add()
            record.time_unix_nano = record.observed_time_unix_nano = score.time_ns
            record.trace_id, record.span_id = bytes.fromhex(score.trace_id), bytes.fromhex(score.span_id)
            record.event_name = "gen_ai.evaluation.result"
            for key, value in score.attrs.items():
                set_any_value(record.attributes.add(key=key).value, value)
    return request


def _call(g: _Gen, span, parent: str, t: int, agent: str, model_weights: list[int]) -> tuple[int, bool]:
    rng = g.rng
    pick = rng.choices(range(len(MODELS) + 1), model_weights)[0]
    unpriced = pick == len(MODELS)
    provider, model = (UNPRICED_MODEL[0], UNPRICED_MODEL[1]) if unpriced else MODELS[pick][:2]
    op = "embeddings" if (not unpriced and model == "gpt-4o-mini" and rng.random() < 0.1) else "chat"
    inp = rng.randint(200, 8000)
    out = 0 if op == "embeddings" else rng.randint(20, 1500)
    cache_read = rng.randint(0, inp // 2) if (op == "chat" and rng.random() < 0.4) else 0
    cache_creation = rng.randint(0, (inp - cache_read) // 4) if (provider == "anthropic" and rng.random() < 0.3) else 0
    reasoning = rng.randint(0, out // 2) if (model == "gpt-4o" and rng.random() < 0.3) else 0
    stream = op == "chat" and rng.random() < 0.3
    error = rng.random() < 0.06
    duration_ms = rng.lognormvariate(6.8, 0.6) if op == "chat" else rng.uniform(30, 120)  # ~900 ms median
    attrs = {
        "gen_ai.operation.name": op, "gen_ai.provider.name": provider, "gen_ai.request.model": model,
        "gen_ai.agent.name": agent, "gen_ai.request.stream": stream,
    }
    if not error:
        attrs.update({
            "gen_ai.response.model": model if provider != "openai" else f"{model}-2024-08-06",
            "gen_ai.usage.input_tokens": inp, "gen_ai.usage.output_tokens": out,
        })
        if cache_read:
            attrs["gen_ai.usage.cache_read.input_tokens"] = cache_read
        if cache_creation:
            attrs["gen_ai.usage.cache_creation.input_tokens"] = cache_creation
        if reasoning:
            attrs["gen_ai.usage.reasoning.output_tokens"] = reasoning
        if stream:
            attrs["gen_ai.response.time_to_first_chunk"] = round(duration_ms / 1000 * rng.uniform(0.1, 0.4), 4)
        if unpriced:
            attrs.update({"gen_ai.usage.cost.status": "unpriced", "gen_ai.usage.cost.unpriced_reason": "unknown_model"})
        else:
            _, _, p_in, p_cr, p_cw, p_out, _ = MODELS[pick]
            parts = {
                "input_usd": (inp - cache_read - cache_creation) * p_in,
                "cache_read_usd": cache_read * p_cr,
                "cache_creation_usd": cache_creation * p_cw,
                "output_usd": (out - reasoning) * p_out,
                "reasoning_usd": reasoning * p_out,
            }
            attrs["gen_ai.usage.cost_usd"] = sum(parts.values())
            attrs.update({f"gen_ai.usage.cost.{k}": v for k, v in parts.items()})
            attrs["gen_ai.usage.cost.status"] = "priced"
    else:
        attrs["error.type"] = rng.choice(ERRORS)
        attrs.update({"gen_ai.usage.cost.status": "unpriced", "gen_ai.usage.cost.unpriced_reason": "missing_token_counts"})
    wrapped = rng.random() < 0.15
    outer = None
    if wrapped:  # LiteLLM's span around the provider SDK's: same usage, marked delegated
        outer = span(f"{op} {model}", parent, t, {**{k: v for k, v in attrs.items() if not k.startswith("gen_ai.usage.cost")},
                                                  "gen_ai.usage.cost.status": "delegated"}, service="crew-service")
        parent = outer.span_id
        t += 2_000_000
    rec = span(f"{op} {model}", parent, t, attrs)
    t += int(duration_ms * 1_000_000)
    rec.end_ns = t
    if error:
        rec.error, rec.status_message = True, f"{attrs['error.type']}: provider said no"
    if outer is not None:
        t += 1_000_000
        outer.end_ns = t
        outer.error, outer.status_message = rec.error, rec.status_message
        outer.attrs["gen_ai.usage.cost.priced_span_id"] = rec.span_id
    return t + 1_000_000, error


def to_traces(records: list[SpanRecord]) -> Traces:
    request = ExportTraceServiceRequest()
    by_service: dict[str, list[SpanRecord]] = {}
    for rec in records:
        by_service.setdefault(rec.service, []).append(rec)
    for service, recs in by_service.items():
        rs = request.resource_spans.add()
        set_any_value(rs.resource.attributes.add(key="service.name").value, service)
        ss = rs.scope_spans.add()
        ss.scope.name = "genaitrace.seed"
        for rec in recs:
            sp = ss.spans.add()
            sp.trace_id = bytes.fromhex(rec.trace_id)
            sp.span_id = bytes.fromhex(rec.span_id)
            if rec.parent_id:
                sp.parent_span_id = bytes.fromhex(rec.parent_id)
            sp.name = rec.name
            sp.kind = Span.SPAN_KIND_CLIENT if rec.is_call or rec.attrs.get("gen_ai.usage.cost.status") == "delegated" else Span.SPAN_KIND_INTERNAL
            sp.start_time_unix_nano = rec.start_ns
            sp.end_time_unix_nano = rec.end_ns
            for key, value in rec.attrs.items():
                set_any_value(sp.attributes.add(key=key).value, value)
            if rec.error:
                sp.status.code = Status.STATUS_CODE_ERROR
                sp.status.message = rec.status_message
            else:
                sp.status.code = Status.STATUS_CODE_UNSET
    return Traces(request)


def insert(store, table: str, records: list[SpanRecord], batch: int = 5000, token_prefix: str = "seed") -> None:
    from collector.storage.columns import traces_to_arrow

    settings = {"deduplicate_blocks_in_dependent_materialized_views": 1}
    for i in range(0, len(records), batch):
        arrow = traces_to_arrow(to_traces(records[i:i + batch]))
        store.insert_arrow(table, arrow, settings={**settings, "insert_deduplication_token": f"{token_prefix}-{i}"})


_SHARED: dict = {}


def shared_store():
    """(store, truth): a process-wide chdb store with the schema, the GenAI views and the seed data."""
    if "store" not in _SHARED:
        from collector.storage import genai_views, log_columns, session_views
        from collector.storage.client import acquire_store, parse_endpoint
        from collector.storage.schema import SchemaOptions, logs_statements, schema_statements

        path = os.environ.get("GENAITRACE_TEST_CHDB") or tempfile.mkdtemp(prefix="genai-seed-")
        if not os.environ.get("GENAITRACE_TEST_CHDB"):
            atexit.register(shutil.rmtree, path, True)
        store = acquire_store(parse_endpoint(f"chdb://{path}/chdb"), database="otel")
        # The contrib bloom filters unless asked for the text indexes (bench.queries --skip-indexes text).
        options = SchemaOptions(database="otel", text_indexes=os.environ.get("GENAITRACE_SEED_SKIP_INDEXES") == "text")
        for statement in schema_statements(options) + logs_statements(options):
            store.command(statement)
        genai_views.create(store, options)
        session_views.create(store, options)
        truth = generate()
        insert(store, "otel_traces", truth.spans)
        store.insert_arrow("otel_logs", log_columns.logs_to_arrow(to_logs(truth.scores)))
        _SHARED.update(store=store, truth=truth, path=f"{path}/chdb", options=options)
    return _SHARED["store"], _SHARED["truth"]


def shared_path() -> str:
    shared_store()
    return _SHARED["path"]
