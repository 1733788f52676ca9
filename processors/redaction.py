"""`redaction` processor: mask personal data and secrets in captured message content before storage.

    processors:
      redaction:
        # What to mask: built-in detectors (all by default) and your own regexes.
        builtin: [email, phone, card_number, api_key, bearer_token]
        patterns:
          - {name: ssn, regex: '\\b\\d{3}-\\d{2}-\\d{4}\\b'}
          - {name: ticket, regex: 'TICKET-[0-9]+'}
        replacement: "[REDACTED:{name}]"
        # Where: attributes whose key starts with one of these (default: every GenAI dialect's
        # message-content keys), and event attributes of events named gen_ai.* (or all events'
        # attributes matching the keys). `all_attributes: true` scans every string attribute.
        attributes: [gen_ai.input.messages, gen_ai.output.messages, ...]
        all_attributes: false
        events: true
        resource: false          # scan resource attributes too (with all_attributes or matching keys)

Put it in the pipeline before anything that stores or forwards (i.e. before the exporters; after
memory_limiter). A span where something was masked gets `redaction.masked.count` (int) and
`redaction.masked.types` (e.g. "email,api_key"); the masked text is gone, not stored elsewhere.

Detectors: `email`; `phone` (international `+` numbers and the usual (555) 123-4567 / 555-123-4567
forms; bare digit runs are left alone, they are usually counts or ids); `card_number` (13-19 digits,
spaces/dashes allowed, Luhn-checked); `api_key` (OpenAI/Anthropic `sk-...`, AWS `AKIA...`, GitHub
`ghp_...`/`github_pat_...`, Slack `xox?-...`, Google `AIza...`, and `api_key=...`-style
assignments); `bearer_token` (`Bearer <token>` and JWTs). Nested array/map values are walked; JSON
text stays valid JSON because replacements contain no quotes or backslashes.
"""

from __future__ import annotations

import re
from typing import Callable

from pydantic import Field, field_validator

from collector.component import ComponentId, Consumer, Factory, Kind, Processor, StrictConfig
from collector.pdata import Traces
from instrumentation import genai_mapping as gm

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


# name -> (regex, optional check of the matched text, strings one of which the lower-cased text of
# every match contains). An ASCII text with none of them is not searched: the regexes are the cost
# of redaction. Other text always is (`re` folds case and reads digits beyond ASCII: "ſ" is "s",
# "٣" a digit).
_DIGITS = tuple("0123456789")
BUILTIN: dict[str, tuple[str, Callable[[str], bool] | None, tuple[str, ...]]] = {
    "bearer_token": (
        r"(?i)\bbearer\s+[A-Za-z0-9._~+/\-]{8,}=*"
        r"|\beyJ[A-Za-z0-9_\-]{5,}\.eyJ[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]*",
        None,
        ("bearer", "eyj"),
    ),
    "api_key": (
        r"\bsk-(?:ant-|proj-)?[A-Za-z0-9_\-]{16,}"
        r"|\bAKIA[0-9A-Z]{16}\b"
        r"|\bgh[pousr]_[A-Za-z0-9]{30,}"
        r"|\bgithub_pat_[A-Za-z0-9_]{30,}"
        r"|\bxox[abprs]-[A-Za-z0-9\-]{10,}"
        r"|\bAIza[0-9A-Za-z_\-]{35}"
        r"|(?i:\b(?:api[_\-]?key|access[_\-]?token|secret[_\-]?key|client[_\-]?secret|password)\b"
        r"[\s'\"\\]*[:=][\s'\"\\]*)(?P<secret>[A-Za-z0-9_\-./+]{8,})",
        None,
        ("sk-", "akia", "ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_", "xox", "aiza", "api", "access",
         "secret", "password"),
    ),
    "email": (r"\b[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}\b", None, ("@",)),
    "card_number": (
        r"(?<![\d\-])(?:\d[ \-]?){12,18}\d(?![\d\-])",
        lambda text: _luhn(re.sub(r"[ \-]", "", text)),
        _DIGITS,
    ),
    "phone": (
        r"(?<![\w+])\+\d{1,3}[ \-.]?(?:\(\d{1,4}\)[ \-.]?)?\d{2,4}(?:[ \-.]?\d{2,4}){1,3}(?!\w)"
        r"|(?<![\w(])\(\d{3}\)[ \-.]?\d{3}[ \-.]\d{4}(?!\w)"
        r"|(?<![\w\-.])\d{3}[\-.]\d{3}[\-.]\d{4}(?![\w\-])",
        None,
        _DIGITS,
    ),
}
# Order matters: secrets first (a token may contain digits or an @), cards before phones.
_ORDER = ("bearer_token", "api_key", "email", "card_number", "phone")


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
    attributes: list[str] = Field(default_factory=lambda: list(CONTENT_KEYS))
    all_attributes: bool = False
    events: bool = True
    resource: bool = False

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


class Redactor:
    """The masking itself, usable without a pipeline."""

    def __init__(self, config: RedactionConfig):
        # (name, pattern, check, replacement, a search for the strings every match contains, or None)
        self.rules: list[tuple[str, re.Pattern, Callable[[str], bool] | None, str, Callable | None]] = []
        for name in sorted(set(config.builtin), key=_ORDER.index):
            regex, check, needles = BUILTIN[name]
            self.rules.append((name, re.compile(regex), check, config.replacement.replace("{name}", name),
                               re.compile("|".join(map(re.escape, needles))).search))
        for custom in config.patterns:
            self.rules.append((custom.name, re.compile(custom.regex), None,
                               config.replacement.replace("{name}", custom.name), None))

    def redact(self, text: str, found: dict[str, int]) -> str:
        lowered = text.lower() if text.isascii() else None
        for name, pattern, check, replacement, needed in self.rules:
            if needed is not None and lowered is not None and needed(lowered) is None:
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

    def redact_value(self, value, found: dict[str, int]) -> None:
        """Mask string leaves of an OTLP AnyValue in place."""
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
            for kv in value.kvlist_value.values:
                self.redact_value(kv.value, found)


class RedactionProcessor(Processor):
    def __init__(self, component_id: ComponentId, config: RedactionConfig, next_consumer: Consumer):
        super().__init__(component_id, config, next_consumer)
        self.redactor = Redactor(config)
        self._keys = tuple(config.attributes)

    def _wanted(self, key: str) -> bool:
        return self.config.all_attributes or key.startswith(self._keys)

    def _attributes(self, attributes, found: dict[str, int], everything: bool = False) -> None:
        for kv in attributes:
            if everything or self._wanted(kv.key):
                self.redactor.redact_value(kv.value, found)

    def process(self, traces: Traces) -> Traces:
        if not self.redactor.rules:
            return traces
        for rs in traces.request.resource_spans:
            if self.config.resource:
                self._attributes(rs.resource.attributes, {})
            for ss in rs.scope_spans:
                for span in ss.spans:
                    found: dict[str, int] = {}
                    self._attributes(span.attributes, found)
                    if self.config.events:
                        for event in span.events:
                            self._attributes(event.attributes, found, everything=event.name.startswith("gen_ai."))
                    if found:
                        span.attributes.add(key="redaction.masked.count").value.int_value = sum(found.values())
                        span.attributes.add(key="redaction.masked.types").value.string_value = ",".join(sorted(found))
        return traces


factory = Factory("redaction", Kind.PROCESSOR, RedactionConfig, RedactionProcessor)
