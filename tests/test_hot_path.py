"""The hot-path shortcuts change nothing: each is checked against the plain path on the bench
workload (support/workload.py) and on random spans built to hit their edges (no timings here: see bench/micro.py)."""

from __future__ import annotations

import random
import struct

import pytest

from support.workload import make_request
from collector.component import ComponentId
from collector.pdata import Traces, set_any_value
from collector.receivers import validation
from semconv import genai_mapping as gm
from processors.genai_cost import GenAICostConfig, GenAICostProcessor
from processors.genai_normalizer import GenAINormalizerConfig, GenAINormalizerProcessor
from support.sinks import Sink

BOOK = GenAICostConfig().price_book()
NOW = 1_767_225_600_000_000_000
OPS = ["chat", "invoke_agent", "execute_tool", "Chat", " invoke_agent", "", "llm", "agent", "task", "custom_op",
       "embeddings", "retrieval", "INVOKE_AGENT", "workflow", "text_completion"]
WORDS = ["openai", "anthropic", "Azure", "unknown", "", "api.openai.com", "https://api.anthropic.com/v1", "gpt-4o",
         "claude-3-5-sonnet-20241022", "o3-mini", "1h", "priority"]
KEYS = sorted(gm.NORMALIZER_READ_KEYS) + list(gm.COST_ATTRIBUTES) + [
    "gen_ai.agent.name", "gen_ai.tool.name", "http.method", "foo", "llm.foo", "traceloop.x",
    "anthropic.cache_control.ttl", "gen_ai.anthropic.cache_ttl"]


class _RecordingDict(dict):
    def __init__(self, data):
        super().__init__(data)
        self.looked_up: set[str] = set()

    def get(self, key, default=None):
        self.looked_up.add(key)
        return super().get(key, default)

    def __getitem__(self, key):
        self.looked_up.add(key)
        return super().__getitem__(key)

    def __contains__(self, key):
        self.looked_up.add(key)
        return super().__contains__(key)


def _random_value(rng: random.Random):
    return rng.choice([
        lambda: rng.choice(OPS), lambda: rng.randint(-5, 5000), lambda: str(rng.randint(0, 5000)),
        lambda: rng.random() * 100, lambda: rng.choice([True, False]), lambda: [rng.choice(OPS)],
        lambda: rng.choice(WORDS), lambda: b"\x00\x01", lambda: {"a": 1}, lambda: [],
    ])()


def _random_genai_request(rng: random.Random) -> bytes:
    request = Traces().request
    trace_id = rng.getrandbits(128).to_bytes(16, "big")
    ids = [struct.pack(">Q", rng.getrandbits(64) | 1) for _ in range(10)]
    for _ in range(rng.randint(1, 3)):
        ss = request.resource_spans.add().scope_spans.add()
        for _ in range(rng.randint(1, 10)):
            span = ss.spans.add(trace_id=trace_id, span_id=rng.choice(ids), start_time_unix_nano=NOW,
                                name=rng.choice(["chat gpt-4o", "openai.chat", "completion", "Agent.run", "POST", ""]))
            if rng.random() < 0.7:
                span.parent_span_id = rng.choice(ids)
            agent_like = rng.random() < 0.3  # mostly settled operation names: the shortcut's case
            for _ in range(rng.randint(0, 8)):
                key = rng.choice(["gen_ai.operation.name", "gen_ai.agent.name", "http.method",
                                  "gen_ai.usage.cost_usd", "foo"] if agent_like else KEYS)
                value = rng.choice(OPS) if key == "gen_ai.operation.name" and rng.random() < 0.8 else _random_value(rng)
                set_any_value(span.attributes.add(key=key).value, value)
    return request.SerializeToString()


def _genai_batches() -> list[bytes]:
    rng = random.Random(7)
    return [make_request(600, seed=1).SerializeToString()] + [_random_genai_request(rng) for _ in range(300)]


def test_normalizer_read_keys_cover_every_lookup():
    rng = random.Random(3)
    for _ in range(2000):
        attrs = _RecordingDict({rng.choice(KEYS): _random_value(rng) for _ in range(rng.randint(1, 10))})
        gm.normalize_attributes(attrs, rng.choice(["chat x", "", "openai.embeddings"]), drop_originals=rng.random() < 0.5)
        assert attrs.looked_up <= gm.NORMALIZER_READ_KEYS, attrs.looked_up - gm.NORMALIZER_READ_KEYS


def test_normalize_changes_rebuild_normalize_attributes():
    """The processor's diff (`normalize_changes`, which compares only the keys the normaliser wrote)
    turns a span's attributes into exactly `normalize_attributes`' dict, value types included."""
    rng = random.Random(11)
    changed = 0
    for _ in range(3000):
        attrs = {rng.choice(KEYS): _random_value(rng) for _ in range(rng.randint(1, 10))}
        name, drop = rng.choice(["chat x", "", "openai.embeddings"]), rng.random() < 0.5
        try:
            want = gm.normalize_attributes(attrs, name, drop_originals=drop)
        except TypeError:  # an unhashable operation name: the processor marks such a span instead
            with pytest.raises(TypeError):
                gm.normalize_changes(attrs, name, drop_originals=drop)
            continue
        to_set, remove = gm.normalize_changes(attrs, name, drop_originals=drop)
        rebuilt = {k: v for k, v in attrs.items() if k not in remove}
        rebuilt.update(to_set)
        assert rebuilt == want and all(type(rebuilt[k]) is type(want[k]) for k in want)
        assert not (to_set.keys() & remove)
        changed += bool(to_set or remove)
    assert changed > 1000


