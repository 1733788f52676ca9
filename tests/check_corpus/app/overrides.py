"""Tracing switched off (GT104) and content capture forced on (GT105), with look-alikes."""
import os

from opentelemetry import trace
from opentelemetry.instrumentation.utils import suppress_instrumentation

import instrumentation


def quiet():
    os.environ["OTEL_SDK_DISABLED"] = "true"  # expect: GT104
    os.environ.setdefault("OTEL_TRACES_EXPORTER", "none")  # expect: GT104
    with suppress_instrumentation():  # expect: GT104
        pass
    trace.set_tracer_provider(trace.NoOpTracerProvider())  # expect: GT104


def fine():
    disabled = os.environ.get("OTEL_SDK_DISABLED")  # clean: GT104 (read only)
    os.environ["OTEL_SDK_DISABLED"] = "false"  # clean: GT104
    os.environ["OTEL_SERVICE_NAME"] = "svc"  # clean: GT104
    return disabled


def capture():
    os.environ["TRACELOOP_TRACE_CONTENT"] = "true"  # expect: GT105
    os.environ.update(OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT="SPAN_ONLY")  # expect: GT105
    instrumentation.init(capture="SPAN_ONLY")  # expect: GT105
    os.environ["OPENINFERENCE_HIDE_INPUTS"] = "false"  # expect: GT105


def no_capture():
    os.environ["TRACELOOP_TRACE_CONTENT"] = "false"  # clean: GT105
    instrumentation.init(capture="NO_CONTENT")  # clean: GT105
    return os.environ.get("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT")  # clean: GT105
