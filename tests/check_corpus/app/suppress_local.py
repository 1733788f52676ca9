import contextlib


@contextlib.contextmanager
def suppress_instrumentation():  # our own helper, not OpenTelemetry's
    yield


def run():
    with suppress_instrumentation():  # clean: GT104
        pass
