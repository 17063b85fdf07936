r"""Training-step throughput of SwAV with `model.fit`, per backend, side by side.

Workload (`../shared/WORKLOAD.md`, the reference CPU workload): the small ResNet of width 16
on 2 x 28x28 + 4 x 14x14 single-channel crops, head 128 -> 512 -> 64, K = 128 prototypes,
batch 256. The crops are fixed random tensors held in memory, so the figure is what the
training step consumes, not what the input pipeline delivers
(`benchmarks/multicrop_throughput.py` measures that).

For each backend it reports images/s of `fit` steps, the fraction of the machine's ceiling
(images/s x 525 MFLOP per image / the measured float32 matmul rate), and the share of the step
spent in Sinkhorn + loss: the same step with the loss replaced by a trivial one
(`mean(scores**2)`) is timed in the same process, alternating with the full step, and the
share is `1 - median trivial time / median full time` (within noise it can be negative).
Backends run one after the other in child processes of one run, so their ratios compare on
the same machine state. The same run then times the multi-crop input pipeline on the same
workload (`benchmarks/multicrop_throughput.py`) and prints how many times the fastest step's
consumption it delivers (the target is at least 3x).

`--conv_implementations=native,im2col` times the encoder with Keras's `Conv2D` and with
`Im2colConv2D` (one matrix product over patches) in the same process, alternating, one row
each: what the pretrain recipe's `--conv_implementation=auto` gains where it picks im2col.
Likewise `--dtype_policies=float32,mixed_bfloat16` times the same step under each Keras dtype policy
(what the recipe's `--mixed_precision` sets); the "of ceiling" column stays relative to the
float32 matmul rate, so bfloat16 rows may pass 100%. The ceiling counts the FLOPs of width 16
only: at other `--width`s that column is left out.

Command (2 CPU cores, about 6 minutes; add the im2col row for JAX, about 4 more):

    python -m benchmarks.train_step_throughput --backends=tensorflow,jax,torch
    python -m benchmarks.train_step_throughput --backends=jax --conv_implementations=native,im2col
    python -m benchmarks.train_step_throughput --backends=tensorflow --batch_size=128 \
        --width=32 --dtype_policies=float32,mixed_bfloat16 --nopipeline
    python -m benchmarks.train_step_throughput --determinism=off,on --nopipeline
    python -m benchmarks.train_step_throughput --non_finite_guard=off,on --nopipeline

Figures are recorded in `benchmarks/RESULTS.md`.
"""

import os
import platform
import subprocess
import sys
import time

from absl import app, flags

from benchmarks import children, fixed_batches
from benchmarks.machine import cpu_name, matmul_gflops

FLAGS = flags.FLAGS
flags.DEFINE_list("backends", ["tensorflow", "jax", "torch"], "Backends to measure, in order.")
flags.DEFINE_integer("batch_size", 256, "Images per step.")
flags.DEFINE_integer("steps", 8, "Timed steps per measurement (after warm-up).")
flags.DEFINE_integer("rounds", 3, "Measurements per variant, alternating; medians reported.")
flags.DEFINE_integer("warmup_steps", 3, "Untimed steps first (tracing / compilation).")
flags.DEFINE_integer("width", 16, "Small ResNet width (stage widths w, 2w, 4w, 8w).")
flags.DEFINE_integer("num_prototypes", 128, "K.")
flags.DEFINE_list(
    "conv_implementations", ["native"],
    "Encoder convolutions to time side by side: `native` (Keras Conv2D), `im2col` "
    "(Im2colConv2D) and/or `auto` (the pretrain recipe's choice for the backend).",
)
flags.DEFINE_list(
    "dtype_policies", ["float32"],
    "Keras dtype policies to time side by side: `float32`, `mixed_bfloat16` and/or "
    "`mixed_float16`.",
)
flags.DEFINE_list(
    "determinism", ["off"],
    "`off` and/or `on`: time the step as is and/or after `swav_keras.enable_determinism()`.",
)
flags.DEFINE_list(
    "non_finite_guard", ["on"],
    "`on` and/or `off`: time the step with `SwAV.compile`'s `SkipNonFiniteOptimizer` and/or "
    "with the bare optimizer.",
)
flags.DEFINE_bool("pipeline", True, "Also time the multi-crop input pipeline (one thread).")
flags.DEFINE_bool("worker", False, "Internal: measure the active backend and print JSON.")

