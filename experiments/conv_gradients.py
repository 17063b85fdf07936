r"""Where the time of a training step goes: each 3x3 conv's forward and two gradients, per backend.

A training step of the small ResNet is mostly its 3x3 stride-1 convolutions, and each backend's
CPU kernels have their own slow cases: the same shape can cost 20 times more in one gradient
than in the forward pass. This benchmark times three formulations of such a conv: `native`
(`keras.ops.conv`), `im2col` (nine shifted slices concatenated, then one matrix product) and
`rewritten` (native forward; through `keras.ops.custom_gradient`, the input gradient as a
forward conv with the flipped kernel and the kernel gradient as nine matrix products), all in
`keras.ops`, differentiated by the backend. Two views:
- every such conv of the workload alone: forward, input gradient and kernel gradient, each
  compiled and timed by itself, weighted by how many such layers a step runs;
- the whole SwAV step (`train_on_batch`) with each formulation in every 3x3 stride-1 conv of
  the encoder, alternating round by round. Only this one says what a step would gain: inside
  one compiled program kernels, layouts and fusions differ from the parts alone.

Workload: the `fashion_mnist` recipe (`recipes/configs.py`): the small ResNet of width 16,
2 x 28x28 + 4 x 14x14 single-channel crops, `--batch_size` images per step (the crops of one
resolution go through the encoder as one batch, as `SwAV` runs them), head 128 -> 512 -> 64,
K = 128, SGD. The per-call view leaves out the stem (1 input channel); in the whole step it
takes the formulation too. The stride-2 convs and the 1x1 shortcuts stay native in both.

Command (2 CPU cores, about 12 minutes):

    python -m experiments.conv_gradients --backends=tensorflow,jax,torch

Figures are recorded in `benchmarks/RESULTS.md`.
"""

import os
import platform
import sys
import time

from absl import app, flags

from benchmarks import children
from benchmarks.machine import cpu_name

FLAGS = flags.FLAGS
flags.DEFINE_list("backends", ["tensorflow", "jax", "torch"], "Backends to measure, in order.")
flags.DEFINE_integer("batch_size", 128, "Images per step (the fashion_mnist recipe's batch).")
flags.DEFINE_integer("repeats", 5, "Timed calls per measurement; the minimum is reported.")
flags.DEFINE_integer("step_rounds", 5, "Whole-step rounds of 3 steps per formulation, alternating.")
flags.DEFINE_bool("worker", False, "Internal: measure the active backend and print JSON.")

PARTS = ("forward", "input gradient", "kernel gradient")
WIDTH = 16
CROPS = ((28, 2), (14, 4))  # (side, crops per image)


def conv_shapes(batch_size):
    """(batch, side, channels, layers per step) of the 3x3 stride-1 convs after the stem."""
    shapes = []
    for side, count in CROPS:
        for stage, layers in enumerate((4, 3, 3, 3)):
            stage_side = -(-side // 2**stage)
            shapes.append((batch_size * count, stage_side, WIDTH * 2**stage, layers))
    return shapes


def _windows(x):
    """The nine 3x3-shifted windows of the zero-padded `x`, in the kernel's (i, j) order."""
    from keras import ops

    height, width = ops.shape(x)[1], ops.shape(x)[2]
    padded = ops.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]])
    return [padded[:, i : i + height, j : j + width, :] for i in range(3) for j in range(3)]


def _im2col_conv(x, kernel):
    from keras import ops

    patches = ops.concatenate(_windows(x), axis=-1)
    return ops.matmul(patches, ops.reshape(kernel, (-1, kernel.shape[-1])))


def _rewritten_conv(x, kernel):
    """Native forward; input gradient as a forward conv, kernel gradient as nine matmuls."""
    from keras import ops

    @ops.custom_gradient
    def conv(x, kernel):
        def gradient(*args, upstream=None):
            if upstream is None:
                (upstream,) = args
            flipped = ops.transpose(ops.flip(kernel, axis=(0, 1)), (0, 1, 3, 2))
            input_gradient = ops.conv(upstream, flipped, padding="same")
            kernel_gradient = ops.stack(
                [ops.einsum("bhwc,bhwd->cd", window, upstream) for window in _windows(x)]
            )
            return input_gradient, ops.reshape(kernel_gradient, ops.shape(kernel))

        return ops.conv(x, kernel, padding="same"), gradient

    # A layer's kernel is a Keras Variable, which torch's custom gradient cannot save.
    return conv(x, ops.convert_to_tensor(kernel))


