"""Every GenAI name the product emits is current in the installed semantic-conventions package, or
recorded in `semconv` as newer than it (with its public source), as a proposal behind a switch, or
as the product's one documented contract key. A name the package deprecated fails here."""

from __future__ import annotations

import ast
import importlib.metadata
import re
from pathlib import Path

import pytest

import semconv
from semconv import genai_mapping as gm
from processors.genai_cost import GenAICostConfig, price_attributes, standard_cost

ROOT = Path(__file__).resolve().parent.parent


def _package_names() -> dict[str, str]:
    """{attribute name: 'current' | 'replaced:<new name>' | 'removed'} from the installed package's
    GenAI module, read from its docstrings (every GenAI constant there says "Moved to the GenAI
    repository": that is a move, not a deprecation of the name)."""
    from opentelemetry.semconv._incubating.attributes import gen_ai_attributes, openai_attributes

    out: dict[str, str] = {}
    for module in (gen_ai_attributes, openai_attributes):
        body = ast.parse(Path(module.__file__).read_text()).body
        for node, following in zip(body, body[1:] + [None]):
            if not (isinstance(node, ast.AnnAssign) and isinstance(node.value, ast.Constant)
                    and isinstance(node.value.value, str)):
                continue
            doc = following.value.value if (isinstance(following, ast.Expr) and isinstance(following.value, ast.Constant)) else ""
            replaced = re.search(r"Deprecated: Replaced by `([^`]+)`", str(doc))
            if replaced:
                out[node.value.value] = "replaced:" + replaced[1]
            elif re.search(r"Deprecated: (Removed|Use )", str(doc)):
                out[node.value.value] = "removed"
            else:
                out[node.value.value] = "current"
    return out


PACKAGE = _package_names()
DOCUMENTED = {**semconv.NEWER_THAN_PACKAGE, **semconv.PRODUCT_CONTRACT, **semconv.PROPOSED}


def _normaliser_output() -> set[str]:
    """Keys `normalize_attributes` writes, from spans in every dialect it reads."""
    written: set[str] = set()
    inputs = [{key: 7 for keys in semconv.TOKEN_ALIASES.values() for key in keys[i:i + 1]} for i in range(8)]
    inputs += [{key: "x" for keys in semconv.STRING_ALIASES.values() for key in keys[i:i + 1]} for i in range(5)]
    for attrs in inputs:
        for extra in ({"gen_ai.system": "openai"}, {"llm.provider": "anthropic"}, {"server.address": "api.openai.com"}):
            span = {**attrs, **extra, "openinference.span.kind": "LLM", "llm.model_name": "gpt-4o"}
            out = gm.normalize_attributes(span, "chat")
            written |= {key for key, value in out.items() if span.get(key) != value}
    return written


def _cost_output() -> set[str]:
    book = GenAICostConfig().price_book()
    attrs = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "anthropic", "gen_ai.request.model": "claude-sonnet-4-5",
             "gen_ai.usage.input_tokens": 10_000, "gen_ai.usage.output_tokens": 500,
             "gen_ai.usage.cache_read.input_tokens": 1_000, "gen_ai.usage.cache_write.input_tokens": 2_000,
             "gen_ai.usage.reasoning.output_tokens": 100, semconv.REQUEST_SERVICE_TIER: "batch"}
    priced = price_attributes(book, attrs, None)
    assert priced[semconv.COST_STATUS] == "priced"
    unpriced = price_attributes(book, {**attrs, "gen_ai.request.model": "no-such-model"}, None)
    return set(priced) | set(standard_cost(priced, attrs)) | set(unpriced)


def _instrumentation_output() -> set[str]:
    """`span.set_attribute("gen_ai....", ...)` names in the app-side instrumentation."""
    names = set()
    for path in (ROOT / "instrumentation").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "set_attribute"
                    and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
                names.add(node.args[0].value)
    return names


EMITTED = sorted(name for name in _normaliser_output() | _cost_output() | _instrumentation_output()
                 if name.startswith(("gen_ai.", "openai.")))


def test_the_installed_package_is_the_pinned_one():
    name, version = semconv.SEMCONV_PACKAGE.split("==")
    assert importlib.metadata.version(name) == version, "update semconv.SEMCONV_PACKAGE and re-check the names"
    assert len(PACKAGE) > 40 and PACKAGE["gen_ai.usage.input_tokens"] == "current"


def test_we_emit_what_we_think_we_emit():
    assert {semconv.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS, semconv.GEN_AI_PROVIDER_NAME, semconv.COST_USD,
            semconv.STANDARD_COST_AMOUNT} <= set(EMITTED)
    assert not any(name.startswith("gen_ai.usage.cost.") and name not in semconv.STANDARD_COST for name in EMITTED)


@pytest.mark.parametrize("name", EMITTED)
def test_every_emitted_name_is_current_or_documented(name):
    status = PACKAGE.get(name)
    assert name not in semconv.DEPRECATED, f"{name}: we list it as an earlier spelling of {semconv.DEPRECATED[name][0]}"
    if status is None:
        assert name in DOCUMENTED, f"{name} is unknown to {semconv.SEMCONV_PACKAGE} and not recorded in semconv"
    else:
        assert status == "current", f"{name} is deprecated in {semconv.SEMCONV_PACKAGE}: {status}"