FLOP_PER_IMAGE = 525e6  # forward + backward over the six crops (WORKLOAD.md)
CROPS = ((28, 2), (14, 4))


def measure():
    import swav_keras

    if FLAGS.determinism == ["on"]:  # first: the backend reads it when it starts
        swav_keras.enable_determinism()
    import keras
    import numpy as np

    from swav_keras import SwAV
    from swav_keras.backbones import SmallResNet
    from swav_keras.layers import with_conv_implementation

    class TrivialLossSwAV(SwAV):
        def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
            return keras.ops.mean(keras.ops.square(keras.ops.concatenate(y_pred["scores"], 0)))

    rng = np.random.default_rng(0)
    batch = FLAGS.batch_size
    crops = tuple(
        rng.uniform(0, 255, (batch, size, size, 1)).astype("float32")
        for size, count in CROPS
        for _ in range(count)
    )
    dataset = fixed_batches.repeated((crops,))

    def compiled(model_class, conv, policy, guard):
        keras.mixed_precision.set_global_policy(policy)
        keras.utils.set_random_seed(0)
        encoder, chosen = with_conv_implementation(
            SmallResNet(width=FLAGS.width, input_shape=(None, None, 1)), conv
        )
        label = conv if conv == chosen else f"{conv}={chosen}"
        model = model_class(
            encoder, projection_dim=64, hidden_dim=512, num_prototypes=FLAGS.num_prototypes
        )
        model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9))
        if guard == "off":  # before the first step builds the training function
            model.optimizer = model.optimizer.inner_optimizer
        keras.mixed_precision.set_global_policy("float32")
        model.fit(dataset, epochs=1, steps_per_epoch=FLAGS.warmup_steps, verbose=0)
        return label, model

    def seconds_per_step(model):
        start = time.perf_counter()
        model.fit(dataset, epochs=1, steps_per_epoch=FLAGS.steps, verbose=0)
        return (time.perf_counter() - start) / FLAGS.steps

    # The variants alternate, so that drifts of the machine hit all alike; medians.
    variants = [(conv, policy, guard) for conv in FLAGS.conv_implementations
                for policy in FLAGS.dtype_policies for guard in FLAGS.non_finite_guard]
    models = {variant: compiled(SwAV, *variant) for variant in variants}
    models["trivial"] = compiled(TrivialLossSwAV, *variants[0])
    times = {name: [] for name in models}
    for _ in range(FLAGS.rounds):
        for name, (_, model) in models.items():
            times[name].append(seconds_per_step(model))
    trivial = float(np.median(times["trivial"]))
    rows = []
    for variant in variants:
        full = float(np.median(times[variant]))
        rows.append({
            "conv": models[variant][0],
            "policy": variant[1] + (f" guard:{variant[2]}" if len(FLAGS.non_finite_guard) > 1
                                    else ""),
            "images_per_s": batch / full,
            "seconds_per_step": full,
            "step_spread": (min(times[variant]) / full, max(times[variant]) / full),
            # Can be slightly negative: the difference is within the machine's noise.
            "sinkhorn_loss_share": 1.0 - trivial / full if variant == variants[0] else None,
        })
    return {"backend": keras.backend.backend(), "keras": keras.__version__, "rows": rows}


