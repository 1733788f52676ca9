"""What the check knows about the outside world: provider hosts, SDKs, instrumentors, context setters.

One place for these facts, so a rule reads them and a test can list them. Names are qualified the
way `resolve.qualify` spells a call: `module.attr`, with `()` after a call (`openai.OpenAI().chat`).
"""

from __future__ import annotations

# API hosts of LLM providers: a raw HTTP request to one of these escapes the GenAI instrumentation
# (an HTTP span at best: no model, no tokens, no cost).
PROVIDER_HOSTS = (
    "api.openai.com", "openai.azure.com", "api.anthropic.com", "generativelanguage.googleapis.com",
    "aiplatform.googleapis.com", "api.mistral.ai", "api.cohere.ai", "api.cohere.com", "api.groq.com",
    "api.together.xyz", "api.together.ai", "api.fireworks.ai", "api.deepseek.com", "openrouter.ai",
    "api.perplexity.ai", "api.x.ai", "bedrock-runtime", "api-inference.huggingface.co",
    "api.replicate.com", "api.ai21.com", "api.voyageai.com",
)

# HTTP client calls that take a URL (positional 0 unless named), by qualified name pattern.
HTTP_CALLS = (
    "requests.get", "requests.post", "requests.put", "requests.patch", "requests.request",
    "requests.Session().get", "requests.Session().post", "requests.Session().request",
    "requests.sessions.Session().post", "requests.session().post",
    "httpx.get", "httpx.post", "httpx.put", "httpx.request", "httpx.stream",
    "httpx.Client().get", "httpx.Client().post", "httpx.Client().request", "httpx.Client().stream",
    "httpx.AsyncClient().get", "httpx.AsyncClient().post", "httpx.AsyncClient().request",
    "httpx.AsyncClient().stream",
    "aiohttp.ClientSession().get", "aiohttp.ClientSession().post", "aiohttp.ClientSession().request",
    "aiohttp.request",
    "urllib.request.urlopen", "urllib.request.Request", "http.client.HTTPSConnection",
    "http.client.HTTPConnection",
)
# Method names that, on an object we cannot type (a session passed in), still mean "HTTP request".
HTTP_METHOD_NAMES = ("get", "post", "put", "patch", "request", "stream", "urlopen")

# SDK client constructors by library; a library with no enabled instrumentor escapes tracing.
SDK_CLIENTS = {
    "openai": ("openai.OpenAI", "openai.AsyncOpenAI", "openai.AzureOpenAI", "openai.AsyncAzureOpenAI"),
    "anthropic": ("anthropic.Anthropic", "anthropic.AsyncAnthropic", "anthropic.AnthropicBedrock",
                  "anthropic.AnthropicVertex"),
    "cohere": ("cohere.Client", "cohere.ClientV2", "cohere.AsyncClient", "cohere.AsyncClientV2"),
    "mistralai": ("mistralai.Mistral", "mistralai.client.MistralClient"),
    "groq": ("groq.Groq", "groq.AsyncGroq"),
    "google.generativeai": ("google.generativeai.GenerativeModel",),
    "google.genai": ("google.genai.Client",),
    "together": ("together.Together", "together.AsyncTogether"),
    "boto3": ("boto3.client", "boto3.session.Session().client", "boto3.Session().client"),
    "ollama": ("ollama.Client", "ollama.AsyncClient", "ollama.chat", "ollama.generate"),
}
# boto3 clients are only LLM clients for these services.
BOTO3_LLM_SERVICES = ("bedrock-runtime", "bedrock-agent-runtime", "sagemaker-runtime")

# Libraries the project's distro instruments by default (instrumentation/bootstrap.py): what the
# check assumes of a project that declares no instrumentor of its own.
DEFAULT_INSTRUMENTED = ("litellm", "openai", "anthropic", "crewai", "threading", "requests", "httpx")

# Instrumentor distributions -> the libraries (SDK_CLIENTS' keys, litellm, crewai) whose calls they
# trace, read from each one's `instruments` requirement. A project that declares any of them is
# checked against what it declares. traceloop-sdk installs its whole set; genaitrace[app] installs
# traceloop-sdk and openinference's LiteLLM instrumentor, and its distro loads them all.
_TRACELOOP_SDK = ("openai", "anthropic", "cohere", "mistralai", "groq", "google.genai", "together", "boto3",
                  "ollama", "crewai", "litellm")
