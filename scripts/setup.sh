#!/usr/bin/env bash
# Sets up (or reuses) the virtual environment `.venv` and the offline Fashion-MNIST files.
# Sourced by scripts/main.sh and scripts/test.sh; safe to run again (it skips what is done).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${SWAV_KERAS_VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3

if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating virtual environment $VENV"
  "$PYTHON" -m venv "$VENV"
fi
STAMP="$VENV/.swav_keras_installed"
WANT="$(cat "$ROOT/requirements.txt" "$ROOT/pyproject.toml" | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$STAMP" 2>/dev/null || true)" != "$WANT" ]; then
  echo "[setup] installing requirements (a few minutes the first time)"
  "$VENV/bin/python" -m pip install -q --upgrade pip 2>&1 | grep -v "is ignored" || true
  "$VENV/bin/python" -m pip install -q -r "$ROOT/requirements.txt" 2>&1 | grep -v "is ignored" || true
  "$VENV/bin/python" -m pip install -q --no-deps -e "$ROOT" 2>&1 | grep -v "is ignored" || true
  "$VENV/bin/python" -c "import keras, tensorflow, jax, torch, swav_keras" \
    || { echo "[setup] installation failed" >&2; exit 1; }
  echo "$WANT" > "$STAMP"
fi

# Real Fashion-MNIST offline: Debian's package installs the idx files.
FMNIST=/usr/share/datasets/fashion-mnist
if [ ! -f "$FMNIST/train-images-idx3-ubyte.gz" ] && [ -z "${SWAV_KERAS_DATA_DIR:-}" ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo -n"
  if command -v apt-get >/dev/null 2>&1 && { [ -z "$SUDO" ] || sudo -n true 2>/dev/null; }; then
    echo "[setup] installing Debian's dataset-fashion-mnist"
    $SUDO apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1 \
      || { $SUDO apt-get update -q >/dev/null 2>&1 \
           && $SUDO apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1; } \
      || echo "[setup] could not install dataset-fashion-mnist" >&2
  fi
  if [ ! -f "$FMNIST/train-images-idx3-ubyte.gz" ]; then
    echo "[setup] Fashion-MNIST is not in $FMNIST. Either run" \
         "'sudo apt-get install dataset-fashion-mnist', or put the four idx files in a folder" \
         "and set SWAV_KERAS_DATA_DIR=<folder>, or let tfds download it (needs internet)." >&2
  fi
fi

export PATH="$VENV/bin:$PATH"
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
