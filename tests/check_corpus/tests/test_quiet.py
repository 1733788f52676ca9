import os

os.environ["OTEL_SDK_DISABLED"] = "true"  # clean: GT104 (tests may switch tracing off)
