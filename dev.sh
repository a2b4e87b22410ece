#!/usr/bin/env bash
# One entry point for people and CI: sets up .venv (idempotent) and then runs what you ask for.
#   bash dev.sh demo   set up, then run the demo (offline, against the built-in simulator)
#   bash dev.sh test   set up with the test extras, then run the whole test suite
#   bash dev.sh check  set up, then ruff and mypy
set -euo pipefail
cd "$(dirname "$0")"
VENV=${VENV:-.venv}
PY=${PYTHON:-python3}

setup() {
  if [ ! -x "$VENV/bin/python" ]; then
    "$PY" -m venv "$VENV"
  fi
  # Reinstall only when pyproject.toml changed since the last successful install.
  local stamp="$VENV/.installed-$1"
  if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    "$VENV/bin/python" -m pip install -q --upgrade pip
    "$VENV/bin/python" -m pip install -q -e ".[test]"
    touch "$stamp"
  fi
}

cmd=${1:-test}
shift || true
case "$cmd" in
  demo)
    setup test
    # The demo job runs offline: every provider is served by the built-in simulator.
    exec "$VENV/bin/runner" run jobs/demo.toml "$@"
    ;;
  test)
    setup test
    exec "$VENV/bin/python" -m pytest "$@"
    ;;
  check)
    setup test
    "$VENV/bin/ruff" check runner tests
    "$VENV/bin/ruff" format --check runner tests
    exec "$VENV/bin/mypy"
    ;;
  *)
    echo "usage: bash dev.sh demo|test|check [args...]" >&2
    exit 2
    ;;
esac
