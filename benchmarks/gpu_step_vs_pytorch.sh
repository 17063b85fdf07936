#!/bin/bash
# `benchmarks/step_vs_pytorch.py` on the paper's ResNet-50 workload on a lent GPU machine
# (`../shared/GPU.md`: torch and jax with CUDA there, no Keras, no TensorFlow, no network).
#
# Here, from the repository root (wheels into .whl/, which git ignores through
# .git/info/exclude; BEFORE is a revision to time beside the working tree):
#     bash benchmarks/gpu_step_vs_pytorch.sh prepare BEFORE
# There: one `device` run, kind nvidia-h200 (Keras's layers took 109 GiB at batch 256), with
# carry [".whl"], timeout_s about 540 and the command
#     bash .whl/gpu_step_vs_pytorch.sh run
# Each phase has a time cap and writes its log to $OUT. swav_keras is imported from its
# wheels (`backends/` becomes `swav_keras.backends` only when installed), so the benchmark
# runs from a copy outside the source tree. Phases: the working tree's torch backend with
# native layers, BEFORE's, jax, then the torch backend with Keras's layers.
set -u
case "${1:-}" in
prepare)
  before=${2:?usage: $0 prepare BEFORE (a revision to time beside the working tree)}
  grep -qx "/.whl/" .git/info/exclude 2>/dev/null || echo /.whl/ >> .git/info/exclude
  rm -rf .whl && mkdir -p .whl/deps .whl/after .whl/before || exit 1
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d .whl/deps keras==3.15.1 namex optree || exit 1
  .venv/bin/pip wheel -q --no-deps --no-build-isolation . -w .whl/after || exit 1
  tree=$(mktemp -d) && git archive "$before" | tar -x -C "$tree" || exit 1
  (cd "$tree" && "$OLDPWD/.venv/bin/pip" wheel -q --no-deps --no-build-isolation . \
    -w "$OLDPWD/.whl/before") || exit 1
  rm -rf "$tree"
  cp benchmarks/gpu_step_vs_pytorch.sh .whl/
  ls -R .whl
  ;;
run)
  export PYTHONUNBUFFERED=1
  pip="python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade"
  site=${SITE:-/tmp/site}
  [ -n "${LOCAL:-}" ] || $pip --target "$site" .whl/deps/*.whl || exit 1
  $pip --target "$site" .whl/after/*.whl || exit 1
  $pip --target /tmp/site_before .whl/before/*.whl || exit 1
  rm -rf /tmp/bench && mkdir -p /tmp/bench && cp -r benchmarks /tmp/bench/
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/gpu.txt" 2>&1
  args="--workload=resnet50 --batch_size=${B:-256} --steps=${STEPS:-4} --rounds=3"
  args="$args --warmup_steps=2 --nomemory ${EXTRA:-}"
  phase() {  # name, time cap, PYTHONPATH, benchmark flags...
    local name=$1 cap=$2 path=$3
    shift 3
    echo "=== $name $(date +%T)"
    (cd /tmp/bench && PYTHONPATH=$path timeout "$cap" python3 -m benchmarks.step_vs_pytorch \
      $args "$@") > "$OUT/$name.log" 2>&1
    echo "rc=$?"
    grep -v "^[IW][0-9]\|^WARNING: All log" "$OUT/$name.log" | tail -9
  }
  phase after_native "${C1:-120}" "$site" --backends=torch --layers=native
  phase before_native "${C2:-95}" "/tmp/site_before:$site" --backends=torch --layers=native
  phase jax "${C3:-170}" "$site" --backends=jax
  PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True \
    phase keras_layers "${C4:-95}" "$site" --backends=torch --layers=keras
  echo "=== end $(date +%T)"
  ;;
*)
  echo "usage: $0 prepare BEFORE | run" >&2
  exit 2
  ;;
esac
