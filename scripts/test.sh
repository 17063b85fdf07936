#!/usr/bin/env bash
# Sets up the environment, then runs the linter and the test suite once per Keras backend.
# Usage: scripts/test.sh [backend ...] [-- pytest arguments]
#   scripts/test.sh                   # tensorflow, jax and torch
#   scripts/test.sh jax -- -k sinkhorn
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/setup.sh"
cd "$ROOT"

BACKENDS=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do BACKENDS+=("$1"); shift; done
[ "${1:-}" = "--" ] && shift
[ ${#BACKENDS[@]} -gt 0 ] || BACKENDS=(tensorflow jax torch)

echo "== ruff check"
ruff check .

status=0
# --durations=15: the slowest tests of each backend's run, to keep CI inside its time.
for backend in "${BACKENDS[@]}"; do
  echo "== KERAS_BACKEND=$backend pytest"
  start=$(date +%s)
  if KERAS_BACKEND="$backend" python -m pytest tests -q -W ignore::DeprecationWarning --durations=15 "$@"; then
    echo "== $backend: passed in $(( $(date +%s) - start ))s"
  else
    echo "== $backend: FAILED after $(( $(date +%s) - start ))s"
    status=1
  fi
done
exit $status