INSTRUMENTOR_DISTRIBUTIONS = {
    "opentelemetry-instrumentation-openai": ("openai",),
    "opentelemetry-instrumentation-openai-v2": ("openai",),
    "openinference-instrumentation-openai": ("openai",),
    "opentelemetry-instrumentation-anthropic": ("anthropic",),
    "openinference-instrumentation-anthropic": ("anthropic",),
    "opentelemetry-instrumentation-cohere": ("cohere",),
    "opentelemetry-instrumentation-mistralai": ("mistralai",),
    "openinference-instrumentation-mistralai": ("mistralai",),
    "opentelemetry-instrumentation-groq": ("groq",),
    "openinference-instrumentation-groq": ("groq",),
    "opentelemetry-instrumentation-google-generativeai": ("google.genai",),  # it instruments google-genai
    "opentelemetry-instrumentation-google-genai": ("google.genai",),
    "openinference-instrumentation-google-genai": ("google.genai",),
    "opentelemetry-instrumentation-together": ("together",),
    "opentelemetry-instrumentation-bedrock": ("boto3",),
    "openinference-instrumentation-bedrock": ("boto3",),
    "opentelemetry-instrumentation-botocore": ("boto3",),  # its bedrock-runtime extension
    "opentelemetry-instrumentation-ollama": ("ollama",),
    "opentelemetry-instrumentation-litellm": ("litellm",),
    "openinference-instrumentation-litellm": ("litellm",),
    "opentelemetry-instrumentation-crewai": ("crewai",),
    "openinference-instrumentation-crewai": ("crewai",),
    "traceloop-sdk": _TRACELOOP_SDK,
    "genaitrace[app]": _TRACELOOP_SDK,
}

# LLM calls and agent runs: the work whose cost must be attributed to a tenant.
LLM_CALLS = (
    "litellm.completion", "litellm.acompletion", "litellm.text_completion", "litellm.atext_completion",
    "litellm.embedding", "litellm.aembedding", "litellm.responses", "litellm.aresponses",
    "litellm.main.completion", "litellm.main.acompletion",
    "litellm.Router().completion", "litellm.Router().acompletion", "litellm.Router().embedding",
    "litellm.Router().aembedding",
    "openai.OpenAI().chat.completions.create", "openai.AsyncOpenAI().chat.completions.create",
    "openai.OpenAI().responses.create", "openai.AsyncOpenAI().responses.create",
    "openai.OpenAI().embeddings.create", "openai.AsyncOpenAI().embeddings.create",
    "openai.AzureOpenAI().chat.completions.create",
    "anthropic.Anthropic().messages.create", "anthropic.AsyncAnthropic().messages.create",
    "anthropic.Anthropic().messages.stream", "anthropic.AsyncAnthropic().messages.stream",
    "crewai.LLM().call", "crewai.Agent().kickoff", "crewai.Agent().kickoff_async",
)
# Agent runs by method name, on objects of a module that imports crewai (crews are usually built
# by a factory function, so their type is not visible where they run).
AGENT_RUN_METHODS = ("kickoff", "kickoff_async", "akickoff", "kickoff_for_each", "kickoff_for_each_async")
TASK_RUN_METHODS = ("execute_async", "execute_sync")

# Context managers and calls that put the tenant (baggage) on what runs inside them.
TENANT_CONTEXT_CALLS = (
    "instrumentation.attributes", "instrumentation.context", "instrumentation.attach_carrier",
    "instrumentation.baggage.attributes", "instrumentation.baggage.attach_carrier",
    "genaitrace.context", "genaitrace.attributes",
    "opentelemetry.baggage.set_baggage", "opentelemetry.context.attach",
    "opentelemetry.propagate.extract",
)

# Calls that bootstrap the SDK in-process (an entry point that runs without opentelemetry-instrument).
BOOTSTRAP_CALLS = (
    "instrumentation.init", "instrumentation.bootstrap.init", "instrumentation.setup_tracing",
    "genaitrace.init", "traceloop.sdk.Traceloop.init",
    "opentelemetry.instrumentation.auto_instrumentation.initialize",
)