def _native_conv(x, kernel):
    from keras import ops

    return ops.conv(x, kernel, padding="same")


FORMULATIONS = {"native": _native_conv, "im2col": _im2col_conv, "rewritten": _rewritten_conv}


def _gradient_functions(conv):
    """(forward, input gradient, kernel gradient) for `conv`, each a pair (prepare, timed).

    `prepare(x, kernel, dy)` runs untimed and returns the arguments of the compiled `timed`.
    TensorFlow and JAX compile each gradient alone (the unused forward output is pruned); torch
    records the forward graph in `prepare`, so only its backward kernel is timed.
    """
    import keras

    backend = keras.backend.backend()

    def untouched(*args):
        return args

    if backend == "tensorflow":
        import tensorflow as tf

        def gradient(index):
            def function(x, kernel, dy):
                with tf.GradientTape() as tape:
                    tape.watch((x, kernel))
                    y = conv(x, kernel)
                return tape.gradient(y, (x, kernel), output_gradients=dy)[index]

            return untouched, tf.function(function)

        forward = tf.function(lambda x, kernel, dy: conv(x, kernel))
        return (untouched, forward), gradient(0), gradient(1)
    if backend == "jax":
        import jax

        def gradient(index):
            return untouched, jax.jit(lambda x, kernel, dy: jax.vjp(conv, x, kernel)[1](dy)[index])

        forward = jax.jit(lambda x, kernel, dy: conv(x, kernel))
        return (untouched, forward), gradient(0), gradient(1)
    import torch

    def gradient(index):
        def prepare(x, kernel, dy):
            inputs = (x.detach().requires_grad_(), kernel.detach().requires_grad_())
            return conv(*inputs), inputs[index], dy

        def timed(y, wrt, dy):
            return torch.autograd.grad(y, wrt, dy, retain_graph=True)[0]

        return prepare, timed

    def forward(x, kernel, dy):
        with torch.no_grad():
            return conv(x, kernel)

    return (untouched, forward), gradient(0), gradient(1)


def _seconds(prepare_and_timed, args):
    import keras

    prepare, timed = prepare_and_timed
    args = prepare(*args)
    keras.ops.convert_to_numpy(timed(*args))
    best = float("inf")
    for _ in range(FLAGS.repeats):
        start = time.perf_counter()
        keras.ops.convert_to_numpy(timed(*args))
        best = min(best, time.perf_counter() - start)
    return best


def measure():
    import keras
    import numpy as np

    rng = np.random.default_rng(0)
    rows = []
    for batch, side, channels, layers in conv_shapes(FLAGS.batch_size):
        x = keras.ops.convert_to_tensor(
            rng.standard_normal((batch, side, side, channels), dtype=np.float32))
        kernel = keras.ops.convert_to_tensor(
            rng.standard_normal((3, 3, channels, channels), dtype=np.float32))
        dy = keras.ops.convert_to_tensor(
            rng.standard_normal((batch, side, side, channels), dtype=np.float32))
        row = {"batch": batch, "side": side, "channels": channels, "layers": layers}
        for name, conv in FORMULATIONS.items():
            row[name] = [_seconds(pair, (x, kernel, dy)) for pair in _gradient_functions(conv)]
        rows.append(row)
    return {"backend": keras.backend.backend(), "rows": rows, "steps": whole_steps()}


def conv2d_class(conv):
    """A `keras.layers.Conv2D` subclass whose 3x3 stride-1 'same' convs use `conv`."""
    import keras

    class Conv2D(keras.layers.Conv2D):
        def convolution_op(self, inputs, kernel):
            if self.kernel_size == (3, 3) and self.strides == (1, 1) and self.padding == "same":
                return conv(inputs, kernel)
            return super().convolution_op(inputs, kernel)

    return Conv2D


