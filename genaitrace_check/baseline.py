"""A baseline of known findings, so a large codebase can adopt the check and fail only on new ones.

A finding is known by its rule, file, the text of its line (stripped) and which occurrence of that
text it is: code moving up or down the file keeps its fingerprint; editing the line makes it new.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path

from genaitrace_check.analyzer import Finding

VERSION = 1


def fingerprints(findings: list[Finding], line_text) -> list[str]:
    seen: Counter = Counter()
    prints = []
    for f in findings:
        key = (f.rule, f.path, line_text(f).strip())
        seen[key] += 1
        digest = hashlib.sha256("\0".join((*key, str(seen[key]))).encode()).hexdigest()[:24]
        prints.append(digest)
    return prints


def load(path: Path) -> set[str]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return set()
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: not a genaitrace-check baseline ({exc})") from exc
    if not isinstance(data, dict) or data.get("version") != VERSION or not isinstance(data.get("findings"), list):
        raise ValueError(f"{path}: not a genaitrace-check baseline (expected version {VERSION})")
    return {entry["fingerprint"] for entry in data["findings"] if isinstance(entry, dict) and "fingerprint" in entry}


def write(path: Path, findings: list[Finding], prints: list[str]) -> None:
    entries = [{"fingerprint": p, "rule": f.rule, "path": f.path, "line": f.line}
               for f, p in sorted(zip(findings, prints), key=lambda fp: (fp[0].path, fp[0].line, fp[0].rule))]
    path.write_text(json.dumps({"version": VERSION, "findings": entries}, indent=1) + "\n", encoding="utf-8")
