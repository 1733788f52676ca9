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

# Interop peers for tests/interop, built once per machine into .cache/interop (gitignored) and
# rebuilt only when their sources change: a real otelcol distribution (interop/otelcol, the OCB
# layout), Jaeger v2 (interop/jaeger), an OTel Go SDK sender (interop/gosdk), all from the Go module
# proxy, and the OTel JS SDK (interop/js) from npm. The first build takes several minutes.
INTEROP_CACHE=.cache/interop
go_build_cached() {  # go_build_cached MODULE_DIR BINARY PACKAGE
  local dir=$1 out=$INTEROP_CACHE/bin/$2 package=$3
  if [ -x "$out" ] && [ -z "$(find "$dir" -type f -newer "$out" | head -1)" ]; then return; fi
  mkdir -p "$INTEROP_CACHE/bin"
  echo "run.sh: building $2 from $dir (once per machine)" >&2
  (cd "$dir" && GOFLAGS=-mod=readonly nice -n 10 go build -trimpath -o "$OLDPWD/$out.tmp" "$package")
  mv "$out.tmp" "$out"
}

setup_interop() {
  if ! command -v go >/dev/null 2>&1; then
    echo "run.sh: no Go toolchain: tests/interop skip (and fail when CI=true)" >&2
    return
  fi
  go_build_cached interop/otelcol otelcol-genaitrace .
  go_build_cached interop/jaeger jaeger github.com/jaegertracing/jaeger/cmd/jaeger
  go_build_cached interop/gosdk gosdk-sender .
  (cd interop/schema && GOFLAGS=-mod=readonly go mod download)  # the contrib DDL the schema test reads
  if command -v npm >/dev/null 2>&1 && { [ ! -d interop/js/node_modules ] ||
      [ interop/js/package-lock.json -nt interop/js/node_modules ]; }; then
    (cd interop/js && npm ci --no-audit --no-fund --silent && touch node_modules)
  fi
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
    setup_interop
    export GENAITRACE_REQUIRE_NATIVE=1  # a test fails if the native module did not build
    shift
    exec "$VENV/bin/python" -m pytest "$@"
    ;;
  *)
    echo "usage: $0 demo | test [pytest args]" >&2
    exit 64
    ;;
esac