def test_settled_operation_spans_normalise_to_themselves():
    rng = random.Random(5)
    checked = 0
    for _ in range(3000):
        attrs = {rng.choice(["gen_ai.operation.name", "gen_ai.agent.name", "foo", rng.choice(KEYS)]): _random_value(rng)
                 for _ in range(rng.randint(1, 4))}
        if gm.reads_only_operation(attrs) and gm.is_settled_operation(attrs["gen_ai.operation.name"]):
            checked += 1
            for drop in (False, True):
                assert gm.normalize_attributes(attrs, "chat gpt-4o", drop_originals=drop) == attrs
    assert checked > 100


@pytest.mark.parametrize("drop", [False, True])
def test_chained_normalizer_and_cost_equal_each_alone(drop):
    """The normaliser handing its dicts to the cost processor == each processor's own `process`."""
    for data in _genai_batches():
        alone_cost = GenAICostProcessor(ComponentId("genai_cost"), GenAICostConfig(), None, book=BOOK)
        alone_norm = GenAINormalizerProcessor(ComponentId("genai_normalizer"), GenAINormalizerConfig(drop_originals=drop), None)
        want = _outcome(lambda: alone_cost.process(alone_norm.process(Traces.from_protobuf(data))).to_protobuf())
        sink = Sink()
        cost = GenAICostProcessor(ComponentId("genai_cost"), GenAICostConfig(), sink, book=BOOK)
        chained = GenAINormalizerProcessor(ComponentId("genai_normalizer"), GenAINormalizerConfig(drop_originals=drop), cost)
        got = _outcome(lambda: chained.consume(Traces.from_protobuf(data)) or sink.traces.to_protobuf())
        assert got == want
        assert list(cost._parents.items()) == list(alone_cost._parents.items())


def _outcome(run):
    """The result, or the exception's type: a list-valued gen_ai.operation.name makes genai_cost
    raise (TypeError, unhashable) on either path; the shortcut must not change that either."""
    try:
        return run()
    except Exception as exc:  # noqa: BLE001
        return type(exc)


def _nested(rng: random.Random, depth: int, big: int):
    if depth == 0:
        return rng.choice(["x" * rng.choice([1, big]), 5, True, b"\x00" * rng.choice([1, big]), "é" * rng.choice([1, big // 2])])
    if rng.random() < 0.5:
        return [_nested(rng, depth - 1, big) for _ in range(rng.randint(0, 2))]
    return {f"k{i}": _nested(rng, depth - 1, big) for i in range(rng.randint(0, 2))}


def _random_attributes(rng: random.Random, attributes, big: int) -> None:
    for _ in range(rng.randint(0, 4)):
        value = rng.choice([lambda: "v" * rng.choice([0, 3, big, big + 1]), lambda: b"\x01" * rng.choice([0, big + 3]),
                            lambda: rng.randint(-2**63, 2**63 - 1), lambda: _nested(rng, rng.randint(0, 6), big)])()
        set_any_value(attributes.add(key=rng.choice(["a", "b", validation.REPAIRED_ATTRIBUTE])).value, value)


def _random_request(rng: random.Random, now: int) -> bytes:
    big = rng.choice([20, 100, 300])
    request = Traces().request
    for _ in range(rng.randint(1, 3)):
        rs = request.resource_spans.add()
        _random_attributes(rng, rs.resource.attributes, big)
        ss = rs.scope_spans.add()
        _random_attributes(rng, ss.scope.attributes, big)
        for _ in range(rng.randint(0, 6)):
            span = ss.spans.add(trace_id=rng.getrandbits(128).to_bytes(16, "big") or b"\x01" * 16,
                                span_id=struct.pack(">Q", rng.getrandbits(64) | 1), name="n" * rng.choice([0, 70, 300]),
                                start_time_unix_nano=rng.choice([0, now - 10**12, now + 10**15]),
                                end_time_unix_nano=rng.choice([0, now - 10**12 + 7, now + 10**15, now]))
            if rng.random() < 0.3:
                span.parent_span_id = rng.choice([b"\x01" * 8, b"\x02" * 3])
            _random_attributes(rng, span.attributes, big)
            for _ in range(rng.randint(0, 2)):
                _random_attributes(rng, span.events.add(name="e").attributes, big)
            for _ in range(rng.randint(0, 2)):
                _random_attributes(rng, span.links.add(trace_id=b"\x01" * 16, span_id=b"\x01" * 8).attributes, big)
    return request.SerializeToString()


@pytest.mark.parametrize("cfg", [
    validation.ValidationConfig(),
    validation.ValidationConfig(max_attribute_value_bytes=64, max_attribute_depth=3, max_span_name_bytes=64),
    validation.ValidationConfig(max_attribute_value_bytes=0, max_attribute_depth=1, max_span_name_bytes=0),
    validation.ValidationConfig(max_attribute_value_bytes=250, max_attribute_depth=5, max_span_name_bytes=200),
])
def test_validation_size_shortcut_changes_nothing(cfg, monkeypatch):
    """Skipping per-value size checks under a message that fits == checking every value."""
    now = NOW + 10**15
    monkeypatch.setattr(validation.time, "time_ns", lambda: now)
    rng = random.Random(11)
    batches = [make_request(600, seed=1).SerializeToString()] + [_random_request(rng, now) for _ in range(300)]
    fast = [(validation.sanitize(t, cfg), t.to_protobuf()) for t in map(Traces.from_protobuf, batches)]
    monkeypatch.setattr(validation, "_over", lambda message, limit: bool(limit))  # every value checked
    slow = [(validation.sanitize(t, cfg), t.to_protobuf()) for t in map(Traces.from_protobuf, batches)]
    assert fast == slow
