r"""The cost of a mid-epoch backup beside the training step it interrupts.

Workload: the `fashion_mnist` pretraining configuration as `recipes/pretrain.py` builds it
(small ResNet width 16, head 512 -> 64, K = 128, LARS, batch 128, 2 x 28x28 + 4 x 14x14
crops, random crops in memory). In one process of the active backend, alternating: one
`train_on_batch` step, then one backup as `MidEpochBackupAndRestore` writes it every
`--backup_every_steps` steps (weights and optimizer state, the previous copy kept). It
prints the median seconds of each, their ratio, the backup's size, and what a backup every
100 steps (the recipe's default) adds to training time.

Command (2 CPU cores, about 1 minute per backend):

    python -m experiments.backup_cost --backends=tensorflow,jax,torch

Figures are recorded in `benchmarks/RESULTS.md`.
"""

import os
import platform
import tempfile
import time

from absl import app, flags

from benchmarks import children
from benchmarks.machine import cpu_name

FLAGS = flags.FLAGS
flags.DEFINE_list("backends", ["tensorflow", "jax", "torch"], "Backends to measure, in order.")
flags.DEFINE_integer("rounds", 5, "Step + backup pairs timed (after 2 warm-up steps).")
flags.DEFINE_bool("worker", False, "Internal: measure the active backend and print JSON.")


def _worker():
    import numpy as np

    from recipes import configs
    from recipes.builders import build_encoder, build_model, build_optimizer
    from swav_keras import backends
    from swav_keras.callbacks import MidEpochBackupAndRestore
    from swav_keras.data.sources import ImageSourceInfo

    config = configs.get_config("fashion_mnist")
    info = ImageSourceInfo("fashion_mnist", "train", 60000, 10, (28, 28, 1), (72.9,), (90.0,))
    spread = backends.active().start_distribution("none")
    model = build_model(config, build_encoder(config, info), 468, spread)
    model.compile(optimizer=build_optimizer(config, 468))
    rng = np.random.default_rng(0)
    sizes = [s for s, n in zip(config.crop_sizes, config.num_crops) for _ in range(n)]
    crops = tuple(rng.uniform(0, 255, (config.batch_size, s, s, 1)).astype("float32")
                  for s in sizes)
    for _ in range(2):
        model.train_on_batch(crops)
    folder = tempfile.mkdtemp()
    backup = MidEpochBackupAndRestore(folder, save_every_steps=100)
    backup.set_model(model)
    steps, saves = [], []
    for _ in range(FLAGS.rounds):
        start = time.perf_counter()
        model.train_on_batch(crops)
        steps.append(time.perf_counter() - start)
        start = time.perf_counter()
        backup._save_model()
        saves.append(time.perf_counter() - start)
    size = os.path.getsize(os.path.join(folder, "latest.weights.h5"))
    children.report({"step": float(np.median(steps)), "backup": float(np.median(saves)),
                     "megabytes": size / 1e6})


def main(argv):
    del argv
    if FLAGS.worker:
        return _worker()
    import keras

    print("workload: fashion_mnist configuration, batch 128, one train_on_batch step vs one "
          f"backup, {FLAGS.rounds} rounds (medians)")
    print(f"machine: {platform.machine()}, {cpu_name()}, {os.cpu_count()} CPUs, Python "
          f"{platform.python_version()}, keras {keras.__version__}")
    print(f"{'backend':<11} {'step s':>7} {'backup s':>9} {'backup/step':>12} {'MB':>6} "
          f"{'every 100 steps':>16}")
    for backend in FLAGS.backends:
        try:
            r = children.run("experiments.backup_cost", backend, [f"--rounds={FLAGS.rounds}"])
        except children.WorkerFailed as error:
            print(error)
            continue
        ratio = r["backup"] / r["step"]
        print(f"{backend:<11} {r['step']:>7.3f} {r['backup']:>9.3f} {ratio:>12.3f} "
              f"{r['megabytes']:>6.1f} {ratio / 100:>15.2%}")


if __name__ == "__main__":
    app.run(main)
