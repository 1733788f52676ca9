"""`bearertokenauth` extension: receivers accept only requests carrying a known bearer token.

    extensions:
      bearertokenauth:
        # Like the contrib extension: one shared token, from an env var or a file (re-read when
        # the file changes, so a token can be rotated without a restart).
        token: ${env:OTLP_BEARER_TOKEN}
        # filename: /run/secrets/otlp-token
        # header: authorization     # the header (gRPC metadata key) to read
        # scheme: Bearer
        # Tokens bound to a tenant: spans sent with one are stamped `tenant.id = <tenant>`.
        tenants:
          acme:   {token: "${env:ACME_OTLP_TOKEN}"}
          globex: {filename: /run/secrets/globex-otlp-token}
    receivers:
      otlp:
        protocols:
          grpc: {auth: {authenticator: bearertokenauth}}
          http: {auth: {authenticator: bearertokenauth}}

A request without a known token gets HTTP 401 / gRPC UNAUTHENTICATED, and its body is not decoded
(HTTP). Tokens are compared in constant time, never logged, and never part of an error message.

Tenancy: a tenant-bound token stamps `tenant.id` (the key `instrumentation.baggage.TENANT_ID` the
apps use) on every resource and every span, and overwrites any `tenant.id` the data claims
anywhere else (scope attributes, span events, links), so a client holding acme's token can only
ever write acme's rows, in every column. Spans sent with the shared `token` (not
bound to a tenant, e.g. an internal gateway that is trusted) keep the tenant they claim.
"""

from __future__ import annotations

import hmac
import logging
import os
import threading
import time
from pathlib import Path

from pydantic import Field, model_validator

from collector.component import Component, ComponentId, Factory, Kind, StrictConfig, UnauthenticatedError
from collector.pdata import Traces

log = logging.getLogger(__name__)

# The attribute the application side sets from baggage (instrumentation/baggage.py TENANT_ID).
TENANT_ATTRIBUTE = "tenant.id"


class TokenSource(StrictConfig):
    token: str = Field("", repr=False)
    filename: str = ""

    @model_validator(mode="after")
    def _one(self) -> "TokenSource":
        if bool(self.token) == bool(self.filename):
            raise ValueError("set exactly one of `token` (e.g. ${env:VAR}) or `filename`")
        return self


class BearerTokenAuthConfig(StrictConfig):
    header: str = "authorization"
    scheme: str = "Bearer"
    token: str = Field("", repr=False)
    filename: str = ""
    tenants: dict[str, TokenSource] = Field(default_factory=dict, repr=False)

    @model_validator(mode="after")
    def _some_token(self) -> "BearerTokenAuthConfig":
        if self.token and self.filename:
            raise ValueError("set `token` or `filename`, not both")
        if not (self.token or self.filename or self.tenants):
            raise ValueError("no token configured: set `token`, `filename` or `tenants` (an empty env var gives an empty token)")
        for tenant in self.tenants:
            if not tenant.strip():
                raise ValueError("a tenant name must not be empty")
        return self