# Launchers that run a callable elsewhere: (qualified pattern, index of the callable argument or
# keyword name, context restored by) — `restored_by` names the instrumentation that carries the
# context across, or None where nothing does. "processes" is genaitrace's own (instrumentation/
# processes.py): Process.start and ProcessPoolExecutor.submit (map goes through submit) send the
# caller's traceparent and baggage to the child. A multiprocessing.Pool's workers are started once,
# so its tasks get no caller context.
LAUNCHERS = (
    ("threading.Thread", "target", "threading"),
    ("threading.Timer", 1, "threading"),
    ("concurrent.futures.ThreadPoolExecutor().submit", 0, "threading"),
    ("concurrent.futures.ThreadPoolExecutor().map", 0, "threading"),
    ("_thread.start_new_thread", 0, None),
    ("_thread.start_new", 0, None),
    ("concurrent.futures.ProcessPoolExecutor().submit", 0, "processes"),
    ("concurrent.futures.ProcessPoolExecutor().map", 0, "processes"),
    ("multiprocessing.Process", "target", "processes"),
    ("multiprocessing.Pool().apply", 0, None),
    ("multiprocessing.Pool().apply_async", 0, None),
    ("multiprocessing.Pool().map", 0, None),
    ("multiprocessing.Pool().map_async", 0, None),
    ("multiprocessing.Pool().imap", 0, None),
    ("multiprocessing.Pool().imap_unordered", 0, None),
    ("multiprocessing.Pool().starmap", 0, None),
    ("multiprocessing.Pool().starmap_async", 0, None),
    ("multiprocessing.get_context().Process", "target", "processes"),
    ("multiprocessing.get_context().Pool().map", 0, None),
    ("multiprocessing.get_context().Pool().apply_async", 0, None),
)
# The launcher `loop.run_in_executor(executor, fn)` with a process pool: it submits to the pool.
PROCESS_POOL_RESTORED_BY = "processes"
# Calls that restore a propagated context (trace and baggage) in the worker.
CONTEXT_ATTACH_CALLS = ("instrumentation.attach_carrier", "instrumentation.baggage.attach_carrier",
                        "opentelemetry.context.attach")
# Calls whose result carries the context into another process (inject a carrier).
CARRIER_CALLS = ("instrumentation.inject", "opentelemetry.propagate.inject", "instrumentation.baggage.inject")

# Environment variables that switch tracing off, and the values that do it.
DISABLING_ENV = {
    "OTEL_SDK_DISABLED": ("true", "1", "yes"),
    "OTEL_TRACES_EXPORTER": ("none",),
    "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": None,  # any value disables something
    "OTEL_TRACES_SAMPLER": ("always_off", "parentbased_always_off"),
}
DISABLING_CALLS = (
    "opentelemetry.instrumentation.utils.suppress_instrumentation",
    "opentelemetry.instrumentation.utils.suppress_http_instrumentation",
    "opentelemetry.trace.set_tracer_provider", "opentelemetry.trace.NoOpTracerProvider",
    "opentelemetry.trace.NoOpTracer", "opentelemetry.sdk.trace.sampling.ALWAYS_OFF",
)
# Context keys that suppress instrumentation when set (`context.set_value(KEY, True)`).
DISABLING_NAMES = ("_SUPPRESS_INSTRUMENTATION_KEY", "_SUPPRESS_HTTP_INSTRUMENTATION_KEY",
                   "SUPPRESS_INSTRUMENTATION_KEY")

# Environment variables that force content capture on, with the values that mean "on".
CAPTURE_ENV = {
    "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": ("true", "1", "span_only", "event_only", "span_and_event"),
    "TRACELOOP_TRACE_CONTENT": ("true", "1"),
    "OPENINFERENCE_HIDE_INPUTS": ("false", "0"),
    "OPENINFERENCE_HIDE_OUTPUTS": ("false", "0"),
    "OPENINFERENCE_HIDE_INPUT_MESSAGES": ("false", "0"),
    "OPENINFERENCE_HIDE_OUTPUT_MESSAGES": ("false", "0"),
}
# Bootstrap calls whose `capture=` keyword turns capture on.
CAPTURE_KEYWORD_CALLS = ("instrumentation.init", "instrumentation.bootstrap.init", "instrumentation.install_processor")
CAPTURE_ON_VALUES = ("span_only", "event_only", "span_and_event", "true", "all")

# Web application constructors: an ASGI/WSGI app is an entry point.
WEB_APPS = ("fastapi.FastAPI", "starlette.applications.Starlette", "flask.Flask", "quart.Quart",
            "django.core.wsgi.get_wsgi_application", "django.core.asgi.get_asgi_application")
# Request-handler decorators (method names on an app or router object).
ROUTE_DECORATORS = ("get", "post", "put", "patch", "delete", "route", "api_route", "websocket")
# Names that carry the caller's trace context and baggage into a web app's handlers.
PROPAGATING_MIDDLEWARE = (
    "instrumentation.http.TraceContextASGIMiddleware", "instrumentation.http.TraceContextWSGIMiddleware",
    "opentelemetry.instrumentation.fastapi.FastAPIInstrumentor",
    "opentelemetry.instrumentation.flask.FlaskInstrumentor",
    "opentelemetry.instrumentation.asgi.OpenTelemetryMiddleware",
    "opentelemetry.instrumentation.wsgi.OpenTelemetryMiddleware",
)

# Modules whose import makes a file "LLM or agent code" (entry points reaching them need tracing).
LLM_MODULES = ("litellm", "crewai", "openai", "anthropic", "cohere", "mistralai", "groq",
               "google.generativeai", "google.genai", "together", "ollama", "langchain", "llama_index")
