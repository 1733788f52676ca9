#!/usr/bin/env bash
# The README's two commands:
#   ./run.sh demo   set up everything, start the collector on the embedded store, run the sample
#                   multi-agent workload through it, print what it stored and one trace tree
#   ./run.sh test   set up everything (including Debian's prometheus for promtool), run the tests
# Set-up is idempotent: a venv in .venv, installed from the committed lock with uv, then the project
# in editable mode, whose maturin build compiles the native module (collector/native, Rust) when its
# sources changed.
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
  # The lock pins every package, and the project itself goes in editable: `sync` makes the venv
  # match that exactly (fast when nothing changed). The project's build (maturin) also compiles the
  # collector's native module into collector/native/ (gitignored; cargo's cache is
  # collector/native/target/); uv builds it again only when pyproject.toml or the crate's sources
  # changed (pyproject's cache-keys), or when the module is missing.
  require_rust
  local rebuild=()
  if ! compgen -G "collector/native/genaitrace_native.*.so" >/dev/null; then
    rebuild=(--reinstall-package genaitrace)
  fi
  # --compile-bytecode, as pip does by default: with bytecode neither written nor shipped (uv's default,
  # and PYTHONDONTWRITEBYTECODE=1 where this runs), every process compiled the ~1,200 modules it
  # imports, ~0.8 s for each `genaitrace` command and collector start. The project's own packages
  # (editable, so not in site-packages) are compiled here too; both steps skip what is up to date.
  # Serially (~120 files: 0.5 s cold, 0.15 s after; a process pool took 5 s to find nothing to do),
  # and not bench/.peers, the peers' own virtualenvs.
  nice -n 10 "$VENV/bin/uv" pip sync --quiet --compile-bytecode --python "$VENV/bin/python" "${rebuild[@]}" \
    requirements/all.lock <(echo "-e .")
  "$VENV/bin/python" -m compileall -q -x '/\.peers/' collector processors instrumentation semconv genaitrace_check bench >/dev/null
}

# The native module needs Rust >= 1.85 and cargo (rustup's here); without them, say so and stop.
require_rust() {
  if [ -d "$HOME/.cargo/bin" ]; then export PATH="$HOME/.cargo/bin:$PATH"; fi
  local rust
  rust=$(rustc --version 2>/dev/null | awk '{print $2}') || true
  if [ -z "$rust" ] || [ "$(printf '%s\n' 1.85.0 "$rust" | sort -V | head -1)" != 1.85.0 ]; then
    echo "run.sh: collector/native needs Rust >= 1.85 and cargo (found: ${rust:-none}). Install a" \
         "toolchain with rustup (https://rustup.rs) or a distribution's rustc and cargo >= 1.85, then" \
         "run ./run.sh again." >&2
    exit 1
  fi
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
export CREWAI_DISABLE_TELEMETRY=true CREWAI_DISABLE_TRACKING=true CREWAI_DISABLE_VERSION_CHECK=true \
       TRACELOOP_TELEMETRY=false LITELLM_LOCAL_MODEL_COST_MAP=True DO_NOT_TRACK=1

case "${1:-}" in
  demo)
    setup_python
    shift
    exec "$VENV/bin/genaitrace" demo "$@"
    ;;
  test)
    setup_python
    setup_promtool
    setup_interop
    shift
    # The README's test command proves the interop: a missing peer fails (CI=true), never skips.
    export CI="${CI:-true}"
    if [ $# -gt 0 ]; then exec "$VENV/bin/python" -m pytest "$@"; fi
    # The whole suite: most tests wait on the processes they start, so they run on one worker per
    # core (one module per worker: its collector fixtures are shared); the tests marked `alone`
    # measure how fast other clients are served, so they run afterwards, one at a time.
    status=0
    "$VENV/bin/python" -m pytest -n auto --dist loadfile -m "not alone" || status=$?
    "$VENV/bin/python" -m pytest -m alone || status=$((status > 0 ? status : $?))
    exit "$status"
    ;;
  *)
    echo "usage: $0 demo | test [pytest args]" >&2
    exit 64
    ;;
esac
