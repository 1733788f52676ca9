"""Why data was not accepted: the errors a consumer raises and a receiver turns into its answer.

A leaf module (it imports nothing of the project), so the pipeline data (`collector.pdata`) can
raise them without importing the component model; `collector.component` re-exports them.
"""

from __future__ import annotations


class ConsumeError(Exception):
    """Data was not accepted. `retryable` tells the receiver which answer the client gets."""

    retryable = False


class PermanentError(ConsumeError):
    """Bad data: retrying the same request will fail again (HTTP 400 / gRPC INVALID_ARGUMENT)."""

    http_status = 400


class RetryableError(ConsumeError):
    """Temporarily refused, e.g. a full queue or the memory limit (HTTP 429/503, RESOURCE_EXHAUSTED)."""

    retryable = True

    def __init__(self, message: str, retry_after_s: float = 1.0):
        super().__init__(message)
        self.retry_after_s = retry_after_s


class ResourceExhaustedError(RetryableError):
    """Over capacity (a full sending queue, the memory limit): HTTP 429 / gRPC RESOURCE_EXHAUSTED."""


class UnauthenticatedError(PermanentError):
    """Missing or wrong credentials: HTTP 401 / gRPC UNAUTHENTICATED."""

    http_status = 401
