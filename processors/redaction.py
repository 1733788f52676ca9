"""`redaction` processor: mask personal data and secrets wherever they sit in a span (or a log
record, in a logs pipeline), before storage.

    processors:
      redaction:
        # What to mask: built-in detectors (all by default) and your own regexes.
        builtin: [bearer_token, api_key, email, card_number, phone]
        patterns:
          - {name: ssn, regex: '\\b\\d{3}-\\d{2}-\\d{4}\\b'}
          - {name: ticket, regex: 'TICKET-[0-9]+'}
        replacement: "[REDACTED:{name}]"
        # Keys whose values are secrets whatever they look like, added to the built-in list
        # (collector/secretkeys.py: password, token, authorization, cookie, api_key, ...).
        secret_keys: [x-internal-signature]
        # Where: by default every string value the client sent (all_attributes: true). With
        # all_attributes: false, only attributes whose key starts with one of `attributes` (every
        # GenAI dialect's message-content keys) and events named gen_ai.*: cheaper, and blind to
        # content anywhere else.
        all_attributes: true
        attributes: [gen_ai.input.messages, gen_ai.output.messages, ...]
        events: true             # event attributes (an event's name is kept)
        resource: true           # resource attributes

Put it in the pipeline before anything that stores or forwards (i.e. before the exporters; after
memory_limiter). With the defaults it visits, in every span: the span's attributes, the status
message, each event's attributes (exception.message and exception.stacktrace included), each
link's attributes, and the scope's and the resource's attributes. Inside a value it walks array
items and kvlist entries at any depth. Span and event names, ids and the scope's name are kept.

- Secrets known by their key (the last dotted segment, case-insensitive, `-` as `_`:
  `http.request.header.authorization`, `db.password`, `AWS_SECRET_ACCESS_KEY`): the whole value is
  replaced by `[REDACTED:secret]`, whatever it looks like, at any depth (kvlist keys too).
- Bytes values: UTF-8 text is scanned like a string and stays bytes; anything else is replaced by
  `[REDACTED:bytes]`, because no detector can look inside binary and the store would keep it
  (base64) where no one could tell whether it held a secret.
- A span where something was masked gets `redaction.masked.count` (int) and
  `redaction.masked.types` (e.g. "email,secret") for what was masked in the span, its events and
  links; the masked text is gone, not stored elsewhere.

Detectors: `email`; `phone` (international `+` numbers and the usual (555) 123-4567 / 555-123-4567
forms; bare digit runs are left alone, they are usually counts or ids); `card_number` (13-19
digits, bare or in groups of four (or 4-6-5) split by the same space, dot or dash, Luhn-checked);
`api_key` (OpenAI/Anthropic `sk-...`, AWS `AKIA...`, GitHub `ghp_...`/`github_pat_...`, Slack
`xox?-...`, Google `AIza...`, and `api_key=...`-style assignments); `bearer_token` (`Bearer
<token>` and JWTs). JSON text stays valid JSON because replacements contain no quotes or
backslashes.
"""

from __future__ import annotations

import re
from typing import Callable

from pydantic import Field, field_validator

from collector.component import ComponentId, Consumer, Factory, Kind, Processor, StrictConfig
from collector.pdata import Traces
from collector.secretkeys import SECRET_KEY_NAMES, SECRET_KEY_SUFFIXES, is_secret_key, key_name
from semconv import genai_mapping as gm

# Where message content lives, in every dialect (the list the app side strips by default).
CONTENT_KEYS = gm.MESSAGE_CONTENT_KEYS


def _luhn(digits: str) -> bool:
    total, parity = 0, len(digits) % 2
    for i, ch in enumerate(digits):
        d = ord(ch) - 48
        if i % 2 == parity:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


# name -> (regex, optional check of the matched text, groups of strings: the lower-cased text of
# every match contains one string of each group). An ASCII text that lacks a group is not
# searched: the regexes are the cost of redaction, and `in` is many times cheaper than a search.
# Other text always is (`re` folds case and reads digits beyond ASCII: "ſ" is "s", "٣" a digit).
_DIGITS = tuple("0123456789")


def _any_of(*needles: str) -> tuple[tuple[str, ...], ...]:
    return (needles,)


