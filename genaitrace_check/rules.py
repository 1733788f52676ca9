"""The rules: stable ids, a one-line summary, a fix hint, and the text `--explain` prints."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Rule:
    id: str
    name: str
    summary: str
    fix: str
    explanation: str


RULES = {rule.id: rule for rule in (
    Rule(
        "GT101", "uninstrumented-provider-call",
        "LLM provider reached outside an instrumented client",
        "call the provider through litellm or an instrumented SDK client, or enable an instrumentor for this SDK",
        """A raw HTTP request (requests, httpx, aiohttp, urllib, http.client) to a provider's API host, or
a client of an SDK that no enabled instrumentor covers, makes a call that leaves no GenAI span: no
model, no tokens, no cost, no error in the trace. At best the HTTP instrumentation records a POST.

Flagged: an HTTP call whose URL (a literal, an f-string, a concatenation or a module constant) names
a provider host (api.openai.com, api.anthropic.com, ...); a client constructor of an SDK that is not
in `instrumented`. By default that list follows the instrumentors the project declares (pyproject's
dependencies, optional dependencies and dependency groups, requirements*.txt): e.g.
opentelemetry-instrumentation-bedrock covers boto3's bedrock-runtime clients, traceloop-sdk and
genaitrace[app] cover openai, anthropic, cohere, mistralai, groq, google.genai, together, boto3,
ollama; a project that declares none is checked against the genaitrace distro's defaults (litellm,
openai, anthropic, crewai, plus threading, requests, httpx).
boto3 clients count only for bedrock-runtime and sagemaker-runtime.

Not flagged: the same hosts through litellm or an instrumented SDK; URLs of other hosts; a client
of an SDK listed in `[tool.genaitrace.check] instrumented`.""",
    ),
    Rule(
        "GT102", "unattributed-llm-work",
        "LLM call or agent run with no tenant context on its path from an entry point",
        "wrap the call (or its caller) in `with instrumentation.attributes(tenant_id=...)` or attach the caller's carrier",
        """Cost is attributed per tenant through OpenTelemetry baggage (`tenant.id`). A litellm or SDK call,
or a crew/agent run, that runs with no tenant in its context is stored as unattributable cost.

The check follows calls inside the scanned tree: a call is attributed when it sits inside a
`with instrumentation.attributes(...)`/`instrumentation.context(...)`/`attach_carrier(...)` block,
in a function that sets baggage, or in a function whose every caller in the tree is attributed
(threads and executors that carry context count as callers). A function with no caller in the tree
is an entry point; the finding names the path from it. Web request handlers are attributed when the
app carries the caller's baggage (the project's TraceContext middleware or an OTel web instrumentor).

Not flagged: calls under a tenant context anywhere up the path; code in files that do not reach
LLM libraries.""",
    ),
    Rule(
        "GT103", "context-dropping-launcher",
        "work handed to another thread or process loses the trace and tenant context",
        "pass `instrumentation.inject()` along and `with instrumentation.attach_carrier(carrier):` in the worker",
        """Threads and thread pools get the caller's context from the threading instrumentation;
`multiprocessing.Process` and `ProcessPoolExecutor` (submit, map, `run_in_executor`) get it from
genaitrace's process instrumentation (the child continues the caller's trace and baggage).
`multiprocessing.Pool` tasks and `_thread` get nothing: the work there starts a new trace with no
tenant.

Flagged: a launcher that does not restore context, whose callable (in the scanned tree) reaches LLM
or agent work, when no carrier (`instrumentation.inject()`) is passed along and the callable does
not attach one. Also `threading.Thread`/thread pools when `threading` is in `disabled-instrumentations`,
and processes and process pools when `processes` is.

Not flagged: launchers whose callable cannot be seen or does no LLM work; calls that pass a carrier.""",
    ),
    Rule(
        "GT104", "tracing-disabled-in-code",
        "tracing switched off or overridden in code",
        "configure tracing with OTEL_* variables at deploy time, not in code; remove the override",
        """`OTEL_SDK_DISABLED`, `OTEL_TRACES_EXPORTER=none`, an always-off sampler or
`OTEL_PYTHON_DISABLED_INSTRUMENTATIONS` set from code, `suppress_instrumentation()`, the suppression
context keys, `trace.set_tracer_provider(...)` or a NoOp tracer provider all make spans disappear (or
go to a provider the collector never sees), and only for the code paths that run them.

Not flagged: reading these variables; the same in files matched by `allow-tracing-overrides`
(default: tests and conftest files).""",
    ),
    Rule(
        "GT105", "content-capture-forced-on",
        "message content capture forced on in code",
        "leave capture off (the default) or enable it for the deployment with OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT; list allowed files in `capture-allowed`",
        """With content capture on, prompts, completions, task descriptions and tool I/O leave the app.
Turning it on is a deployment decision; code that sets
`OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`, `TRACELOOP_TRACE_CONTENT=true`,
`OPENINFERENCE_HIDE_*=false`, or calls `instrumentation.init(capture="SPAN_ONLY")` forces it on for
every environment the code runs in.

Not flagged: files matched by `capture-allowed`; setting capture off.""",
    ),
    Rule(
        "GT106", "entry-point-without-bootstrap",
        "entry point that reaches LLM code has no tracing bootstrap",
        "call `instrumentation.init()` first thing in the entry point, or run it under `opentelemetry-instrument`",
        """An entry point (`if __name__ == "__main__":`, an ASGI/WSGI app object, a `[project.scripts]`
target) that imports LLM or agent libraries, directly or through the scanned tree, runs with no
tracing unless something initialises it.

Applies when `[tool.genaitrace.check] bootstrap = "init"` (the default is "auto": flag entry points
only where the tree calls `instrumentation.init()` somewhere, i.e. the project bootstraps in code).
With `bootstrap = "opentelemetry-instrument"` the rule is off: the deployment wraps every process.

Not flagged: entry points that call a bootstrap (directly, or by importing a module of the tree
that does at import time).""",
    ),
)}
