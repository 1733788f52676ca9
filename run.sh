#!/usr/bin/env bash
# The README's two commands:
#   ./run.sh demo   set up everything, start the collector on the embedded store, run the sample
#                   multi-agent workload through it, print what it stored and one trace tree
#   ./run.sh test   set up everything (including Debian's prometheus for promtool), run the tests
# Set-up is idempotent: a venv in .venv, installed from the committed lock with uv.
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

setup_promtool() {
  if command -v promtool >/dev/null 2>&1; then return; fi
  local sudo=""
  if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends prometheus >/dev/null
}

# Nothing phones home, and CrewAI keeps its files out of the user's home during tests and the demo.
export CREWAI_DISABLE_TELEMETRY=true CREWAI_DISABLE_TRACKING=true \
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
    shift
    exec "$VENV/bin/python" -m pytest "$@"
    ;;
  *)
    echo "usage: $0 demo | test [pytest args]" >&2
    exit 64
    ;;
esac
