"""The project's module graph in numbers, for any commit: modules, import edges, cycles, upward
and cross-side imports, components imported by something other than the registry, with a DOT file.

    .venv/bin/python bench/import_graph.py                 # the working tree
    .venv/bin/python bench/import_graph.py --rev 524e180   # a commit (git archive into a temp dir)
    .venv/bin/python bench/import_graph.py --rev A --rev B # side by side

The graph and the layer table are tests/test_architecture.py's (one definition): a commit is read
with today's LAYERS, so "upward" means upward by the layering the test enforces now. DOT files go
to bench/results/ (gitignored); `dot -Tsvg` draws them.
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tarfile
import tempfile
from io import BytesIO
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"


def _architecture():
    spec = importlib.util.spec_from_file_location("test_architecture", REPO / "tests" / "test_architecture.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _checkout(rev: str, into: Path) -> Path:
    archive = subprocess.run(["git", "-C", str(REPO), "archive", rev], capture_output=True, check=True).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into


def measure(arch, root: Path) -> dict:
    packages = tuple(p for p in arch.PACKAGES if (root / p).is_dir())
    modules, edges = arch.import_edges(root, packages)
    pairs = sorted({(e.source, e.target) for e in edges})
    cycles = arch.find_cycles(edges)
    upward = arch.upward_edges(edges)
    components = arch.component_modules(modules)
    return {
        "modules": len(modules),
        "edges": len(pairs),
        "lazy edges": len({(e.source, e.target) for e in edges if e.how == "lazy"}),
        "cycles": len(cycles),
        "modules in cycles": len(_in_cycles(pairs)),
        "upward/cross-side import pairs": len({line.split(": ", 1)[1] for line in upward}),
        "components imported outside the registry": len({(e.source, e.target) for e in edges
                                                         if e.target in components and e.source != arch.REGISTRY}),
        "unassigned modules": sum(1 for m in modules if arch.layer_of(m) is None),
        "_pairs": pairs,
        "_cycles": [arch._format_cycle(c).splitlines()[0] for c in cycles],
        "_upward": upward,
    }


def _in_cycles(pairs: list[tuple[str, str]]) -> set[str]:
    """Modules from which some path of imports leads back to themselves."""
    graph: dict[str, set[str]] = {}
    for source, target in pairs:
        graph.setdefault(source, set()).add(target)
    found = set()
    for start in graph:
        seen, frontier = set(), list(graph[start])
        while frontier:
            node = frontier.pop()
            if node == start:
                found.add(start)
                break
            if node not in seen:
                seen.add(node)
                frontier.extend(graph.get(node, ()))
    return found


def write_dot(name: str, result: dict, arch) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"import_graph_{name}.dot"
    in_cycle = _in_cycles(result["_pairs"])
    lines = ["digraph imports {", "  rankdir=BT; node [shape=box, fontsize=10];"]
    by_layer: dict[str, list[str]] = {}
    for source, target in result["_pairs"]:
        for module in (source, target):
            layer = arch.layer_of(module)
            by_layer.setdefault(layer[2] if layer else "(none)", []).append(module)
    for index, (layer, members) in enumerate(sorted(by_layer.items())):
        lines.append(f'  subgraph cluster_{index} {{ label="{layer}";')
        for module in sorted(set(members)):
            color = ', color=red' if module in in_cycle else ""
            lines.append(f'    "{module}" [label="{module}"{color}];')
        lines.append("  }")
    for source, target in result["_pairs"]:
        lines.append(f'  "{source}" -> "{target}";')
    lines.append("}")
    path.write_text("\n".join(lines) + "\n")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rev", action="append", default=[], help="a commit (repeat to compare); default: the working tree")
    parser.add_argument("--verbose", "-v", action="store_true", help="list the cycles and upward imports")
    args = parser.parse_args(argv)
    arch = _architecture()
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for rev in args.rev or ["working tree"]:
            root = REPO if rev == "working tree" else _checkout(rev, Path(tmp) / rev)
            results[rev] = measure(arch, root)
            print(f"{rev}: DOT in {write_dot(rev.replace(' ', '_'), results[rev], arch).relative_to(REPO)}")
    keys = [k for k in next(iter(results.values())) if not k.startswith("_")]
    width = max(map(len, keys))
    print(f"{'':{width}}  " + "  ".join(f"{rev[:12]:>12}" for rev in results))
    for key in keys:
        print(f"{key:{width}}  " + "  ".join(f"{r[key]:>12}" for r in results.values()))
    if args.verbose:
        for rev, result in results.items():
            print(f"\n{rev}: cycles")
            print("\n".join(f"  {c}" for c in result["_cycles"]) or "  none")
            print(f"{rev}: upward / cross-side imports")
            print("\n".join(f"  {u}" for u in result["_upward"]) or "  none")
    return 0


if __name__ == "__main__":
    sys.exit(main())