def _assigned_secret() -> str:
    """`<secret key name> = value` / `: value` in text (`AWS_SECRET_ACCESS_KEY=...`, `"password": "..."`,
    `Authorization: Basic ...`, `?token=...`): the value is masked, the key and quotes kept. The
    names are collector/secretkeys.py's, so an attribute key and a key written in text are one list."""
    names = sorted({*SECRET_KEY_NAMES, *(suffix.lstrip("_") for suffix in SECRET_KEY_SUFFIXES)}, key=len, reverse=True)
    alternation = "|".join(re.escape(name).replace("_", "[_\\-]") for name in names)
    return (r"(?i:(?<![A-Za-z0-9])(?:" + alternation + r")(?![A-Za-z0-9_])"
            r"[\s'\"\\]*[:=][\s'\"\\]*(?:(?:basic|bearer|token|digest)\s+)?)"
            # quoted: up to the closing quote; bare: up to a space or delimiter; never a mask already made
            r"(?P<secret>(?<=[\"'])(?!\[)[^\"'\\\n]+|(?!\[)[^\s\"'\\,;&<>]{4,})")


_ASSIGNED_SECRET = _assigned_secret()
# Every secret key name contains one of these (tests/test_redaction.py checks it).
_SECRET_NAME_NEEDLES = ("pass", "pwd", "secret", "token", "auth", "cookie", "key", "credential", "connection", "dsn")

BUILTIN: dict[str, tuple[str, Callable[[str], bool] | None, tuple[tuple[str, ...], ...]]] = {
    "bearer_token": (
        r"(?i)\bbearer\s+[A-Za-z0-9._~+/\-]{8,}=*"
        r"|\beyJ[A-Za-z0-9_\-]{5,}\.eyJ[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]*",
        None,
        _any_of("bearer", "eyj"),
    ),
    "api_key": (
        r"\bsk-(?:ant-|proj-)?[A-Za-z0-9_\-]{16,}"
        r"|\bAKIA[0-9A-Z]{16}\b"
        r"|\bgh[pousr]_[A-Za-z0-9]{30,}"
        r"|\bgithub_pat_[A-Za-z0-9_]{30,}"
        r"|\bxox[abprs]-[A-Za-z0-9\-]{10,}"
        r"|\bAIza[0-9A-Za-z_\-]{35}"
        r"|" + _ASSIGNED_SECRET,
        None,
        _any_of("sk-", "akia", "ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_", "xox", "aiza", *_SECRET_NAME_NEEDLES),
    ),
    "email": (r"\b[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}\b", None, _any_of("@")),
    "card_number": (
        # bare, or groups of 4 (4-4-4-1..4[-1..3]) or 4-6-4/5 (Amex, Diners) with one separator; not
        # inside a longer number, a dashed id or a dotted version
        r"(?<![\d\-])(?<!\d\.)"
        r"(?:\d{13,19}|\d{4}(?P<sep>[ .\-])\d{4}(?P=sep)\d{4}(?P=sep)\d{1,4}(?:(?P=sep)\d{1,3})?|\d{4}([ .\-])\d{6}\2\d{4,5})"
        r"(?![\d\-]|\.\d)",
        lambda text: _luhn(re.sub(r"[ .\-]", "", text)),
        (_DIGITS,),
    ),
    "phone": (
        r"(?<![\w+])\+\d{1,3}[ \-.]?(?:\(\d{1,4}\)[ \-.]?)?\d{2,4}(?:[ \-.]?\d{2,4}){1,3}(?!\w)"
        r"|(?<![\w(])\(\d{3}\)[ \-.]?\d{3}[ \-.]\d{4}(?!\w)"
        r"|(?<![\w\-.])\d{3}[\-.]\d{3}[\-.]\d{4}(?![\w\-])",
        None,
        (_DIGITS, ("+", "(", "-", ".")),  # the three forms: a +, a (, or digits around a dash or dot
    ),
}
# Order matters: secrets first (a token may contain digits or an @), cards before phones.
_ORDER = ("bearer_token", "api_key", "email", "card_number", "phone")


def _contains(groups: tuple[tuple[str, ...], ...]) -> Callable[[str], bool]:
    """A test that a text holds one string of every group (plain loops: cheaper than any() here)."""
    def check(text: str) -> bool:
        for group in groups:
            for needle in group:
                if needle in text:
                    break
            else:
                return False
        return True

    return check


