"""genaitrace check [PATHS]: the command line (argparse, so a single-file run starts fast)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from genaitrace_check import baseline, report
from genaitrace_check.config import ConfigError, find_root, load_config
from genaitrace_check.rules import RULES
from genaitrace_check.runner import changed_files, check_files, collect_files


def _parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog, description="Find LLM and agent calls that would escape tracing, cost or attribution.")
    parser.add_argument("paths", nargs="*", type=Path, help="files or folders (default: the project root)")
    parser.add_argument("--format", choices=("text", "json", "sarif"), default="text")
    parser.add_argument("--output-file", "-o", type=Path, help="write the report here instead of stdout")
    parser.add_argument("--statistics", action="store_true", help="count findings per rule")
    parser.add_argument("--explain", metavar="RULE", help="explain a rule (e.g. GT101) and exit")
    parser.add_argument("--select", type=lambda s: s.split(","), help="only these rules (comma list, prefixes allowed)")
    parser.add_argument("--ignore", type=lambda s: s.split(","), help="skip these rules (comma list)")
    parser.add_argument("--diff", nargs="?", const="HEAD", metavar="REV",
                        help="check only Python files changed since REV (default HEAD), staged or not, and untracked ones")
    parser.add_argument("--baseline", type=Path, help="ignore findings recorded in this file (default: the config's)")
    parser.add_argument("--update-baseline", action="store_true", help="record the current findings in the baseline and exit 0")
    parser.add_argument("--exit-zero", action="store_true", help="exit 0 even with findings")
    parser.add_argument("--jobs", "-j", type=int, default=os.cpu_count() or 1, help="worker processes for large trees")
    return parser


def main(argv: list[str] | None = None, prog: str = "genaitrace check") -> int:
    args = _parser(prog).parse_args(argv)
    if args.explain:
        rule = RULES.get(args.explain.upper())
        if rule is None:
            print(f"unknown rule {args.explain}; known: {', '.join(sorted(RULES))}", file=sys.stderr)
            return 2
        print(f"{rule.id} ({rule.name}): {rule.summary}\n\n{rule.explanation}\n\nFix: {rule.fix}.")
        return 0
    try:
        return _run(args)
    except (ConfigError, ValueError, RuntimeError) as exc:
        print(f"genaitrace check: {exc}", file=sys.stderr)
        return 2


def _run(args) -> int:
    paths = [p for p in args.paths] or [Path.cwd()]
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise ValueError(f"no such file or folder: {', '.join(missing)}")
    root, tree_paths = _root_and_tree(paths)
    config = load_config(root, args.select, args.ignore)
    files = collect_files(paths, config)
    if args.diff:
        changed = set(changed_files(root, args.diff))
        files = [f for f in files if f in changed]
    findings, lines, unreadable = check_files(config, tree_paths, files, max(1, args.jobs))
    for name in unreadable:
        print(f"{name}: skipped, not parseable as Python 3.11", file=sys.stderr)
    prints = baseline.fingerprints(findings, lambda f: lines.get((f.path, f.line), ""))
    baseline_path = args.baseline or (root / config.baseline if config.baseline else None)
    if args.update_baseline:
        if baseline_path is None:
            raise ValueError("--update-baseline needs --baseline FILE or `baseline` in [tool.genaitrace.check]")
        baseline.write(baseline_path, findings, prints)
        print(f"recorded {len(findings)} finding(s) in {baseline_path}", file=sys.stderr)
        return 0
    if baseline_path is not None:
        known = baseline.load(baseline_path)
        kept = [(f, p) for f, p in zip(findings, prints) if p not in known]
        findings, prints = [f for f, _ in kept], [p for _, p in kept]
    _emit(args, findings, prints)
    return 1 if findings and not args.exit_zero else 0


def _root_and_tree(paths: list[Path]) -> tuple[Path, list[Path]]:
    """The project root (pyproject.toml or .git above the paths) and the tree the analysis reads.

    Inside a project, the whole project is the tree (callers and helpers are found anywhere in it).
    Outside one (an installed package), the root is the folder above the top package, and the tree
    is just the named paths."""
    first = paths[0].resolve()
    start = first if first.is_dir() else first.parent
    root = find_root(start)
    installed = any(part in ("site-packages", "dist-packages") for part in start.relative_to(root).parts) \
        if start.is_relative_to(root) else False
    if not installed and ((root / "pyproject.toml").is_file() or (root / ".git").exists()):
        return root, [root]
    top = start
    while (top / "__init__.py").is_file() and top.parent != top:
        top = top.parent
    return top, [p.resolve() for p in paths]


def _emit(args, findings, prints) -> None:
    if args.format == "json":
        out = report.as_json(findings)
    elif args.format == "sarif":
        out = report.sarif(findings, prints)
    else:
        out = report.statistics(findings) if args.statistics else report.text(findings)
    if args.statistics and args.format != "text":
        print(report.statistics(findings), file=sys.stderr)
    if args.output_file:
        args.output_file.write_text(out + "\n", encoding="utf-8")
    else:
        print(out)
