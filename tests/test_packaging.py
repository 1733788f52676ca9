"""The collector installs and starts without the application-side stack (crewai, litellm, traceloop)."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
APP_ONLY = ("crewai", "litellm", "traceloop", "openinference", "opentelemetry.instrumentation")

IMPORT_EVERYTHING = r"""
import importlib, sys
from collector import registry
from collector.component import Kind
import collector.cli, collector.service
for kind in Kind:
    for type_ in registry.types(kind):
        registry.factory(kind, type_)
heavy = sorted({m.split('.')[0] for m in sys.modules if m.startswith(%r)})
print(",".join(heavy))
"""


def test_collector_imports_no_application_stack():
    out = subprocess.run([sys.executable, "-c", IMPORT_EVERYTHING % (APP_ONLY,)], capture_output=True, text=True,
                         timeout=120, cwd=REPO)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "", f"the collector imported application-side packages: {out.stdout}"


def _pins(lock: Path) -> dict[str, str]:
    pins = {}
    for line in lock.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.\-\[\]]+)==([^\s;]+)", line)
        if match:
            pins[re.sub(r"\[.*\]", "", match.group(1)).lower().replace("_", "-")] = match.group(2)
    return pins


def test_locks_pin_what_pyproject_declares_and_collector_lock_is_lean():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    collector_lock = _pins(REPO / "requirements" / "collector.lock")
    all_lock = _pins(REPO / "requirements" / "all.lock")
    for requirement in project["dependencies"]:
        name, version = re.match(r"^([A-Za-z0-9_.\-]+)(?:\[.*\])?==(.+)$", requirement).groups()
        name = name.lower().replace("_", "-")
        assert collector_lock.get(name) == version, f"{name} not pinned at {version} in collector.lock"
        assert all_lock.get(name) == version, f"{name} not pinned at {version} in all.lock"
    for requirement in project["optional-dependencies"]["app"]:
        name = re.match(r"^([A-Za-z0-9_.\-]+)", requirement).group(1).lower()
        assert name in all_lock and name not in collector_lock, name
    assert not any(n in collector_lock for n in ("crewai", "litellm", "traceloop-sdk"))


def test_package_data_globs_ship_files_that_exist():
    """Each `[tool.setuptools.package-data]` pattern matches files (a pattern matching nothing ships
    nothing, silently), and the DDL templates the schema reads are all among them."""
    package_data = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    shipped = set()
    for package, patterns in package_data.items():
        for pattern in patterns:
            matched = sorted((REPO / package.replace(".", "/")).glob(pattern))
            assert matched, f"package-data {package}: {pattern} matches no file"
            shipped |= {path.relative_to(REPO).as_posix() for path in matched}
    ddl_files = {path.relative_to(REPO).as_posix() for path in (REPO / "collector" / "storage" / "sql").glob("*.sql")}
    assert {"collector/storage/sql/traces_table.sql", "collector/storage/sql/logs_table.sql"} <= ddl_files <= shipped
