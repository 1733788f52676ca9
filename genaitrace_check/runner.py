"""Which files to check, and checking them (in worker processes for a large tree)."""

from __future__ import annotations

import multiprocessing
import subprocess
import sys
from pathlib import Path

from genaitrace_check.analyzer import Analyzer, Finding, suppressed
from genaitrace_check.config import CheckConfig
from genaitrace_check.project import Project, python_files

PARALLEL_FROM = 150  # files; below this, starting workers costs more than it saves


def collect_files(paths: list[Path], config: CheckConfig) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if path.is_file():
            files.append(path)  # named explicitly (pre-commit does): checked even where excluded
            continue
        files.extend(python_files(path, config))
    return sorted(set(files))


def changed_files(root: Path, base: str) -> list[Path]:
    """Python files changed since `base` (committed, staged or not) plus untracked ones."""
    commands = (["git", "diff", "--name-only", "--diff-filter=ACMR", base],
                ["git", "diff", "--name-only", "--diff-filter=ACMR", "--cached", base],
                ["git", "ls-files", "--others", "--exclude-standard"])
    names: set[str] = set()
    for command in commands:
        result = subprocess.run(command, cwd=root, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(command)}: {result.stderr.strip() or 'failed'}")
        names.update(line for line in result.stdout.splitlines() if line.endswith(".py"))
    return sorted(root / name for name in names if (root / name).is_file())


def _check_chunk(args) -> tuple[list[Finding], dict[tuple[str, int], str], list[str]]:
    config, tree_paths, files = args
    project = Project(config, tree_paths)
    analyzer = Analyzer(project)
    findings, lines, unreadable = [], {}, []
    for path in files:
        module = project.module(path)
        if module is None:
            unreadable.append(project.relpath(path))
            continue
        for finding in analyzer.check(module):
            if not suppressed(finding, module):
                findings.append(finding)
                lines[(finding.path, finding.line)] = module.lines[finding.line - 1] if finding.line <= len(module.lines) else ""
    return findings, lines, unreadable


def check_files(config: CheckConfig, tree_paths: list[Path], files: list[Path], jobs: int):
    """Findings (sorted), the text of each finding's line, and files that could not be parsed."""
    if jobs > 1 and len(files) >= PARALLEL_FROM:
        # Contiguous runs of the sorted paths: a package's modules stay in one worker, which parses
        # the modules they import once (round-robin chunks made every worker parse most of the tree).
        size = -(-len(files) // jobs)
        chunks = [files[i:i + size] for i in range(0, len(files), size)]
        context = multiprocessing.get_context("fork" if sys.platform == "linux" else "spawn")
        with context.Pool(jobs) as pool:
            parts = pool.map(_check_chunk, [(config, tree_paths, chunk) for chunk in chunks])
    else:
        parts = [_check_chunk((config, tree_paths, files))]
    findings, lines, unreadable = [], {}, []
    for part_findings, part_lines, part_unreadable in parts:
        findings += part_findings
        lines.update(part_lines)
        unreadable += part_unreadable
    findings.sort(key=lambda f: (f.path, f.line, f.col, f.rule))
    return findings, lines, sorted(unreadable)