class CustomPattern(StrictConfig):
    """A regex; if it has a group named `secret`, only that group is masked."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.\-]+$")
    regex: str

    @field_validator("regex")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"invalid regular expression: {exc}") from None
        return value


class RedactionConfig(StrictConfig):
    builtin: list[str] = Field(default_factory=lambda: list(_ORDER))
    patterns: list[CustomPattern] = Field(default_factory=list)
    replacement: str = "[REDACTED:{name}]"
    secret_keys: list[str] = Field(default_factory=list)
    attributes: list[str] = Field(default_factory=lambda: list(CONTENT_KEYS))
    all_attributes: bool = True
    events: bool = True
    resource: bool = True

    @field_validator("builtin")
    @classmethod
    def _known(cls, value: list[str]) -> list[str]:
        unknown = [name for name in value if name not in BUILTIN]
        if unknown:
            raise ValueError(f"unknown detector(s) {unknown}; valid: {', '.join(_ORDER)}")
        return value

    @field_validator("replacement")
    @classmethod
    def _safe(cls, value: str) -> str:
        if '"' in value or "\\" in value:
            raise ValueError("the replacement must not contain quotes or backslashes (it is written into JSON text)")
        return value


# What replaces a value that is a secret by its key, and binary that cannot be inspected.
SECRET, BINARY = "secret", "bytes"
_NESTED = frozenset({"array_value", "kvlist_value", "bytes_value"})
# Short values repeat (names, enums, statements, URLs): each distinct one is masked once, then
# looked up. Bounded: a client sending only distinct values empties it now and then.
_MEMO_MAX_CHARS, _MEMO_MAX_ENTRIES = 256, 20_000


class Redactor:
    """The masking itself, usable without a pipeline."""

    def __init__(self, config: RedactionConfig):
        self.secret_replacement = config.replacement.replace("{name}", SECRET)
        self.binary_replacement = config.replacement.replace("{name}", BINARY)
        self._extra_secret_keys = frozenset(key_name(k) for k in config.secret_keys)
        self._secret_cache: dict[str, bool] = {}
        self._memo: dict[str, tuple[str, tuple[tuple[str, int], ...]]] = {}
        # (name, pattern, check, replacement, a search for the strings every match contains, or None)
        self.rules: list[tuple[str, re.Pattern, Callable[[str], bool] | None, str, Callable | None]] = []
        for name in sorted(set(config.builtin), key=_ORDER.index):
            regex, check, needed = BUILTIN[name]
            self.rules.append((name, re.compile(regex), check, config.replacement.replace("{name}", name),
                               _contains(needed)))
        for custom in config.patterns:
            self.rules.append((custom.name, re.compile(custom.regex), None,
                               config.replacement.replace("{name}", custom.name), None))

    def redact(self, text: str, found: dict[str, int]) -> str:
        """`text` masked; `found` counts what was masked, by detector name."""
        if len(text) > _MEMO_MAX_CHARS:
            return self._redact(text, found)
        hit = self._memo.get(text)
        if hit is None:
            counts: dict[str, int] = {}
            hit = (self._redact(text, counts), tuple(counts.items()))
            if len(self._memo) >= _MEMO_MAX_ENTRIES:
                self._memo.clear()
            self._memo[text] = hit
        for name, count in hit[1]:
            found[name] = found.get(name, 0) + count
        return hit[0]

    def _redact(self, text: str, found: dict[str, int]) -> str:
        lowered = text.lower() if text.isascii() else None
        for name, pattern, check, replacement, needed in self.rules:
            if needed is not None and lowered is not None and not needed(lowered):
                continue  # no match possible: skip the regex
            def replace(match: re.Match, name=name, check=check, replacement=replacement) -> str:
                if check is not None and not check(match.group(0)):
                    return match.group(0)
                found[name] = found.get(name, 0) + 1
                if match.re.groupindex.get("secret") and match.group("secret") is not None:
                    # mask the value only: `api_key="..."` keeps its key and quotes (valid JSON)
                    start, end = match.start("secret") - match.start(), match.end("secret") - match.start()
                    return match.group(0)[:start] + replacement + match.group(0)[end:]
                return replacement

            text = pattern.sub(replace, text)
        return text

    def is_secret_key(self, key: str) -> bool:
        known = self._secret_cache.get(key)
        if known is None:
            if len(self._secret_cache) > 10_000:  # keys are few in practice; a hostile client's are not
                self._secret_cache.clear()
            known = self._secret_cache[key] = is_secret_key(key, self._extra_secret_keys)
        return known

    def redact_attributes(self, attributes, found: dict[str, int], scan: Callable[[str], bool] | None = None) -> None:
        """Mask an OTLP attribute list in place: secrets by key, then the values of the keys `scan`
        accepts (all when None) by content. The hot loop of redaction: a string is handled inline."""
        cache = self._secret_cache
        for kv in attributes:
            key = kv.key
            secret = cache.get(key)
            if secret is None:
                secret = self.is_secret_key(key)
            if secret:
                self.mask_secret(kv.value, found)
                continue
            if scan is not None and not scan(key):
                continue
            value = kv.value
            kind = value.WhichOneof("value")
            if kind == "string_value":
                text = value.string_value
                masked = self.redact(text, found)
                if masked is not text and masked != text:
                    value.string_value = masked
            elif kind in _NESTED:
                self.redact_value(value, found)

    def mask_secret(self, value, found: dict[str, int]) -> None:
        """Replace a whole AnyValue (any type, any depth) that holds a secret; empty stays empty."""
        kind = value.WhichOneof("value")
        if kind is None or (kind == "string_value" and not value.string_value):
            return
        value.string_value = self.secret_replacement  # setting one member of the oneof clears the rest
        found[SECRET] = found.get(SECRET, 0) + 1

    def redact_value(self, value, found: dict[str, int]) -> None:
        """Mask string (and bytes) leaves of an OTLP AnyValue in place."""
        kind = value.WhichOneof("value")
        if kind == "string_value":
            text = value.string_value
            masked = self.redact(text, found)
            if masked is not text and masked != text:
                value.string_value = masked
        elif kind == "array_value":
            for item in value.array_value.values:
                self.redact_value(item, found)
        elif kind == "kvlist_value":
            self.redact_attributes(value.kvlist_value.values, found)
        elif kind == "bytes_value":
            self._redact_bytes(value, found)

    def _redact_bytes(self, value, found: dict[str, int]) -> None:
        raw = value.bytes_value
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            value.string_value = self.binary_replacement
            found[BINARY] = found.get(BINARY, 0) + 1
            return
        masked = self.redact(text, found)
        if masked != text:
            value.bytes_value = masked.encode("utf-8")


class RedactionProcessor(Processor):
    def __init__(self, component_id: ComponentId, config: RedactionConfig, next_consumer: Consumer):
        super().__init__(component_id, config, next_consumer)
        self.redactor = Redactor(config)
        self._keys = tuple(config.attributes)
        # which attribute values are scanned by content (None: all of them)
        self._scan = None if config.all_attributes else (lambda key: key.startswith(self._keys))

    def process(self, traces: Traces) -> Traces:
        traces.edit_if(self._redact)  # a batch with nothing to mask keeps its bytes (no re-serialization)
        return traces

    def _redact(self, message) -> bool:
        """Masks the message in place; True if anything was masked."""
        cfg, redactor, scan = self.config, self.redactor, self._scan
        found: dict[str, int] = {}
        for rs in message.resource_spans:
            if cfg.resource:
                redactor.redact_attributes(rs.resource.attributes, found, scan)
            for ss in rs.scope_spans:
                redactor.redact_attributes(ss.scope.attributes, found, scan)
                for span in ss.spans:
                    if self._span(span, scan):
                        found["span"] = 1
        return bool(found)

    def _span(self, span, scan) -> bool:
        cfg, redactor = self.config, self.redactor
        found: dict[str, int] = {}
        redactor.redact_attributes(span.attributes, found, scan)
        if cfg.all_attributes and span.status.message:
            masked = redactor.redact(span.status.message, found)
            if masked != span.status.message:
                span.status.message = masked
        if cfg.events:
            for event in span.events:
                redactor.redact_attributes(event.attributes, found, None if event.name.startswith("gen_ai.") else scan)
        for link in span.links:
            redactor.redact_attributes(link.attributes, found, scan)
        if found:
            span.attributes.add(key="redaction.masked.count").value.int_value = sum(found.values())
            span.attributes.add(key="redaction.masked.types").value.string_value = ",".join(sorted(found))
        return bool(found)


class LogsRedactionProcessor(RedactionProcessor):
    """The same masking in a logs pipeline: resource and scope attributes, and in every record its
    attributes and body (a score's explanation may quote what the user wrote). A record where
    something was masked gets `redaction.masked.count` / `redaction.masked.types` too."""

    def process(self, logs):
        logs.edit_if(self._redact)  # a batch with nothing to mask keeps its bytes
        return logs

    def _redact(self, message) -> bool:
        """Masks the message in place; True if anything was masked."""
        cfg, redactor, scan = self.config, self.redactor, self._scan
        masked = False
        for resource_logs in message.resource_logs:
            outer: dict[str, int] = {}
            if cfg.resource:
                redactor.redact_attributes(resource_logs.resource.attributes, outer, scan)
            for scope_logs in resource_logs.scope_logs:
                redactor.redact_attributes(scope_logs.scope.attributes, outer, scan)
                for record in scope_logs.log_records:
                    found: dict[str, int] = {}
                    redactor.redact_attributes(record.attributes, found, scan)
                    if cfg.all_attributes and record.HasField("body"):
                        redactor.redact_value(record.body, found)
                    if found:
                        record.attributes.add(key="redaction.masked.count").value.int_value = sum(found.values())
                        record.attributes.add(key="redaction.masked.types").value.string_value = ",".join(sorted(found))
                        masked = True
            masked = masked or bool(outer)
        return masked


factory = Factory("redaction", Kind.PROCESSOR, RedactionConfig, RedactionProcessor, signals=("traces", "logs"),
                  create_logs=LogsRedactionProcessor)
