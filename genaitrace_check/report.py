"""Findings as text (ruff's layout), JSON, or SARIF 2.1.0 for code-scanning tools."""

from __future__ import annotations

import json
from collections import Counter

from genaitrace_check import __version__
from genaitrace_check.analyzer import Finding
from genaitrace_check.rules import RULES

INFO_URI = "https://github.com/genaitrace/genaitrace#genaitrace-check"


def text(findings: list[Finding], show_fixes: bool = True) -> str:
    lines = []
    for f in findings:
        lines.append(f"{f.path}:{f.line}:{f.col}: {f.rule} {f.message}")
        if show_fixes:
            lines.append(f"  help: {f.fix}")
    if findings:
        fixable = len(findings)
        lines.append(f"Found {fixable} error{'s' if fixable != 1 else ''}.")
    else:
        lines.append("All checks passed!")
    return "\n".join(lines)


def statistics(findings: list[Finding]) -> str:
    counts = Counter(f.rule for f in findings)
    width = max((len(str(n)) for n in counts.values()), default=1)
    return "\n".join(f"{n:>{width}}\t{rule}\t{RULES[rule].name}" for rule, n in sorted(counts.items(),
                                                                                       key=lambda kv: (-kv[1], kv[0])))


def as_json(findings: list[Finding]) -> str:
    return json.dumps([{
        "code": f.rule, "message": f.message, "filename": f.path,
        "location": {"row": f.line, "column": f.col}, "end_location": {"row": f.end_line, "column": f.end_col},
        "fix": {"message": f.fix}, "url": f"{INFO_URI}-{f.rule.lower()}",
    } for f in findings], indent=2)


def sarif(findings: list[Finding], fingerprints: list[str]) -> str:
    rule_ids = sorted(RULES)
    rules = [{
        "id": rule.id, "name": rule.name,
        "shortDescription": {"text": rule.summary},
        "fullDescription": {"text": rule.explanation},
        "help": {"text": f"{rule.summary}. Fix: {rule.fix}.", "markdown": f"**{rule.summary}**\n\n{rule.explanation}"},
        "helpUri": f"{INFO_URI}-{rule.id.lower()}",
        "defaultConfiguration": {"level": "error"},
    } for rule in (RULES[r] for r in rule_ids)]
    results = [{
        "ruleId": f.rule, "ruleIndex": rule_ids.index(f.rule), "level": "error",
        "message": {"text": f"{f.message}. Fix: {f.fix}."},
        "locations": [{"physicalLocation": {
            "artifactLocation": {"uri": f.path, "uriBaseId": "%SRCROOT%"},
            "region": {"startLine": f.line, "startColumn": f.col, "endLine": f.end_line, "endColumn": f.end_col},
        }}],
        "partialFingerprints": {"genaitraceFinding/v1": fingerprint},
    } for f, fingerprint in zip(findings, fingerprints)]
    document = {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json", "version": "2.1.0",
        "runs": [{"tool": {"driver": {"name": "genaitrace-check", "version": __version__,
                                      "informationUri": INFO_URI, "rules": rules}},
                  "originalUriBaseIds": {"%SRCROOT%": {"uri": "file:///"}},
                  "results": results}],
    }
    return json.dumps(document, indent=2)
