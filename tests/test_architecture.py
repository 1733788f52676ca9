"""The project's import graph: no cycles, no upward imports, components are leaves (issue 16).

Every `.py` under the shipped packages is parsed (not imported), and every import counts: at the
top, inside a function (a lazy import hides a cycle, it does not remove it), under
`TYPE_CHECKING` (a type is a dependency too), and a module named as a string (`importlib`, the
registry's table). A string after `-m` starts a child process, and a logger's or tracer's name is
only a name, so those two are not imports.

`LAYERS` below is the one definition of the layering; ARCHITECTURE.md shows the same table. To
add a module, put it in a layer here: a module in no layer fails the test, so the table stays
whole.
"""

from __future__ import annotations

import ast
import fnmatch
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("collector", "processors", "instrumentation", "semconv", "genaitrace_check")

# (side, layer, module patterns), bottom layer first. A module may import modules of its own layer
# or of a layer below it, on its own side or a side it may use (SIDES); never one above it.
LAYERS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    # GenAI names and the dialect mapping: the only code the app side and the collector share.
    ("shared", "semconv", ("semconv", "semconv.*")),
    # The Rust wire stages' Python face: a leaf.
    ("collector", "native", ("collector.native",)),
    # Helpers that know nothing of spans or components.
    ("collector", "base", ("collector", "collector.errors", "collector.confighelpers", "collector.secretkeys",
                           "collector.ratelimited_log", "collector.memory", "collector.child_process",
                           "collector.httpserver", "collector.telemetry", "collector.acks")),
    # A batch: traces (bytes, message, rows + patches) and logs.
    ("collector", "pdata", ("collector.pdata", "collector.plogs", "collector.otlp_split")),
    # The component model: ids, StrictConfig, Factory, Host, the declared contracts (Protocols).
    ("collector", "component", ("collector.component",)),
    # What components are built from: the exporter helper and its queues, the store, scores.
    ("collector", "core", ("collector.persistent_queue", "collector.exporterhelper", "collector.storage",
                           "collector.storage.*", "collector.scores")),
    # Components (a module with a `factory`) and the private modules of their family.
    ("collector", "components", ("collector.receivers", "collector.receivers.*", "collector.exporters",
                                 "collector.exporters.*", "collector.extensions", "collector.extensions.*",
                                 "processors", "processors.*")),
    # The only module that knows every component (it imports them by name, on demand).
    ("collector", "registry", ("collector.registry",)),
    # The config loader (resolves component types through the registry, as otelcol's Factories)
    # and the pipeline wiring; ingest.py supervises the worker processes that service.py runs.
    ("collector", "service", ("collector.config", "collector.ingest", "collector.service")),
    # What the CLI's commands do, each command one module.
    ("collector", "commands", ("collector.render", "collector.query", "collector.sessions_cli",
                               "collector.budget", "collector.doctor", "collector.reprice", "collector.demo")),
    ("collector", "cli", ("collector.cli",)),
    # The application side.
    ("app", "instrumentation", ("instrumentation", "instrumentation.*")),
    # `genaitrace check`: a leaf, imports neither side.
    ("check", "genaitrace_check", ("genaitrace_check", "genaitrace_check.*")),
    # `genaitrace`: dispatches to the collector's CLI or to `genaitrace check`.
    ("entry", "entry", ("collector.entry",)),
)

# Which sides a side may import, besides its own.
SIDES: dict[str, frozenset[str]] = {
    "shared": frozenset(),
    "collector": frozenset({"shared"}),
    "app": frozenset({"shared"}),
    "check": frozenset(),
    "entry": frozenset({"collector", "check"}),
}

# The leaves: they import no module of the project.
LEAVES = ("collector.native", "semconv")

# Only this module may import a component module (one with a module-level `factory`).
REGISTRY = "collector.registry"


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    path: str
    line: int
    how: str  # "top", "lazy" (inside a function or class), "type" (TYPE_CHECKING), "string"

    def __str__(self) -> str:
        how = "" if self.how == "top" else f" [{self.how}]"
        return f"{self.path}:{self.line}: {self.source} imports {self.target}{how}"


