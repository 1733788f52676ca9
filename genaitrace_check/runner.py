"""Which files to check, and checking them (in worker processes for a large tree)."""

from __future__ import annotations

import contextlib
import gc
import subprocess
import sys
import traceback
from pathlib import Path

from genaitrace_check.analyzer import Analyzer, Finding, suppressed
from genaitrace_check.config import CheckConfig
from genaitrace_check.project import Project, Summary, python_files

# From this many files the check runs in worker processes (one per job, so one with -j 1 too): a
# worker's exit drops its millions of tree nodes at no cost, where this process's collector took
# seconds to free them. Below it, starting a worker costs more than it saves.
IN_WORKERS_FROM = 150


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


def check_files(config: CheckConfig, tree_paths: list[Path], files: list[Path], jobs: int):
    """Findings (sorted), the text of each finding's line, and files that could not be parsed."""
    # The trees of a large check stay alive to the end (millions of nodes), and every automatic
    # collection walks them all: with the collector on, three quarters of ast.parse's time was spent
    # in it. Nothing here makes cyclic garbage that needs collecting before the check ends.
    collecting = gc.isenabled()
    gc.disable()
    try:
        if len(files) >= IN_WORKERS_FROM:
            parts = _check_in_workers(config, tree_paths, _chunks(files, jobs))
        else:
            project = Project(config, tree_paths)
            parts = [_check_modules(project, files)]
    finally:
        if collecting:
            gc.enable()
    findings, lines, unreadable = [], {}, []
    for part_findings, part_lines, part_unreadable in parts:
        findings += part_findings
        lines.update(part_lines)
        unreadable += part_unreadable
    findings.sort(key=lambda f: (f.path, f.line, f.col, f.rule))
    return findings, lines, sorted(unreadable)


def _check_modules(project: Project, files: list[Path]):
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


def _chunks(files: list[Path], jobs: int) -> list[list[Path]]:
    """Contiguous runs of the sorted paths, of about equal size in bytes: a package's modules stay in one
    worker, which parses the modules they import once (round-robin chunks made every worker parse most
    of the tree), and one worker does not get all the large files."""
    sizes = [_size(path) for path in files]
    total = sum(sizes) or 1
    chunks: list[list[Path]] = [[] for _ in range(jobs)]
    done = 0
    for path, size in zip(files, sizes):
        chunks[min(jobs - 1, done * jobs // total)].append(path)
        done += size
    return [chunk for chunk in chunks if chunk]


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _check_in_workers(config: CheckConfig, tree_paths: list[Path], chunks: list[list[Path]]):
    """One process per chunk, in two steps: each parses its chunk and sends the summaries of its modules;
    each then gets the others' summaries and checks its chunk. What crosses between processes is
    names and findings, never trees (pickling a tree costs about what parsing it does)."""
    import multiprocessing  # here: a check of one file does not pay for importing it

    context = multiprocessing.get_context("fork" if sys.platform == "linux" else "spawn")
    processes, links = [], []
    try:
        for chunk in chunks:
            here, there = context.Pipe()
            process = context.Process(target=_worker, args=(there, config, tree_paths, chunk), daemon=True)
            process.start()
            there.close()
            processes.append(process)
            links.append(here)
        summaries = [_receive(link) for link in links]
        for index, link in enumerate(links):
            link.send({path: summary for other, part in enumerate(summaries) if other != index
                       for path, summary in part.items()})
        return [_receive(link) for link in links]
    finally:
        for link in links:
            link.close()
        for process in processes:
            process.join(timeout=5)  # done already after a success; after a failure, the others stop
            if process.is_alive():
                process.terminate()


def _worker(link, config: CheckConfig, tree_paths: list[Path], files: list[Path]) -> None:
    gc.disable()  # as in check_files (a spawned worker does not inherit it)
    try:
        project = Project(config, tree_paths)
        link.send(("ok", _summaries(project, files)))
        project.summaries = link.recv()
        link.send(("ok", _check_modules(project, files)))
    except Exception:
        with contextlib.suppress(OSError):  # the parent may be gone already
            link.send(("error", traceback.format_exc()))
    finally:
        link.close()


def _summaries(project: Project, files: list[Path]) -> dict[str, Summary | None]:
    """Parses the chunk (its modules stay for the check) and sums each module up for the other workers."""
    summaries = {}
    for path in files:
        module = project.module(path)
        summaries[project.resolved_name(path)] = module.summary() if module is not None else None
    return summaries


def _receive(link):
    try:
        status, payload = link.recv()
    except EOFError:
        raise RuntimeError("a worker process ended without its results") from None
    if status != "ok":
        raise RuntimeError(f"a worker process failed:\n{payload}")
    return payload
