# genaitrace: noqa: GT104
import os

os.environ["OTEL_SDK_DISABLED"] = "true"  # clean: GT104 (file-level noqa)
os.environ["TRACELOOP_TRACE_CONTENT"] = "true"  # expect: GT105