# ----------------------------------------------------------------------------- the graph
def project_modules(root: Path, packages: tuple[str, ...] = PACKAGES) -> dict[str, Path]:
    modules: dict[str, Path] = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The project module an imported name lives in (`a.b.C` -> `a.b`), or None if not ours."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def _absolute(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


class _ImportVisitor(ast.NodeVisitor):
    """Collects (imported name, line, how) from one module, wherever the import statement is."""

    NAME_ONLY_CALLS = {"getLogger", "get_tracer", "get_meter", "get_logger"}

    def __init__(self, module: str, is_package: bool, modules: dict[str, Path]):
        self.module, self.is_package, self.modules = module, is_package, modules
        self.found: list[tuple[str, int, str]] = []
        self._depth = 0  # inside a function or class body
        self._type_checking = 0
        self._not_imports: set[int] = set()  # id() of string constants that are names, not imports

    def _how(self) -> str:
        return "type" if self._type_checking else "lazy" if self._depth else "top"

    def _nested(self, node: ast.AST) -> None:
        self._depth += 1
        self.generic_visit(node)
        self._depth -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = visit_Lambda = _nested

    def visit_If(self, node: ast.If) -> None:
        test = node.test
        if (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
                isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"):
            self._type_checking += 1
            for child in node.body:
                self.visit(child)
            self._type_checking -= 1
            for child in node.orelse:
                self.visit(child)
        else:
            self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self.found.append((alias.name, node.lineno, self._how()))

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        base = _absolute(self.module, self.is_package, node)
        for alias in node.names:
            submodule = f"{base}.{alias.name}"
            self.found.append((submodule if submodule in self.modules else base, node.lineno, self._how()))

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
        if name in self.NAME_ONLY_CALLS:
            self._not_imports.update(id(arg) for arg in node.args)
        self.generic_visit(node)

    def visit_List(self, node: ast.List | ast.Tuple) -> None:
        for before, after in zip(node.elts, node.elts[1:]):
            if isinstance(before, ast.Constant) and before.value == "-m":
                self._not_imports.add(id(after))  # `python -m module`: a child process
        self.generic_visit(node)

    visit_Tuple = visit_List

    def visit_Constant(self, node: ast.Constant) -> None:
        # A dotted string naming one of our modules is an import by name (importlib, the registry).
        if (isinstance(node.value, str) and "." in node.value and node.value in self.modules
                and id(node) not in self._not_imports):
            self.found.append((node.value, node.lineno, "string"))


def import_edges(root: Path, packages: tuple[str, ...] = PACKAGES) -> tuple[dict[str, Path], list[Edge]]:
    modules = project_modules(root, packages)
    edges: dict[Edge, None] = {}  # one per statement and target (`from m import a, b` is one edge)
    for module, path in modules.items():
        visitor = _ImportVisitor(module, path.name == "__init__.py", modules)
        visitor.visit(ast.parse(path.read_text(), str(path)))
        for name, line, how in visitor.found:
            target = _resolve(name, modules)
            if target is not None and target != module:
                edges[Edge(module, target, str(path.relative_to(root)), line, how)] = None
    return modules, list(edges)


def component_modules(modules: dict[str, Path]) -> set[str]:
    """Modules that define a component: a module-level `factory = ...`."""
    found = set()
    for module, path in modules.items():
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                if any(isinstance(t, ast.Name) and t.id == "factory" for t in targets):
                    found.add(module)
    return found


# ----------------------------------------------------------------------------- the checks
def find_cycles(edges: list[Edge]) -> list[list[Edge]]:
    """One cycle (as its edges) per strongly connected component of more than one module."""
    graph: dict[str, dict[str, Edge]] = {}
    for edge in edges:
        graph.setdefault(edge.source, {}).setdefault(edge.target, edge)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def connect(node: str) -> None:  # Tarjan's algorithm; the graph is small enough to recurse
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in graph.get(node, {}):
            if succ not in index:
                connect(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(component)

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return [_one_cycle(graph, component) for component in components]


def _one_cycle(graph: dict[str, dict[str, Edge]], component: set[str]) -> list[Edge]:
    """A shortest cycle through the component's first module (breadth-first, inside the component)."""
    start = min(component)
    came_by: dict[str, Edge] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for succ, edge in sorted(graph.get(node, {}).items()):
                if succ == start:
                    path = [edge]
                    while path[0].source != start:
                        path.insert(0, came_by[path[0].source])
                    return path
                if succ in component and succ not in came_by:
                    came_by[succ] = edge
                    following.append(succ)
        frontier = following
    raise AssertionError(f"no cycle through {start}")  # cannot happen in a strongly connected component


def layer_of(module: str) -> tuple[int, str, str] | None:
    """(rank, side, layer name) of a module, or None if no layer claims it."""
    for rank, (side, name, patterns) in enumerate(LAYERS):
        if any(fnmatch.fnmatchcase(module, pattern) for pattern in patterns):
            return rank, side, name
    return None


def upward_edges(edges: list[Edge], layers=layer_of, sides: dict[str, frozenset[str]] = SIDES) -> list[str]:
    found = []
    for edge in edges:
        source, target = layers(edge.source), layers(edge.target)
        if source is None or target is None:
            continue  # reported by the unassigned-module check
        if target[1] != source[1] and target[1] not in sides[source[1]]:
            found.append(f"{edge}: the {source[1]} side may not import the {target[1]} side")
        elif target[0] > source[0]:
            found.append(f"{edge}: upward, from layer {source[2]!r} to layer {target[2]!r}")
    return found


def _format_cycle(cycle: list[Edge]) -> str:
    chain = " -> ".join([cycle[0].source] + [edge.target for edge in cycle])
    return chain + "\n" + "\n".join(f"      {edge}" for edge in cycle)


# ----------------------------------------------------------------------------- the project's graph
MODULES, EDGES = import_edges(ROOT)


def test_every_module_is_in_one_layer():
    missing = sorted(m for m in MODULES if layer_of(m) is None)
    assert not missing, "modules in no layer (add each to LAYERS in tests/test_architecture.py):\n  " + "\n  ".join(missing)
    for module in MODULES:
        claims = [name for _, name, patterns in LAYERS if any(fnmatch.fnmatchcase(module, p) for p in patterns)]
        assert len(claims) == 1, f"{module} is claimed by layers {claims}"


def test_no_import_cycles():
    cycles = find_cycles(EDGES)
    report = "\n".join(f"  cycle {i + 1}: {_format_cycle(c)}" for i, c in enumerate(cycles))
    print(f"{len(MODULES)} modules, {len({(e.source, e.target) for e in EDGES})} import edges, {len(cycles)} cycles")
    assert not cycles, f"{len(cycles)} import cycle(s):\n{report}"


def test_no_upward_imports():
    upward = upward_edges(EDGES)
    assert not upward, f"{len(upward)} upward import(s):\n  " + "\n  ".join(upward)


def test_leaves_import_nothing_of_the_project():
    imports = [str(e) for e in EDGES if any(e.source == leaf or e.source.startswith(leaf + ".") for leaf in LEAVES)
               and not any(e.target == leaf or e.target.startswith(leaf + ".") for leaf in LEAVES)]
    assert not imports, "a leaf imports the project:\n  " + "\n  ".join(imports)


def test_only_the_registry_imports_components():
    components = component_modules(MODULES)
    assert len(components) >= 10, components  # the check below must have something to check
    foreign = [str(e) for e in EDGES if e.target in components and e.source != REGISTRY]
    assert not foreign, "a component is imported by something other than the registry:\n  " + "\n  ".join(foreign)
    registered = {e.target for e in EDGES if e.source == REGISTRY}
    assert components <= registered, f"components the registry does not list: {sorted(components - registered)}"


def test_architecture_md_shows_the_same_layers():
    """ARCHITECTURE.md's layer table lists LAYERS' sides and layers in the same order."""
    rows = [line.split("|")[1:3] for line in (ROOT / "ARCHITECTURE.md").read_text().splitlines()
            if line.startswith("| ") and line.count("|") == 4]
    shown = [(side.strip(), layer.strip()) for side, layer in rows if side.strip() not in ("side", "---")]
    assert shown == [(side, name) for side, name, _ in LAYERS]


def test_the_collector_runs_without_the_app_side():
    """The graph is read from source; this imports for real, in a fresh interpreter: the CLI, the
    service and every registered component load without `instrumentation` being importable."""
    script = (
        "import sys\n"
        "class Refuse:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'instrumentation' or name.startswith('instrumentation.'):\n"
        "            raise ImportError('the collector imported ' + name)\n"
        "sys.meta_path.insert(0, Refuse())\n"
        "import collector.cli, collector.service, collector.demo, collector.reprice\n"
        "from collector import registry\n"
        "from collector.component import Kind\n"
        "for kind in Kind:\n"
        "    for type_ in registry.types(kind):\n"
        "        registry.factory(kind, type_)\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-3000:]


# ----------------------------------------------------------------------------- the checker can fail
def _edges(*pairs: tuple[str, str]) -> list[Edge]:
    return [Edge(a, b, f"{a}.py", 1, "top") for a, b in pairs]


def test_self_check_finds_a_cycle_and_prints_it():
    cycles = find_cycles(_edges(("a", "b"), ("b", "c"), ("c", "a"), ("d", "a"), ("e", "e2")))
    assert len(cycles) == 1
    assert _format_cycle(cycles[0]).splitlines()[0] == "a -> b -> c -> a"
    assert find_cycles(_edges(("a", "b"), ("b", "c"), ("d", "a"))) == []
    two = find_cycles(_edges(("x", "y"), ("y", "x"), ("p", "q"), ("q", "r"), ("r", "p")))
    assert sorted(_format_cycle(c).splitlines()[0] for c in two) == ["p -> q -> r -> p", "x -> y -> x"]


def test_self_check_finds_upward_and_cross_side_imports():
    ranks = {"low": (0, "collector", "low"), "high": (1, "collector", "high"), "app": (2, "app", "app"),
             "shared": (0, "shared", "shared")}
    found = upward_edges(_edges(("high", "low"), ("low", "high"), ("app", "shared"), ("low", "app")),
                         layers=ranks.get, sides=SIDES)
    assert len(found) == 2
    assert "low imports high: upward, from layer 'low' to layer 'high'" in found[0]
    assert "the collector side may not import the app side" in found[1]


def test_self_check_sees_lazy_relative_type_and_string_imports(tmp_path):
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("from . import leaf\n")
    (package / "sub" / "leaf.py").write_text("import logging\nlog = logging.getLogger('pkg.top')\n")
    (package / "top.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from pkg.typed import T\n"
        "def later():\n"
        "    from .sub.leaf import log\n"
        "    import subprocess, sys\n"
        "    subprocess.run([sys.executable, '-m', 'pkg.child'])\n"
        "    return log\n"
        "TABLE = {'x': 'pkg.named'}\n"
    )
    for name in ("typed", "named", "child"):
        (package / f"{name}.py").write_text("")
    _, edges = import_edges(tmp_path, ("pkg",))
    seen = {(e.source, e.target, e.how) for e in edges}
    assert seen == {
        ("pkg.sub", "pkg.sub.leaf", "top"),
        ("pkg.top", "pkg.typed", "type"),
        ("pkg.top", "pkg.sub.leaf", "lazy"),
        ("pkg.top", "pkg.named", "string"),
    }
    (package / "sub" / "leaf.py").write_text("def f():\n    from pkg import top\n")
    _, edges = import_edges(tmp_path, ("pkg",))
    assert [_format_cycle(c).splitlines()[0] for c in find_cycles(edges)] == ["pkg.sub.leaf -> pkg.top -> pkg.sub.leaf"]
