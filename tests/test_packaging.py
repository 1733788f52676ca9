"""The collector installs and starts without the application-side stack (crewai, litellm, traceloop)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# Where rustup, cargo and uv keep their toolchains and caches, read at import (test collection),
# before tests/conftest.py points HOME at a temp dir.
BUILD_HOMES = {"RUSTUP_HOME": os.environ.get("RUSTUP_HOME") or str(Path.home() / ".rustup"),
               "CARGO_HOME": os.environ.get("CARGO_HOME") or str(Path.home() / ".cargo"),
               "UV_CACHE_DIR": os.environ.get("UV_CACHE_DIR") or str(Path.home() / ".cache" / "uv")}
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


def test_pip_install_builds_one_wheel_with_the_native_module_and_the_data_files(tmp_path):
    """`pip install .` builds the package like any extension: one wheel (maturin) holding the native
    module, every Python package, the DDL templates the schema reads and the price table; not the
    crate's sources or its build cache. (The crate is compiled already by the editable install, so
    this packs the same build.)"""
    uv = Path(sys.executable).parent / "uv"
    built = subprocess.run([str(uv), "build", "--wheel", "--out-dir", str(tmp_path), str(REPO)],
                           env={**os.environ, **BUILD_HOMES}, capture_output=True, text=True, timeout=900)
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = tmp_path.glob("genaitrace-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert any(re.fullmatch(r"collector/native/genaitrace_native\.cpython-\d+-.*\.so", n) for n in names), names
    needed = [p.relative_to(REPO).as_posix() for pattern in ("collector/storage/sql/*.sql", "processors/data/*.json")
              for p in REPO.glob(pattern)]
    assert "collector/storage/sql/traces_table.sql" in needed and "processors/data/model_prices.json" in needed
    assert set(needed) <= names, set(needed) - names
    for package in ("collector", "processors", "instrumentation", "semconv", "genaitrace_check"):
        assert f"{package}/__init__.py" in names, package
    assert not [n for n in names if n.endswith(".rs") or "/target/" in n or "__pycache__" in n]
    entry_points = zipfile.ZipFile(wheel).read(f"{wheel.name.split('-')[0]}-{wheel.name.split('-')[1]}.dist-info/entry_points.txt")
    assert b"genaitrace=collector.entry:main" in entry_points and b"genaitrace=instrumentation.distro:GenAIDistro" in entry_points
