#!/usr/bin/env bash
# The main job: set up the environment, pretrain SwAV on Fashion-MNIST on the CPU, then
# evaluate it (kNN and linear probe) against a random-init encoder and raw pixels.
# Extra arguments go to recipes/main.py, e.g. scripts/main.sh --epochs=2 --workdir=runs/try
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/setup.sh"
cd "$ROOT"
export KERAS_BACKEND="${KERAS_BACKEND:-tensorflow}"
exec python -m recipes.main "$@"