@pytest.mark.parametrize("name,source", sorted(semconv.NEWER_THAN_PACKAGE.items()))
def test_names_newer_than_the_package_name_their_source(name, source):
    assert name not in PACKAGE, f"{semconv.SEMCONV_PACKAGE} knows {name} now: drop it from NEWER_THAN_PACKAGE"
    assert semconv.GENAI_REPO in source


@pytest.mark.parametrize("old,new_and_origin", sorted(semconv.DEPRECATED.items()))
def test_deprecated_spellings_agree_with_the_package(old, new_and_origin):
    new, origin = new_and_origin
    assert origin and new != old
    status = PACKAGE.get(old, "")
    if status.startswith("replaced:"):
        assert status == f"replaced:{new}", f"the package renames {old} to {status[9:]}, we to {new}"
    elif status == "current":  # still current in the package: renamed in the newer GenAI repository
        assert new in semconv.NEWER_THAN_PACKAGE, f"{old} is current in the package; why is it deprecated here?"
    assert old in semconv.read_order(new), "stored spans with the old name must still be read"


def test_cost_detail_left_the_standard_namespace():
    assert all(name.startswith("genaitrace.cost.") for name in semconv.COST_DETAIL)
    assert set(semconv.STANDARD_COST).isdisjoint(semconv.COST_ATTRIBUTES)  # a provider's amount is never removed
    assert {old for old in semconv.DEPRECATED if old.startswith("gen_ai.usage.cost.")} <= set(semconv.COST_ATTRIBUTES)


def test_every_operation_value_we_write_is_current_or_documented():
    """`gen_ai.operation.name` values the normaliser writes: the installed package's enum, or recorded
    as newer (with its source) or as no convention's (with the dialect it comes from)."""
    from opentelemetry.semconv._incubating.attributes.gen_ai_attributes import GenAiOperationNameValues

    package = {value.value for value in GenAiOperationNameValues}
    written = set(gm._OPERATION_VALUES.values()) | set(gm._SPAN_NAME_OPERATIONS.values())
    assert written, "no operation values found"
    undocumented = written - package - set(semconv.NEWER_OPERATIONS) - set(semconv.NON_STANDARD_OPERATIONS)
    assert not undocumented, undocumented
    assert not set(semconv.NEWER_OPERATIONS) & package, "recorded as newer but the package has it now"
    assert semconv.OP_PLAN in written and semconv.OP_INVOKE_WORKFLOW in package
    assert all(source for source in {**semconv.NEWER_OPERATIONS, **semconv.NON_STANDARD_OPERATIONS}.values())


def _metric_families() -> set[str]:
    from prometheus_client import CollectorRegistry

    from processors.genai_metrics import GenAIMetrics

    registry = CollectorRegistry()
    GenAIMetrics(registry).legacy_token_usage()
    return {family.name for family in registry.collect()}


def test_every_gen_ai_metric_emitted_is_a_current_or_newer_semconv_metric():
    """genai_metrics' gen_ai_* families are semconv metric names in Prometheus spelling: each is in
    the installed package (the deprecated token histogram only behind legacy_metric_names) or
    recorded in semconv.NEWER_METRICS with its source."""
    from opentelemetry.semconv._incubating.metrics import gen_ai_metrics

    from processors.genai_metrics import prometheus_name

    in_package = {v for k, v in vars(gen_ai_metrics).items() if k.startswith("GEN_AI_") and isinstance(v, str)}
    spelled = {prometheus_name(name, unit): name for name in in_package | set(semconv.NEWER_METRICS)
               for unit in ("", "s")}
    emitted = {name for name in _metric_families() if name.startswith("gen_ai_")}
    assert emitted and emitted <= set(spelled), sorted(emitted - set(spelled))
    assert {spelled[name] for name in emitted} - in_package <= set(semconv.NEWER_METRICS)


def test_dashboards_and_rules_read_only_metrics_the_collector_emits():
    """A metric renamed in genai_metrics (or semconv) cannot leave a panel or an alert reading a name
    nothing writes."""
    families = _metric_families()
    suffixes = ("_bucket", "_sum", "_count", "_total", "_created")
    sources = [*(ROOT / "deploy" / "grafana" / "dashboards").glob("*.json"),
               *(ROOT / "deploy" / "prometheus" / "rules").glob("*.y*ml")]
    read = {m for path in sources for m in re.findall(r"(?<![:\w])((?:gen_ai|llm|agent)_[a-z_]+)\b", path.read_text())}
    unknown = {m for m in read if not any(m == f or (m.startswith(f) and m[len(f):] in suffixes) for f in families)}
    # gen_ai_* / llm_* words that are labels, not metrics (recording rules are genai:..., skipped above).
    labels = {"gen_ai_operation_name", "gen_ai_provider_name", "gen_ai_request_model", "gen_ai_agent_name",
              "gen_ai_tool_name", "gen_ai_workflow_name", "gen_ai_token_type", "agent_name"}
    assert not unknown - labels, sorted(unknown - labels)
