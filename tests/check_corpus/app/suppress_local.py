import contextlib


@contextlib.contextmanager
def suppress_instrumentation():  # our own helper, not OpenTelemetry's
    yield


def run():
    with suppress_instrumentation():  # clean: GT104
        pass


def suppressed_by_context():
    from opentelemetry import context
    from opentelemetry.instrumentation.utils import _SUPPRESS_INSTRUMENTATION_KEY

    token = context.attach(context.set_value(_SUPPRESS_INSTRUMENTATION_KEY, True))  # expect: GT104
    return token, bool(context.get_value(_SUPPRESS_INSTRUMENTATION_KEY))  # clean: GT104 (reading the key)