class _Secret:
    """A token from the config or a file; a file is re-read (at most once a second) when it changes."""

    def __init__(self, token: str, filename: str):
        self._token, self._filename = token.strip(), filename
        self._mtime = None
        self._checked = 0.0
        self._lock = threading.Lock()
        if filename:
            self._reload(force=True)

    def _reload(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._checked < 1.0:
            return
        self._checked = now
        try:
            mtime = os.stat(self._filename).st_mtime_ns
            if mtime != self._mtime or force:
                self._token = Path(self._filename).read_text().strip()
                self._mtime = mtime
        except OSError as exc:
            if force:
                raise OSError(f"bearertokenauth: cannot read token file {self._filename}: {exc.strerror}") from None
            log.warning("bearertokenauth: cannot re-read token file %s: %s; keeping the previous token", self._filename, exc.strerror)

    def value(self) -> str:
        if self._filename:
            with self._lock:
                self._reload()
        return self._token


class BearerTokenAuth(Component):
    ingest_side = True  # ingest worker processes need it too (service.ingest_workers)

    def __init__(self, component_id: ComponentId, config: BearerTokenAuthConfig):
        self.id, self.config = component_id, config
        # Read here, not in start: `genaitrace validate` builds this, so a missing token file or
        # an empty token is found before `run`.
        self._secrets: list[tuple[_Secret, str | None]] = []
        if config.token or config.filename:
            self._secrets.append((_Secret(config.token, config.filename), None))
        for tenant, source in config.tenants.items():
            self._secrets.append((_Secret(source.token, source.filename), tenant))
        for secret, tenant in self._secrets:
            if not secret.value():
                raise ValueError(f"bearertokenauth: the token for {tenant or 'token'} is empty")

    def start(self, host) -> None:
        log.info("extension %s: %d tokens, %d bound to tenants", self.id, len(self._secrets), len(self.config.tenants))

    # --- used by receivers ---

    def check(self, headers: dict[str, str]) -> str | None:
        """The tenant bound to the request's token (None for an unbound token); raises if unknown."""
        raw = headers.get(self.config.header.lower(), "")
        scheme, _, presented = raw.strip().partition(" ")
        if not presented or scheme.lower() != self.config.scheme.lower():
            raise UnauthenticatedError(f"missing bearer token: send `{self.config.header}: {self.config.scheme} <token>`")
        presented_bytes = presented.strip().encode()
        match, found = None, False
        for secret, tenant in self._secrets:  # no early exit: the time taken does not say which matched
            if hmac.compare_digest(presented_bytes, secret.value().encode()):
                match, found = tenant, True
        if not found:
            raise UnauthenticatedError("invalid bearer token")
        return match

    def authenticate(self, headers: dict[str, str], traces: Traces) -> None:
        tenant = self.check(headers)
        if tenant is not None:
            stamp_tenant(traces, tenant)

    def authenticate_logs(self, headers: dict[str, str], logs) -> None:
        tenant = self.check(headers)
        if tenant is not None:
            stamp_logs_tenant(logs, tenant)

    def shutdown(self) -> None:
        self._secrets.clear()


def _set_string(attributes, key: str, value: str, add: bool = True) -> None:
    found = False
    for kv in attributes:
        if kv.key == key:
            kv.value.Clear()
            kv.value.string_value = value
            found = True  # keep going: a duplicated key must not smuggle a second value through
    if add and not found:
        attributes.add(key=key).value.string_value = value


def stamp_tenant(traces: Traces, tenant: str) -> None:
    """`tenant.id = tenant` on every resource and span; wherever else a client could put a
    tenant.id (scope attributes, span events, links) the claim is overwritten, not added."""
    for rs in traces.edit().resource_spans:
        _set_string(rs.resource.attributes, TENANT_ATTRIBUTE, tenant)
        for ss in rs.scope_spans:
            _set_string(ss.scope.attributes, TENANT_ATTRIBUTE, tenant, add=False)
            for span in ss.spans:
                _set_string(span.attributes, TENANT_ATTRIBUTE, tenant)
                for event in span.events:
                    _set_string(event.attributes, TENANT_ATTRIBUTE, tenant, add=False)
                for link in span.links:
                    _set_string(link.attributes, TENANT_ATTRIBUTE, tenant, add=False)


def stamp_logs_tenant(logs, tenant: str) -> None:
    """The same for log records (`collector.plogs.Logs`): every resource and record, and any
    tenant.id a scope claims overwritten (a score is stored with the tenant of the token)."""
    for resource_logs in logs.edit().resource_logs:
        _set_string(resource_logs.resource.attributes, TENANT_ATTRIBUTE, tenant)
        for scope_logs in resource_logs.scope_logs:
            _set_string(scope_logs.scope.attributes, TENANT_ATTRIBUTE, tenant, add=False)
            for record in scope_logs.log_records:
                _set_string(record.attributes, TENANT_ATTRIBUTE, tenant)


factory = Factory("bearertokenauth", Kind.EXTENSION, BearerTokenAuthConfig,
                  lambda cid, cfg, _next: BearerTokenAuth(cid, cfg))