def whole_steps():
    """Median seconds of a SwAV `train_on_batch` step with each formulation in the encoder.

    The per-call figures above do not add up to a step (kernels, layouts and fusions differ
    inside a whole program), so each formulation is also put into every 3x3 stride-1 conv of
    the encoder (a `Conv2D` subclass through `clone_model`, same weights) and timed in the
    real step, the formulations alternating round by round.
    """
    import keras
    import numpy as np

    from swav_keras import SwAV
    from swav_keras.backbones import SmallResNet

    rng = np.random.default_rng(0)
    crops = tuple(
        rng.uniform(0, 255, (FLAGS.batch_size, side, side, 1)).astype("float32")
        for side, count in CROPS
        for _ in range(count)
    )

    def model(conv):
        keras.utils.set_random_seed(0)
        encoder = SmallResNet(width=WIDTH, input_shape=(None, None, 1))
        cls = conv2d_class(conv)
        encoder = keras.models.clone_model(encoder, clone_function=lambda layer: (
            cls if type(layer) is keras.layers.Conv2D else type(layer)
        ).from_config(layer.get_config()))
        swav = SwAV(encoder, projection_dim=64, hidden_dim=512, num_prototypes=128)
        swav.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9))
        for _ in range(2):
            swav.train_on_batch((crops,))
        return swav

    models = {name: model(conv) for name, conv in FORMULATIONS.items()}
    seconds = {name: [] for name in models}
    # One untimed round first: the first model built otherwise shows an inflated first round.
    for round_index in range(FLAGS.step_rounds + 1):
        for name, swav in models.items():
            start = time.perf_counter()
            for _ in range(3):
                swav.train_on_batch((crops,))
            if round_index:
                seconds[name].append((time.perf_counter() - start) / 3)
    return {name: float(np.median(values)) for name, values in seconds.items()}


def report(result):
    rows, names = result["rows"], list(FORMULATIONS)
    print(f"\n{result['backend']}: milliseconds per call ({' | '.join(names)}), x layers per step")
    print(f"{'batch x side x ch':>18} {'n':>2} " + " ".join(f"{p:>23}" for p in PARTS)
          + f" {'native/fwd':>10}")
    totals = {name: [0.0] * 3 for name in names}
    for row in rows:
        cells = ["|".join(f"{row[name][part] * 1e3:7.1f}" for name in names) for part in range(3)]
        ratio = sum(row["native"]) / row["native"][0]
        print(f"{row['batch']:>7} x {row['side']:>2} x {row['channels']:>3} {row['layers']:>2} "
              + " ".join(f"{c:>23}" for c in cells) + f" {ratio:10.1f}")
        for name in names:
            for part in range(3):
                totals[name][part] += row[name][part] * row["layers"]
    native = sum(totals["native"])
    for name, parts in totals.items():
        print(f"{'step total ' + name:>21} " + " ".join(f"{t:22.3f}s" for t in parts)
              + f"   sum {sum(parts):.3f} s ({sum(parts) / native:.2f} of native)")
    best = sum(min(sum(row[name]) for name in names) * row["layers"] for row in rows)
    print(f"{'best per shape':>21}: {best:.3f} s ({best / native:.2f} of native)")
    steps = result["steps"]
    print(f"{'whole SwAV step':>21}: " + ", ".join(
        f"{name} {value:.3f} s ({value / steps['native']:.2f})" for name, value in steps.items()
    ) + f"; median of {FLAGS.step_rounds} rounds of 3 train_on_batch steps")


def main(argv):
    del argv
    if FLAGS.worker:
        children.report(measure())
        return
    print(f"workload: small ResNet width {WIDTH}, crops 2x28 + 4x14 (1 channel), batch "
          f"{FLAGS.batch_size} images; 3x3 stride-1 convs after the stem; min of {FLAGS.repeats}")
    print(f"machine: {platform.machine()}, {cpu_name()}, {os.cpu_count()} CPU cores, Python "
          f"{platform.python_version()}")
    failed = False
    for backend in FLAGS.backends:
        args = [f"--batch_size={FLAGS.batch_size}", f"--repeats={FLAGS.repeats}",
                f"--step_rounds={FLAGS.step_rounds}"]
        try:
            report(children.run("experiments.conv_gradients", backend, args))
        except children.WorkerFailed as error:
            print(error)
            failed = True
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    app.run(main)
