#!/usr/bin/env bash
# The README's two commands:
#   ./run.sh demo   set up everything, start the collector on the embedded store, run the sample
#                   multi-agent workload through it, print what it stored and one trace tree
#   ./run.sh test   set up everything (including Debian's prometheus for promtool), run the tests
# Set-up is idempotent: a venv in .venv, installed from the committed lock with uv, and the native
# module (collector/native, Rust) built offline from Debian's crates when its sources changed.
set -euo pipefail
cd "$(dirname "$0")"

VENV=.venv
UV_VERSION=0.13.9

setup_python() {
  if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
  fi
  if [ ! -x "$VENV/bin/uv" ]; then
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "uv==$UV_VERSION"
  fi
  # The lock pins every package; `sync` makes the venv match it exactly (fast when nothing changed).
  "$VENV/bin/uv" pip sync --quiet --python "$VENV/bin/python" requirements/all.lock
  "$VENV/bin/uv" pip install --quiet --python "$VENV/bin/python" --no-deps -e .
}

apt_install() {
  local sudo=""
  if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

setup_promtool() {
  if command -v promtool >/dev/null 2>&1; then return; fi
  apt_install prometheus
}

# The collector's hot path in Rust (collector/native), built offline: the crates come from Debian's
# packages (/usr/share/cargo/registry, see collector/native/.cargo/config.toml), not crates.io.
setup_native() {
  local dir=collector/native so=collector/native/_otlp_native.so
  if [ -f "$so" ] && [ -z "$(find "$dir/src" "$dir/Cargo.toml" -newer "$so")" ]; then return; fi
  if [ -d "$HOME/.cargo/bin" ]; then export PATH="$HOME/.cargo/bin:$PATH"; fi
  local packages=()
  if ! ls -d /usr/share/cargo/registry/pyo3-0.17.* /usr/share/cargo/registry/prost-0.11.* >/dev/null 2>&1; then
    packages+=(librust-pyo3-dev librust-prost-dev)
  fi
  if ! command -v cargo >/dev/null 2>&1; then packages+=(cargo); fi
  if [ ${#packages[@]} -gt 0 ]; then apt_install "${packages[@]}"; fi
  (cd "$dir" && PYO3_PYTHON="$OLDPWD/$VENV/bin/python" cargo build --release --offline --quiet)
  cp "$dir/target/release/lib_otlp_native.so" "$so.tmp" && mv "$so.tmp" "$so"
}

# Nothing phones home, and CrewAI keeps its files out of the user's home during tests and the demo.
export CREWAI_DISABLE_TELEMETRY=true CREWAI_DISABLE_TRACKING=true \
       TRACELOOP_TELEMETRY=false LITELLM_LOCAL_MODEL_COST_MAP=True DO_NOT_TRACK=1

case "${1:-}" in
  demo)
    setup_python
    setup_native
    shift
    exec "$VENV/bin/genaitrace" demo "$@"
    ;;
  test)
    setup_python
    setup_native
    setup_promtool
    export GENAITRACE_REQUIRE_NATIVE=1  # a test fails if the native module did not build
    shift
    exec "$VENV/bin/python" -m pytest "$@"
    ;;
  *)
    echo "usage: $0 demo | test [pytest args]" >&2
    exit 64
    ;;
esac
