r"""What making the crops inside the training step costs, per backend, side by side.

`SwAV(augmentation=MultiCropAugmentation(...))` makes the multi-crop views inside the compiled
training step (on the accelerator, without tf.data or TensorFlow). This benchmark measures what
that adds to a step on this machine. Workload (`../shared/WORKLOAD.md`): the small ResNet of
width 16, head 128 -> 512 -> 64, K = 128, batch 256, crops 2 x 28x28 (area 0.3..1) + 4 x 14x14
(0.08..0.3) of 28x28 single-channel images, flips, brightness and contrast 0.4 with
probability 0.8. In each backend's process, alternating, `--rounds` times (medians):

- `crops given`: `fit` steps on fixed crops held in memory (what a host pipeline such as
  the tf.data `multicrop_dataset` hands the step; its own cost overlaps the step there);
- `crops in step`: `fit` steps on raw image batches, the model making the crops;
- `augmentation`: the layer alone, compiled on the same batches (JAX's `jit`, TensorFlow's
  `tf.function(jit_compile=True)`, eager on PyTorch as Keras's torch trainer runs it).

The ratio `in step / given` is the share of the step's throughput that in-step augmentation
keeps: close to 1 means the augmentation is cheap next to the step.

Command (2 CPU cores, about 8 minutes):

    python -m benchmarks.augmentation_in_step --backends=tensorflow,jax,torch

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
flags.DEFINE_integer("batch_size", 256, "Images per step.")
flags.DEFINE_integer("steps", 6, "Timed steps per measurement (after warm-up).")
flags.DEFINE_integer("rounds", 3, "Measurements per variant, alternating; medians reported.")
flags.DEFINE_integer("warmup_steps", 3, "Untimed steps first (tracing / compilation).")
flags.DEFINE_bool("worker", False, "Internal: measure the active backend and print JSON.")

REFERENCE = dict(num_crops=(2, 4), crop_sizes=(28, 14), min_scales=(0.3, 0.08),
                 max_scales=(1.0, 0.3), brightness=0.4, contrast=0.4, saturation=0.0, hue=0.0,
                 jitter_probability=0.8, grayscale_probability=0.0, blur_probability=0.0)


def _compiled_call(layer):
    """The layer's call compiled as the backend's trainer would run it."""
    import keras

    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        def stateless(state, x):
            (outputs, new_state) = layer.stateless_call([], state, x, return_losses=False)
            return outputs, new_state

        fn = jax.jit(stateless)
        state = [v.value for v in layer.non_trainable_variables]

        def call(x):
            nonlocal state
            outputs, state = fn(state, x)
            return outputs
        return call
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.function(layer.__call__, jit_compile=True)
    return layer


def measure():
    import keras
    import numpy as np

    from swav_keras import SwAV
    from swav_keras.backbones import SmallResNet
    from swav_keras.layers import MultiCropAugmentation, with_conv_implementation

    batch = FLAGS.batch_size
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (batch, 28, 28, 1)).astype("uint8")
    crops = tuple(keras.ops.convert_to_numpy(c)
                  for c in MultiCropAugmentation(**REFERENCE, seed=0)(images))

    def model(augmentation):
        keras.utils.set_random_seed(0)
        # The convolutions the pretrain recipe picks (`auto`: im2col for JAX on CPU).
        encoder, _ = with_conv_implementation(
            SmallResNet(width=16, input_shape=(None, None, 1)), "auto")
        swav = SwAV(encoder, projection_dim=64,
                    hidden_dim=512, num_prototypes=128, augmentation=augmentation)
        swav.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9))
        return swav

    given = model(None)
    in_step = model(MultiCropAugmentation(**REFERENCE, seed=0))
    layer = MultiCropAugmentation(**REFERENCE, seed=0)
    augment = _compiled_call(layer)

    def fit_steps(swav, x, steps):
        start = time.perf_counter()
        for _ in range(steps):
            logs = swav.train_on_batch(x, return_dict=True)
        assert np.isfinite(logs["loss"])
        return (time.perf_counter() - start) / steps

    def augment_steps(steps):
        start = time.perf_counter()
        for _ in range(steps):
            out = augment(images)
        keras.ops.convert_to_numpy(out[-1])
        return (time.perf_counter() - start) / steps

    variants = {
        "crops given": lambda n: fit_steps(given, crops, n),
        "crops in step": lambda n: fit_steps(in_step, images, n),
        "augmentation": augment_steps,
    }
    for run in variants.values():
        run(FLAGS.warmup_steps)
    times = {name: [] for name in variants}
    for _ in range(FLAGS.rounds):
        for name, run in variants.items():
            times[name].append(run(FLAGS.steps))
    rates = {name: batch / float(np.median(t)) for name, t in times.items()}
    return {"backend": keras.backend.backend(), "rates": rates}


def main(argv):
    del argv
    if FLAGS.worker:
        children.report(measure())
        return
    print(f"workload: small ResNet width 16 (the recipe's auto convolutions), head "
          f"128->512->64, K=128, batch {FLAGS.batch_size}, 28x28x1 images -> 2x28 + 4x14 "
          f"crops, {FLAGS.steps} timed steps x {FLAGS.rounds} rounds after "
          f"{FLAGS.warmup_steps} warm-up (medians)")
    print(f"machine: {platform.machine()}, {cpu_name()}, {os.cpu_count()} CPU cores, Python "
          f"{platform.python_version()}")
    results = []
    for backend in FLAGS.backends:
        args = [f"--{name}={FLAGS[name].value}"
                for name in ("batch_size", "steps", "rounds", "warmup_steps")]
        try:
            results.append(children.run("benchmarks.augmentation_in_step", backend, args))
        except children.WorkerFailed as error:
            print(error)
    if not results:
        sys.exit(1)
    print(f"{'backend':<11} {'crops given':>12} {'crops in step':>14} {'in step / given':>16} "
          f"{'augmentation alone':>19}   (images/s)")
    for r in results:
        rates = r["rates"]
        print(f"{r['backend']:<11} {rates['crops given']:12.1f} {rates['crops in step']:14.1f} "
              f"{rates['crops in step'] / rates['crops given']:16.2f} "
              f"{rates['augmentation']:19.1f}")


if __name__ == "__main__":
    app.run(main)