def main(argv):
    del argv
    # The names themselves are checked where Keras is imported: by each backend's worker
    # (swav_keras.layers.with_conv_implementation); here only their count.
    convs = FLAGS.conv_implementations
    if not convs or len(set(convs)) != len(convs):
        raise app.UsageError(
            "--conv_implementations takes distinct names among auto, native and im2col; "
            f"received {','.join(convs)!r}."
        )
    # Likewise the policy names: Keras checks them (keras.mixed_precision.set_global_policy).
    policies = FLAGS.dtype_policies
    if not policies or len(set(policies)) != len(policies):
        raise app.UsageError(
            "--dtype_policies takes distinct Keras dtype policy names; "
            f"received {','.join(policies)!r}."
        )
    if not set(FLAGS.determinism) <= {"off", "on"} or not FLAGS.determinism:
        raise app.UsageError(
            f"--determinism takes off and/or on; received {','.join(FLAGS.determinism)!r}."
        )
    guards = FLAGS.non_finite_guard
    if not set(guards) <= {"off", "on"} or not guards or len(set(guards)) != len(guards):
        raise app.UsageError(
            f"--non_finite_guard takes off and/or on; received {','.join(guards)!r}."
        )
    if FLAGS.worker:
        children.report(measure())
        return
    gflops = matmul_gflops()
    print(
        f"workload: small ResNet width {FLAGS.width}, crops 2x28 + 4x14 (1 channel), "
        f"head 128->512->64, K={FLAGS.num_prototypes}, batch {FLAGS.batch_size}, "
        f"{FLAGS.steps} timed steps after {FLAGS.warmup_steps} warm-up"
    )
    print(
        f"machine: {platform.machine()}, {cpu_name()}, {os.cpu_count()} CPU cores, Python "
        f"{platform.python_version()}, float32 matmul {gflops:.0f} GFLOP/s (NumPy, 2048^3)"
    )
    # The FLOP count is the reference workload's: other widths get no "of ceiling" figure.
    ceiling = gflops * 1e9 / FLOP_PER_IMAGE if FLAGS.width == 16 else None
    if ceiling:
        print(f"ceiling: {ceiling:.0f} images/s (525 MFLOP per image)")
    results = []
    for backend in FLAGS.backends:
        args = [f"--{name}={FLAGS[name].value}" for name in
                ("batch_size", "steps", "rounds", "warmup_steps", "width", "num_prototypes")]
        args.append(f"--conv_implementations={','.join(FLAGS.conv_implementations)}")
        args.append(f"--dtype_policies={','.join(FLAGS.dtype_policies)}")
        args.append(f"--non_finite_guard={','.join(FLAGS.non_finite_guard)}")
        for mode in FLAGS.determinism:
            try:
                result = children.run("benchmarks.train_step_throughput", backend,
                                      [*args, f"--determinism={mode}"])
            except children.WorkerFailed as error:
                print(error)
                continue
            if FLAGS.determinism != ["off"]:
                result["backend"] += f" det:{mode}"
            results.append(result)
    if not results:
        sys.exit(1)
    versions = _versions()
    print(f"versions: {versions}")
    best = max(row["images_per_s"] for r in results for row in r["rows"])
    print(f"{'backend':<18} {'conv':<11} {'policy':<24} {'images/s':>9} {'s/step':>8} "
          f"{'spread':>12} {'of ceiling':>10} {'vs best':>8} {'Sinkhorn+loss':>13}")
    for r in results:
        for row in r["rows"]:
            low, high = row["step_spread"]
            share = row["sinkhorn_loss_share"]
            print(
                f"{r['backend']:<18} {row['conv']:<11} {row['policy']:<24} "
                f"{row['images_per_s']:9.1f} "
                f"{row['seconds_per_step']:8.3f} {low:5.2f}-{high:4.2f}x "
                f"{format(row['images_per_s'] / ceiling, '10.1%') if ceiling else '-':>10} "
                f"{row['images_per_s'] / best:8.2f} "
                f"{'' if share is None else f'{share:.1%}':>13}"
            )
    if FLAGS.pipeline:
        pipeline = _pipeline_images_per_s()
        print(
            f"input pipeline (tf.data, 1 thread): {pipeline:,.0f} images/s = "
            f"{pipeline / best:.0f}x the fastest training step"
        )


def _pipeline_images_per_s():
    command = [sys.executable, "-m", "benchmarks.multicrop_throughput", "--threads=1",
               f"--batch_size={FLAGS.batch_size}"]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    out = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    line = [x for x in out.stdout.splitlines() if x.startswith("images/s (median):")][-1]
    return float(line.split(":")[1].replace(",", ""))


def _versions():
    import importlib.metadata as md

    names = ("keras", "tensorflow-cpu", "jax", "torch", "numpy")
    found = []
    for name in names:
        try:
            found.append(f"{name} {md.version(name)}")
        except md.PackageNotFoundError:
            pass
    return ", ".join(found)


if __name__ == "__main__":
    app.run(main)
