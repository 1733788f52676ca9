"""`[tool.genaitrace.check]` in pyproject.toml, read as ruff reads `[tool.ruff]`.

    [tool.genaitrace.check]
    select = ["GT101", "GT102"]            # default: every rule
    ignore = ["GT106"]
    per-file-ignores = {"scripts/*" = ["GT102"]}
    exclude = ["migrations"]               # added to the defaults (.venv, build, ...)
    instrumented = ["litellm", "openai", "anthropic", "crewai", "cohere"]   # SDKs with an instrumentor
                                           # (default: what the project's dependencies instrument)
    disabled-instrumentations = []         # as OTEL_PYTHON_DISABLED_INSTRUMENTATIONS in deployment
    capture-allowed = ["examples/debug_*.py"]
    allow-tracing-overrides = ["tests/*", "conftest.py"]
    bootstrap = "auto"                     # "init" | "opentelemetry-instrument" | "auto"
    baseline = ".genaitrace-baseline.json"
"""

from __future__ import annotations

import fnmatch
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from genaitrace_check.catalog import DEFAULT_INSTRUMENTED, INSTRUMENTOR_DISTRIBUTIONS
from genaitrace_check.rules import RULES

DEFAULT_EXCLUDE = (".git", ".venv", "venv", ".tox", ".nox", "build", "dist", "node_modules", "__pycache__",
                   ".mypy_cache", ".pytest_cache", ".eggs", "site-packages")
BOOTSTRAP_MODES = ("auto", "init", "opentelemetry-instrument")


class ConfigError(Exception):
    pass


@dataclass
class CheckConfig:
    root: Path
    select: set[str] = field(default_factory=lambda: set(RULES))
    per_file_ignores: dict[str, set[str]] = field(default_factory=dict)
    exclude: tuple[str, ...] = DEFAULT_EXCLUDE
    instrumented: set[str] = field(default_factory=lambda: set(DEFAULT_INSTRUMENTED))
    disabled_instrumentations: set[str] = field(default_factory=set)
    capture_allowed: tuple[str, ...] = ()
    allow_tracing_overrides: tuple[str, ...] = ("tests/*", "test_*.py", "*_test.py", "conftest.py")
    bootstrap: str = "auto"
    baseline: str | None = None
    scripts: dict[str, str] = field(default_factory=dict)  # [project.scripts]: name -> "module:function"

    def rules_for(self, relpath: str) -> set[str]:
        rules = set(self.select)
        for pattern, ignored in self.per_file_ignores.items():
            if matches(relpath, pattern):
                rules -= ignored
        return rules

    def excluded(self, relpath: str) -> bool:
        parts = Path(relpath).parts
        return any(part in self.exclude for part in parts) or any(matches(relpath, p) for p in self.exclude)


def matches(relpath: str, pattern: str) -> bool:
    """Glob as ruff's per-file-ignores: against the path relative to the root, or its file name."""
    return fnmatch.fnmatch(relpath, pattern) or fnmatch.fnmatch(Path(relpath).name, pattern) \
        or fnmatch.fnmatch(relpath, pattern.rstrip("/") + "/*")


def find_root(start: Path) -> Path:
    for folder in (start, *start.parents):
        if (folder / "pyproject.toml").is_file() or (folder / ".git").exists():
            return folder
    return start


def _rule_ids(value, key: str) -> set[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"[tool.genaitrace.check] {key}: expected a list of rule ids")
    ids = {v.upper() for v in value}
    expanded = set()
    for rule_id in ids:
        chosen = {r for r in RULES if r.startswith(rule_id)}  # "GT1" selects every GT1xx, as in ruff
        if not chosen:
            raise ConfigError(f"[tool.genaitrace.check] {key}: unknown rule {rule_id}; known: {', '.join(sorted(RULES))}")
        expanded |= chosen
    return expanded


def _strings(value, key: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"[tool.genaitrace.check] {key}: expected a list of strings")
    return tuple(value)


def load_config(root: Path, select: list[str] | None = None, ignore: list[str] | None = None) -> CheckConfig:
    config = CheckConfig(root=root)
    pyproject = root / "pyproject.toml"
    table: dict = {}
    if pyproject.is_file():
        try:
            data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{pyproject}: {exc}") from exc
        table = data.get("tool", {}).get("genaitrace", {}).get("check", {})
        config.scripts = {k: v for k, v in data.get("project", {}).get("scripts", {}).items() if isinstance(v, str)}
    else:
        data = {}
    declared = instrumented_by(declared_requirements(root, data))
    if declared:
        config.instrumented = declared
    _apply(config, table)
    if select:
        config.select = _rule_ids(select, "--select")
    if ignore:
        config.select -= _rule_ids(ignore, "--ignore")
    return config


_REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?")
REQUIREMENT_FILES = ("requirements*.txt", "requirements*.in", "requirements/*.txt", "requirements/*.in")


def declared_requirements(root: Path, pyproject: dict) -> list[str]:
    """The project's dependency specifiers: pyproject's dependencies, optional dependencies and
    dependency groups, and its requirements files (only their requirement lines)."""
    project = pyproject.get("project", {})
    found = list(project.get("dependencies", []))
    for group in (*project.get("optional-dependencies", {}).values(), *pyproject.get("dependency-groups", {}).values()):
        found += [item for item in group if isinstance(item, str)]
    for pattern in REQUIREMENT_FILES:
        for path in sorted(root.glob(pattern)):
            try:
                lines = path.read_text(encoding="utf-8").splitlines()
            except (OSError, UnicodeDecodeError):
                continue
            found += [line for line in lines if line.strip() and not line.lstrip().startswith(("#", "-"))]
    return found


def instrumented_by(requirements: list[str]) -> set[str]:
    """The libraries the declared instrumentors trace (empty when the project declares none)."""
    covered: set[str] = set()
    for requirement in requirements:
        match = _REQUIREMENT.match(requirement) if isinstance(requirement, str) else None
        if not match:
            continue
        name = re.sub(r"[-_.]+", "-", match.group(1)).lower()  # PEP 503 normalisation
        extras = {e.strip().lower() for e in (match.group(2) or "[]")[1:-1].split(",") if e.strip()}
        keys = [name] + [f"{name}[{extra}]" for extra in extras]
        for key in keys:
            covered |= set(INSTRUMENTOR_DISTRIBUTIONS.get(key, ()))
    return covered


def _apply(config: CheckConfig, table: dict) -> None:
    known = {"select", "ignore", "per-file-ignores", "exclude", "extend-exclude", "instrumented",
             "extend-instrumented", "disabled-instrumentations", "capture-allowed", "allow-tracing-overrides",
             "bootstrap", "baseline"}
    unknown = sorted(set(table) - known)
    if unknown:
        raise ConfigError(f"[tool.genaitrace.check]: unknown key {unknown[0]!r}; valid keys: {', '.join(sorted(known))}")
    if "select" in table:
        config.select = _rule_ids(table["select"], "select")
    if "ignore" in table:
        config.select -= _rule_ids(table["ignore"], "ignore")
    for pattern, ids in (table.get("per-file-ignores") or {}).items():
        config.per_file_ignores[pattern] = _rule_ids(ids, f"per-file-ignores.{pattern}")
    if "exclude" in table:
        config.exclude = DEFAULT_EXCLUDE + _strings(table["exclude"], "exclude")
    if "extend-exclude" in table:
        config.exclude += _strings(table["extend-exclude"], "extend-exclude")
    if "instrumented" in table:
        config.instrumented = set(_strings(table["instrumented"], "instrumented"))
    if "extend-instrumented" in table:
        config.instrumented |= set(_strings(table["extend-instrumented"], "extend-instrumented"))
    if "disabled-instrumentations" in table:
        config.disabled_instrumentations = set(_strings(table["disabled-instrumentations"], "disabled-instrumentations"))
        config.instrumented -= config.disabled_instrumentations
    if "capture-allowed" in table:
        config.capture_allowed = _strings(table["capture-allowed"], "capture-allowed")
    if "allow-tracing-overrides" in table:
        config.allow_tracing_overrides = _strings(table["allow-tracing-overrides"], "allow-tracing-overrides")
    if "bootstrap" in table:
        if table["bootstrap"] not in BOOTSTRAP_MODES:
            raise ConfigError(f"[tool.genaitrace.check] bootstrap: {table['bootstrap']!r} is not one of {', '.join(BOOTSTRAP_MODES)}")
        config.bootstrap = table["bootstrap"]
    if "baseline" in table:
        if not isinstance(table["baseline"], str):
            raise ConfigError("[tool.genaitrace.check] baseline: expected a path")
        config.baseline = table["baseline"]
